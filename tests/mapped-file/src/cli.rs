//! The little argument parsing both programs need: `--flag VALUE` pairs, one positional
//! directory, and exit status 2 with the help text on a usage error.

use std::ffi::OsString;
use std::str::FromStr;

/// The command line after the program name, taken one argument at a time.
pub struct Args {
    rest: std::vec::IntoIter<OsString>,
}

impl Args {
    pub fn from_env() -> Args {
        Args::new(std::env::args_os().skip(1).collect())
    }

    pub fn new(args: Vec<OsString>) -> Args {
        Args {
            rest: args.into_iter(),
        }
    }

    /// The next argument, as text when it is valid UTF-8 (paths may not be).
    pub fn next_raw(&mut self) -> Option<OsString> {
        self.rest.next()
    }

    /// The value after `flag`, parsed.
    pub fn value<T: FromStr>(&mut self, flag: &str) -> Result<T, String> {
        let raw = self
            .rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let text = raw
            .to_str()
            .ok_or_else(|| format!("{flag}: value is not valid text"))?;
        text.parse()
            .map_err(|_| format!("{flag}: cannot use {text:?}"))
    }
}

/// Prints the problem and the help text to stderr and exits with status 2.
pub fn usage_error(problem: &str, help: &str) -> ! {
    eprintln!("error: {problem}\n\n{help}");
    std::process::exit(2)
}
