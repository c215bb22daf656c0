//! Compiles the vendored flagd protocol (proto/, see proto/README.md) into prost messages and
//! tonic services. `protox` parses the .proto files in Rust, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "flagd/evaluation/v1/evaluation.proto",
        "flagd/evaluation/v2/evaluation.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed=proto/{p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The client is generic over the channel: the e2e tests drive it over h2c.
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
