//! The kernel matrix: runs the project's kernel-dependent checks inside other kernels
//! than this machine's — Debian's 6.1 and 6.12, which have kprobes — booted under QEMU
//! with TCG, one boot per kernel. [`packages`] picks and reads kernel packages (pure),
//! [`initramfs`] builds the guest's initramfs (pure), [`vm`] fetches kernels and boots
//! them (effects), and [`cases`] is the list of checks and the job that runs them in
//! the guest.

pub mod cases;
pub mod initramfs;
pub mod packages;
pub mod vm;
