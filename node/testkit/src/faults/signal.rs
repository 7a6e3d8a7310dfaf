//! Signals to node processes through the `kill` command (no libc binding needed): SIGSTOP and
//! SIGCONT to pause and resume, SIGTERM for a graceful stop. SIGKILL goes through
//! `std::process::Child::kill`.

use std::io;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Stop,
    Cont,
    Term,
}

impl Signal {
    fn flag(self) -> &'static str {
        match self {
            Signal::Stop => "-STOP",
            Signal::Cont => "-CONT",
            Signal::Term => "-TERM",
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let status = Command::new("kill")
        .arg(signal.flag())
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill {} {pid} exited with {status}",
            signal.flag()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_cont_term_a_real_process() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        send(pid, Signal::Stop).unwrap();
        send(pid, Signal::Cont).unwrap();
        send(pid, Signal::Term).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn a_missing_process_is_an_error() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(send(pid, Signal::Cont).is_err());
    }
}
