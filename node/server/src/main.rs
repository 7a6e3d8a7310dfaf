//! `streamd`: the node binary. With no arguments it runs a one-node cluster on loopback.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    streamd::main(streamd::Build::default()).await
}
