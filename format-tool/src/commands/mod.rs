//! One module per subcommand; `run` dispatches and returns the exit code.

mod create;
mod files;
mod fsck;
pub(crate) mod info;
mod mount;
mod overlay;
mod transfer;

use crate::cli::{Cli, Command};
use crate::error::Failure;

pub fn run(cli: Cli) -> Result<u8, Failure> {
    let index = cli.partition_index;
    match cli.command {
        Command::Create(a) => create::run(&a),
        Command::Format(a) => create::format_existing(&a),
        Command::Info(a) => info::run(&a, index),
        Command::Ls(a) => files::ls(&a, index),
        Command::Cat(a) => files::cat(&a, index),
        Command::Put(a) => files::put(&a, index),
        Command::Get(a) => files::get(&a, index),
        Command::Mkdir(a) => files::mkdir(&a, index),
        Command::Rm(a) => files::rm(&a, index),
        Command::Mv(a) => files::mv(&a, index),
        Command::Import(a) => transfer::import(&a, index),
        Command::Export(a) => transfer::export(&a, index),
        Command::Overlay(a) => overlay::run(&a, index),
        Command::Fsck(a) => return Ok(fsck::run(&a, index)),
        Command::Mount(a) => mount::run(&a, index),
    }
    .map(|code| code.unwrap_or(0))
}

/// Commands return `Ok(None)` for "exit 0" or `Ok(Some(code))` for another success code.
pub type Outcome = Result<Option<u8>, Failure>;
