//! Fault injection on node processes. Network faults (namespaces, delaying proxies) go here beside
//! `signal`.

pub mod signal;
