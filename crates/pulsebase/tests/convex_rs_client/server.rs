//! Runs the real `pulsebase` binary for the client tests, as a user would: a fresh copy of
//! `tests/client_app`, `pulsebase dev --port 0`, the port read from the ready line on stdout.
//!
//! Every wait here is bounded. The process is killed by its PID when the [`Server`] is
//! dropped, so a failing (panicking) test does not leave it running.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the binary may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a CLI command (`pulsebase token`) may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// The app the client tests run against.
fn client_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/client_app")
}

/// A running `pulsebase dev` on a temporary copy of an app folder.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    output: Arc<Mutex<String>>,
    pub port: u16,
    pub url: String,
}

impl Server {
    /// Copies `tests/client_app` to a temporary folder and serves it on a free port.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("a temporary folder");
        copy_dir(&client_app(), dir.path());
        let mut server = Server {
            child: None,
            dir,
            output: Arc::new(Mutex::new(String::new())),
            port: 0,
            url: String::new(),
        };
        server.spawn(0);
        server
    }

    /// Kills the process and starts it again on the same port and data, as after a crash.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(port);
        assert_eq!(self.port, port, "restarted on the same port");
    }

    /// Everything the process printed so far (stdout and stderr, every run).
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Waits until the process has printed `text`; panics after `timeout`.
    pub fn wait_for_output(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the server did not print {text:?} within {timeout:?}; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A token from this app's dev issuer, valid for `ttl` seconds.
    pub fn token(&self, sub: &str, name: Option<&str>, ttl: u64) -> String {
        self.tokens().mint(sub, name, ttl)
    }

    /// A handle that mints tokens for this app, for token callbacks that outlive a borrow.
    pub fn tokens(&self) -> Tokens {
        Tokens {
            dir: self.dir.path().to_path_buf(),
        }
    }

    fn spawn(&mut self, port: u16) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pulsebase"))
            .arg("dev")
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the pulsebase binary starts");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let output = self.output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(port) = ready_port(&line) {
                        let _ = ready_tx.send(port);
                    }
                    if let Ok(mut o) = output.lock() {
                        o.push_str(&line);
                        o.push('\n');
                    }
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            drain_into(stderr, self.output.clone());
        }
        self.child = Some(child);
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => {
                self.port = port;
                self.url = format!("http://127.0.0.1:{port}");
            }
            Err(_) => panic!(
                "pulsebase printed no ready line within {START_TIMEOUT:?}; output:\n{}",
                self.output()
            ),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL by PID; `wait` reaps it so the port is free before a restart.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Mints dev-issuer tokens for one app folder with `pulsebase token`, as a user would.
#[derive(Clone)]
pub struct Tokens {
    dir: PathBuf,
}

impl Tokens {
    /// A token for `sub` (with the `name` claim when given), valid for `ttl` seconds.
    pub fn mint(&self, sub: &str, name: Option<&str>, ttl: u64) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pulsebase"));
        command.arg("token").arg("--dir").arg(&self.dir).args([
            "--sub",
            sub,
            "--ttl",
            &ttl.to_string(),
        ]);
        if let Some(name) = name {
            command.args(["--name", name]);
        }
        let (code, stdout) = run_bounded(command, CLI_TIMEOUT);
        assert_eq!(code, Some(0), "pulsebase token failed: {stdout}");
        stdout.trim().to_string()
    }
}

/// The port in the ready line, `... at http://127.0.0.1:PORT ...`.
fn ready_port(line: &str) -> Option<u16> {
    let rest = line.split("http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn drain_into(stream: impl Read + Send + 'static, output: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut o) = output.lock() {
                o.push_str(&line);
                o.push('\n');
            }
        }
    });
}

/// Runs `command` to completion within `timeout` (killed after it); its exit code and stdout.
fn run_bounded(mut command: Command, timeout: Duration) -> (Option<i32>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the pulsebase binary starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    (status.and_then(|s| s.code()), text)
}

/// Copies an app folder, leaving out generated code and server state.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the app folder");
    for entry in std::fs::read_dir(from)
        .expect("read the app folder")
        .flatten()
    {
        let name = entry.file_name();
        if name == "_generated" || name == ".pulsebase" {
            continue;
        }
        let target = to.join(&name);
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy an app file");
        }
    }
}
