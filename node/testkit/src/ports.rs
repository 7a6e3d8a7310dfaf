//! Free loopback ports, found by binding port 0. All ports of one call are held open together so
//! they are distinct, then released for the nodes to bind. Another process may grab one in
//! between; on loopback in tests that is rare enough to accept.

use std::io;
use std::net::TcpListener;

/// `n` distinct free TCP ports on 127.0.0.1.
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let mut ports = free_ports(9).unwrap();
        for &p in &ports {
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 9);
    }
}
