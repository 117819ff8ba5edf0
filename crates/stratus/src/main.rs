use std::process::ExitCode;

use clap::Parser as _;
use stratus::cli::{self, Cli};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = stratus::infra::telemetry::init(&config.log) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // A server's failure belongs in its logs; a command's is for the person who typed it.
    let serving = matches!(cli.command, cli::Command::Serve(_));
    match runtime.block_on(cli::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if serving {
                tracing::error!(error = format!("{error:#}"), "stratus failed");
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
