//! `datadump-worker`: the binary every EC2 instance downloads and runs, one attempt of one
//! media type (the same program as `datadump worker`, without the controller).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    datadump_worker::attempt::main()
}
