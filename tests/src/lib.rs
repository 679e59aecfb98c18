//! The kernel matrix: runs the project's kernel-dependent checks inside other kernels
//! than this machine's — Debian's 6.1 and 6.12, which have kprobes — booted under QEMU
//! with TCG, one boot per kernel. [`packages`] picks and reads kernel packages (pure),
//! [`initramfs`] builds the guest's initramfs (pure), [`vm`] fetches kernels and boots
//! them (effects), [`cases`] is the list of checks and the job that runs them in the
//! guest, and [`matrix`] ties them together for one kernel.
//!
//! `cargo test -p kernel-matrix` runs them all (`tests/kernels.rs`, both kernels in
//! parallel; the longest case is `all_tools`, every tool of Debian's bpftrace package and
//! every bundled script attached by one `trace-runner check --attach`, 90 to 120 s per
//! kernel on two busy cores). Kernel packages are cached in
//! `target/vm-kernels` (`$KERNEL_MATRIX_CACHE`); `KERNEL_MATRIX_TIMEOUT=SECS` bounds a
//! boot (default 600); `KERNEL_MATRIX_KEEP=1` keeps each run's share (console log, case
//! outputs) under `target/kernel-matrix/`; `KERNEL_MATRIX_CASES=a,b` runs only the cases
//! named (`cargo test -p kernel-matrix --test kernels debian_6_1` one kernel). To add a
//! check, add a case to [`cases::CASES`].

pub mod cases;
pub mod initramfs;
pub mod matrix;
pub mod packages;
pub mod vm;
