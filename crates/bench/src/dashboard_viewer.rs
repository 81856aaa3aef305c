//! `--dashboard-logs`: a dashboard left open on its logs page while a scenario runs. Every
//! server the bench starts then gets one viewer of `GET /_dashboard/api/logs` (with the admin
//! key from the app's `.pulsebase/admin_key`) that reads the stream as fast as a browser
//! would and counts the records, so a run with and a run without show what watching costs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Whether each started server gets a logs viewer (set once from the options).
pub static ENABLED: AtomicBool = AtomicBool::new(false);

/// A running viewer; dropping it closes the stream.
pub struct Viewer {
    task: tokio::task::JoinHandle<()>,
    /// Records (lines) received so far.
    pub records: Arc<AtomicU64>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens the logs stream of the server at `addr` serving `app_dir`, if enabled.
pub fn open(addr: SocketAddr, app_dir: &Path) -> Option<Viewer> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let key = std::fs::read_to_string(app_dir.join(".pulsebase/admin_key")).ok()?;
    let records = Arc::new(AtomicU64::new(0));
    let counted = records.clone();
    let task = tokio::spawn(async move {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            eprintln!("dashboard viewer: cannot connect to {addr}");
            return;
        };
        let request = format!(
            "GET /_dashboard/api/logs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Convex {}\r\n\r\n",
            key.trim()
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
            let lines = memchr::memchr_iter(b'\n', &buf[..n]).count();
            counted.fetch_add(lines as u64, Ordering::Relaxed);
        }
    });
    Some(Viewer { task, records })
}
