//! `paddock-slot-init`: exec'd by nsjail inside the jail; stacks the runner seccomp filters
//! (no fork/exec/memfd, inet sockets off on no-network tiers) and execs the interpreter once.
//!
//! Usage: `slot-init [--no-network] -- PROGRAM [ARGS…]`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut no_network = false;
    let mut command = Vec::new();
    let mut seen_dashes = false;
    for a in args.by_ref() {
        if seen_dashes {
            command.push(a);
        } else if a == "--" {
            seen_dashes = true;
        } else if a == "--no-network" {
            no_network = true;
        } else {
            eprintln!(
                "paddock-slot-init: unknown option {a:?}; usage: slot-init [--no-network] -- PROGRAM [ARGS...]"
            );
            return ExitCode::from(120);
        }
    }
    match paddock_worker::sys::exec_once_under_filters(&command, no_network) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("paddock-slot-init: {e}");
            ExitCode::from(121)
        }
    }
}
