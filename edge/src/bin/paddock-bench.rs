//! `paddock-bench`: the load generator alone (same as `paddock-edge bench`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "paddock-bench",
    version,
    about = "MCP-aware load generator for one Paddock endpoint"
)]
struct Cli {
    #[command(flatten)]
    args: paddock_edge::loadgen::BenchArgs,
}

fn main() -> ExitCode {
    paddock_edge::loadgen::main(Cli::parse().args)
}
