//! Compiles `proto/hubscore/v1/*.proto` with protox (pure Rust, no system `protoc`).

use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let dir = root.join("hubscore/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    // protox does not tell cargo about its inputs.
    println!("cargo:rerun-if-changed={}", dir.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    // Kept for the tests, which walk it to check their samples set every field.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("hubscore.v1.fds"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // Type names give every message a `prost::Name` impl, so tests can check that
    // each `Event::TYPE_NAME` is the real protobuf full name.
    prost_build::Config::new()
        .enable_type_names()
        .compile_fds(descriptors)?;
    Ok(())
}
