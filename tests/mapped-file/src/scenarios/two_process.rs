//! Two processes map one file.
//!
//! The second process is this program again (`current_exe()` with the hidden subcommand
//! [`CHILD_COMMAND`]). The parent drives it over a pipe, one command line and one answer line
//! at a time, so every step is ordered by the pipe, never by sleeping. Each answer is awaited
//! with a timeout, and a child that hangs is killed.
//!
//! Both systems promise that shared views of one file in two processes see each other's
//! stores at once: one page cache per inode (Linux), one data section per stream shared by all
//! processes (Windows, NT-03).

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::fileio::{self, pattern};
use crate::mapping::{View, PAGE};
use crate::report::{expect_bytes, Failure, Outcome, Step};

use super::Ctx;

/// argv[1] that makes the program act as the second process.
pub const CHILD_COMMAND: &str = "__two-process-child";

/// Longest wait for one answer from the child: generous for a loaded CI machine, short
/// enough that a hung file system fails the scenario instead of the whole CI run.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

const SIZE: usize = 2 * PAGE;

pub fn run(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(5, SIZE);
    fileio::create_with(path, &model).step("create a 2-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;
    let mut child = Peer::spawn(path)?;
    let outcome = converse(&mut child, &file, &mut view, &mut model);
    let ended = child.finish();
    outcome?;
    ended?;
    view.unmap();
    drop(file);
    expect_bytes(
        "file after both processes unmapped",
        &model,
        &ctx.reread(path)?,
    )
}

fn converse(child: &mut Peer, file: &std::fs::File, view: &mut View, model: &mut [u8]) -> Outcome {
    child.ask("ready?", "ready")?;

    // The child's store, across the page boundary, reaches our view and our read().
    let at = PAGE - 5;
    child.ask(&format!("store {at} {}", hex(b"child-store")), "ok")?;
    model[at..at + 11].copy_from_slice(b"child-store");
    expect_bytes(
        "parent view after child store",
        b"child-store",
        &view.read(at, 11),
    )?;
    let seen = fileio::read_at(file, at as u64, 11).step("parent read()")?;
    expect_bytes("parent read() after child store", b"child-store", &seen)?;

    // Our store reaches the child's view and the child's read().
    let at = PAGE + 100;
    view.write(at, b"parent-store");
    model[at..at + 12].copy_from_slice(b"parent-store");
    let answer = child.ask(&format!("load {at} 12"), "view")?;
    expect_bytes("child view after parent store", b"parent-store", &answer)?;
    let answer = child.ask(&format!("pread {at} 12"), "data")?;
    expect_bytes("child read() after parent store", b"parent-store", &answer)?;

    // Our write() reaches the child's view.
    fileio::write_at(file, 50, b"via-write").step("parent write()")?;
    model[50..59].copy_from_slice(b"via-write");
    let answer = child.ask("load 50 9", "view")?;
    expect_bytes("child view after parent write()", b"via-write", &answer)
}

/// The second process, seen from the first.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: Receiver<io::Result<String>>,
}

impl Peer {
    fn spawn(path: &Path) -> Result<Peer, Failure> {
        let exe = std::env::current_exe().step("find this program's path")?;
        let mut child = Command::new(exe)
            .arg(CHILD_COMMAND)
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .step("start the second process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout was piped");
        // A thread turns blocking line reads into a channel we can wait on with a timeout.
        let (tx, answers) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Peer {
            child,
            stdin,
            answers,
        })
    }

    /// Sends one command and returns the bytes of an answer that must start with `tag`.
    fn ask(&mut self, command: &str, tag: &str) -> Result<Vec<u8>, Failure> {
        let stdin = self.stdin.as_mut().expect("stdin is open until finish");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .step("send a command to the second process")?;
        let line = match self.answers.recv_timeout(ANSWER_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(Failure(format!("{command}: reading the answer: {e}"))),
            Err(_) => {
                return Err(Failure(format!(
                    "{command}: expected an answer within {ANSWER_TIMEOUT:?}, saw none (second process hung or died)"
                )))
            }
        };
        let mut words = line.split(' ');
        if words.next() != Some(tag) {
            return Err(Failure(format!(
                "{command}: expected an answer starting \"{tag}\", saw \"{line}\""
            )));
        }
        unhex(words.next().unwrap_or("")).ok_or_else(|| Failure(format!("bad answer \"{line}\"")))
    }

    /// Closes the pipe (the child then exits), waits for it and checks its exit status.
    fn finish(mut self) -> Outcome {
        drop(self.stdin.take());
        // The child exits when its stdin closes; its stdout reaching end of file (the reader
        // thread hanging up) tells us it is exiting, so a blocking wait is then safe.
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let exited = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => break true,
                Err(RecvTimeoutError::Timeout) => break false,
            }
        };
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(Failure(
                "second process: expected it to exit, it hung".into(),
            ));
        }
        let status = self.child.wait().step("wait for the second process")?;
        if !status.success() {
            return Err(Failure(format!(
                "second process: expected exit status 0, saw {status}"
            )));
        }
        Ok(())
    }
}

/// The second process: maps the file and obeys commands from stdin until it closes.
/// Exit status 0 when every command worked, 1 otherwise.
pub fn child_main(path: &Path) -> i32 {
    match child_loop(path) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("two-process child: {e}");
            1
        }
    }
}

fn child_loop(path: &Path) -> io::Result<()> {
    let file = fileio::open_rw(path)?;
    let mut view = View::map(&file, 0, None)?;
    let stdout = io::stdout();
    for line in io::stdin().lock().lines() {
        let line = line?;
        let answer = obey(&line, &file, &mut view)?;
        let mut out = stdout.lock();
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    view.unmap();
    Ok(())
}

fn obey(line: &str, file: &std::fs::File, view: &mut View) -> io::Result<String> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad command {line:?}"));
    let words: Vec<&str> = line.split(' ').collect();
    let number = |i: usize| {
        words
            .get(i)
            .and_then(|w| w.parse::<usize>().ok())
            .ok_or_else(bad)
    };
    match words[0] {
        "ready?" => Ok("ready".into()),
        "store" => {
            let bytes = words.get(2).and_then(|w| unhex(w)).ok_or_else(bad)?;
            view.write(number(1)?, &bytes);
            Ok("ok".into())
        }
        "load" => Ok(format!("view {}", hex(&view.read(number(1)?, number(2)?)))),
        "pread" => {
            let data = fileio::read_at(file, number(1)? as u64, number(2)?)?;
            Ok(format!("data {}", hex(&data)))
        }
        _ => Err(bad()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
