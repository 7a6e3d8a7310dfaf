//! Compiles the .proto files with protox (pure Rust), so no system `protoc` is needed, into
//! OUT_DIR, so generated code can never go stale in the tree.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "streamd/v1/streamd.proto",
        "streamd/internal/v1/internal.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let fds_path = out.join("streamd_descriptor.bin");
    std::fs::write(&fds_path, prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(&fds_path)
        .skip_protoc_run()
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
