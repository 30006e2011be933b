//! `paddock-edge bench`: an MCP-aware load generator for one Paddock endpoint.
//!
//! ```text
//! paddock-edge bench [tools-list|execute|tool|mix] --url URL (--api-key K | --api-key-file F)
//!     [--cacert PEM | --insecure] [--code CODE | --file F] [--language python|typescript]
//!     [--name TOOL] [--args JSON] [--mix tools-list=8,execute=1,tool=1]
//!     [--concurrency N] [--connections K] [--rate R] [--duration 30s] [--requests N] [--warmup 5s]
//!     [--timeout 30s] [--session] [--http auto|1|2] [--json] [--no-progress]
//! ```
//!
//! Safety: it only ever talks to the one URL given (redirects are not followed but counted
//! as `REDIRECT_REFUSED`, proxies are ignored), and it always stops by itself: at the
//! duration or request bound, at the hard caps of [`options`], or at Ctrl-C, which prints
//! the partial report. Exit status: 0 when the run completed (answers that are errors are
//! in the report), 2 for rejected options, 1 when the client or a session cannot be set
//! up, 130 after Ctrl-C.

pub mod client;
pub mod options;
pub mod report;
pub mod runner;
pub mod scenario;

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

pub use options::{BenchArgs, Plan};
pub use report::Report;

/// Runs `bench` from parsed arguments: validates, runs, prints the report.
pub fn main(args: BenchArgs) -> ExitCode {
    let plan = match args.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("paddock-edge bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paddock-edge bench: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let show = !args.json && !args.no_progress;
    if !args.json {
        eprintln!(
            "paddock-edge bench: {} against {} ({})",
            plan.scenario.label(),
            plan.url,
            plan.endpoint
        );
    }
    let cancel = CancellationToken::new();
    let report = rt.block_on(async {
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.cancel();
            }
        });
        runner::run(plan, cancel.clone(), show).await
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paddock-edge bench: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("paddock-edge bench: cannot render JSON: {e}"),
        }
    } else {
        print!("{}", report.text());
    }
    rt.shutdown_background();
    if report.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    }
}
