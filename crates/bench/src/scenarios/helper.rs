//! A helper process: this bench binary started again in another role (the floor's sender,
//! a scale-out load generator), so that its sockets and CPU are not the coordinator's. The
//! two speak in lines: the coordinator writes commands to the helper's stdin and waits for
//! lines that start with a given word on its stdout.

use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A running helper; killed if dropped before it exits.
pub(super) struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// What the helper is, for errors ("the floor's sender").
    what: &'static str,
}

impl Helper {
    /// Starts this binary with `args`.
    pub(super) fn spawn<I, S>(what: &'static str, args: I) -> anyhow::Result<Helper>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        Ok(Helper {
            child,
            stdin,
            stdout,
            what,
        })
    }

    /// The helper's process id (for its CPU time), unless it has exited.
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Reads lines until one starts with `word` and a space, for at most `limit`; the rest of
    /// that line. Other lines are skipped (the last few are named if the wait fails).
    pub(super) async fn expect(&mut self, word: &str, limit: Duration) -> anyhow::Result<String> {
        let what = self.what;
        let mut skipped: Vec<String> = Vec::new();
        let read = async {
            while let Some(line) = self.stdout.next_line().await? {
                if let Some(rest) = line.strip_prefix(word).and_then(|r| r.strip_prefix(' ')) {
                    return Ok(rest.trim().to_string());
                }
                if skipped.len() == 3 {
                    skipped.remove(0);
                }
                skipped.push(line);
            }
            bail!("{what} exited before saying {word:?}")
        };
        match tokio::time::timeout(limit, read).await {
            Ok(found) => found.with_context(|| format!("last lines: {skipped:?}")),
            Err(_) => bail!("{what} did not say {word:?} within {limit:?}"),
        }
    }

    /// Writes one line to the helper's stdin.
    pub(super) async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Waits for the helper to exit, for at most `limit`.
    pub(super) async fn wait(mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let what = self.what;
        tokio::time::timeout(limit, self.child.wait())
            .await
            .with_context(|| format!("{what} did not exit within {limit:?}"))?
            .with_context(|| format!("waiting for {what}"))
    }
}
