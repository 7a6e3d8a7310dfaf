//! The streamd fault-injection harness (being built).

fn main() {}
