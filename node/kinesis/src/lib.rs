//! The Kinesis-compatible front door (placeholder while the modules land).
