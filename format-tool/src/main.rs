//! The `cowfat` command: parse, run, print the failure sentence, exit with its code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use format_tool::cli::Cli;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2.
    let cli = Cli::parse();
    match format_tool::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("cowfat: {failure}.");
            ExitCode::from(failure.exit_code())
        }
    }
}
