//! Generates the ONNX protobuf types with prost. protox parses the .proto in pure Rust,
//! so building effc needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let proto_file = format!("{proto_dir}/onnx.proto");
    println!("cargo:rerun-if-changed={proto_file}");
    let descriptors = protox::compile([&proto_file], [proto_dir])?;
    prost_build::Config::new().bytes(["."]).compile_fds(descriptors)?;
    Ok(())
}
