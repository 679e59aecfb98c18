//! Function watchpoints at run time (`watchpoint:FUNC+argN:LEN:MODE`,
//! `asyncwatchpoint:...`, `unwatch(addr)`), as bpftrace 0.17 runs them: the setup
//! uprobe reports each address it sees; the first time a probe sees an address, its
//! body program is attached to a hardware breakpoint on that address in the traced
//! process, then the process (stopped by the setup probe unless the watchpoint is
//! async) is resumed. `unwatch` removes every breakpoint on an address.

use std::collections::HashMap;

use aya::programs::perf_event::{PerfEventConfig, PerfEventLinkId, PerfEventScope, SamplePolicy};
use aya::programs::{PerfEvent, ProgramError};

use super::{watchpoint_config, Session};
use crate::abi::Attach;
use crate::sink::Sink;

/// What bpftrace 0.17 prints (on stdout, or as a `lost_events` JSON record) when the CPU
/// has no debug register left for another watchpoint.
pub const OUT_OF_REGISTERS: &str =
    "Failed to attach watchpoint probe. You are out of watchpoint registers.\n";

/// The breakpoints set so far.
#[derive(Default)]
pub struct Watches {
    /// The address each body program (by index) was last set on: a repeated address is
    /// not set again (as in bpftrace, even once unwatched).
    last: HashMap<usize, u64>,
    /// Every breakpoint: its address, body program name and link.
    links: Vec<(u64, String, PerfEventLinkId)>,
}

impl Watches {
    /// Whether body program `body` is to be set on `addr` (and note that it is).
    pub fn is_new(&mut self, body: usize, addr: u64) -> bool {
        self.last.insert(body, addr) != Some(addr)
    }
}

fn no_space(e: &ProgramError) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.raw_os_error() == Some(crate::sys::errno::ENOSPC);
        }
        source = s.source();
    }
    false
}

impl Session {
    /// The setup program `p{setup}` saw `addr`: set its body's breakpoint there unless
    /// already set, then resume the process the setup probe stopped. `Err`: the run
    /// cannot go on (bpftrace stops too).
    pub(super) fn watch(&mut self, setup: usize, addr: u64, sink: &mut Sink) -> Result<(), String> {
        let name = format!("p{setup}");
        let Some(Attach::WatchpointSetup { stop, body, .. }) = self
            .compiled
            .programs
            .iter()
            .find(|p| p.code.name == name)
            .map(|p| p.attach.clone())
        else {
            return Ok(());
        };
        let body_name = format!("p{body}");
        let result = self.set_watch(&body_name, body, addr, sink);
        if !stop {
            return result;
        }
        let pid = self.compiled.programs.iter().find_map(|p| match &p.attach {
            Attach::WatchpointSetup { pid, .. } if p.code.name == name => *pid,
            _ => None,
        });
        let resumed = match pid {
            Some(pid) => crate::sys::signal::send(pid as i32, crate::sys::signal::SIGCONT),
            None => Err(std::io::Error::from_raw_os_error(crate::sys::errno::ESRCH)),
        };
        result.and(resumed.map_err(|e| format!("Failed to SIGCONT tracee: {e}")))
    }

    fn set_watch(
        &mut self,
        body_name: &str,
        body: usize,
        addr: u64,
        sink: &mut Sink,
    ) -> Result<(), String> {
        if !self.watches.is_new(body, addr) {
            return Ok(());
        }
        let Some(Attach::Watchpoint { len, mode, pid, .. }) = self
            .compiled
            .programs
            .iter()
            .find(|p| p.code.name == body_name)
            .map(|p| p.attach.clone())
        else {
            return Ok(());
        };
        let config = watchpoint_config(addr, len, &mode)
            .ok_or_else(|| "Unable to attach real watchpoint probe".to_string())?;
        let prog = self
            .ebpf
            .program_mut(body_name)
            .ok_or_else(|| format!("internal error: program {body_name} missing"))?;
        let pe: &mut PerfEvent = prog.try_into().map_err(|e| format!("{e}"))?;
        let scope = match pid {
            Some(pid) => PerfEventScope::OneProcess { pid, cpu: None },
            None => return Err("-p PID or -c CMD required for watchpoint".into()),
        };
        match pe.attach(
            PerfEventConfig::Breakpoint(config),
            scope,
            SamplePolicy::Period(1),
            false,
        ) {
            Ok(link) => {
                self.watches.links.push((addr, body_name.to_string(), link));
                Ok(())
            }
            Err(e) if no_space(&e) => {
                sink.line("lost_events", OUT_OF_REGISTERS.as_bytes());
                Ok(())
            }
            Err(e) => Err(format!(
                "Unable to attach real watchpoint probe: {}",
                super::error_chain(&e)
            )),
        }
    }

    /// `unwatch(addr)`: remove every breakpoint on `addr` (none is no error).
    pub(super) fn unwatch(&mut self, addr: u64) {
        let links = std::mem::take(&mut self.watches.links);
        for (a, name, link) in links {
            if a != addr {
                self.watches.links.push((a, name, link));
                continue;
            }
            if let Some(prog) = self.ebpf.program_mut(&name) {
                if let Ok(pe) = <&mut PerfEvent>::try_from(prog) {
                    let _ = pe.detach(link);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Watches;

    #[test]
    fn an_address_is_set_once_per_probe_and_again_for_another_probe() {
        let mut w = Watches::default();
        assert!(w.is_new(0, 0x1000));
        assert!(!w.is_new(0, 0x1000));
        assert!(w.is_new(2, 0x1000));
        assert!(w.is_new(0, 0x2000));
        assert!(w.is_new(0, 0x1000));
    }
}
