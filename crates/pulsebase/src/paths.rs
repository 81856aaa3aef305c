//! Where an app keeps its state: `DIR/.pulsebase/` holds the database, the admin key, the
//! dev issuer's key and `server.json` (the URL of the server running from DIR, which `run`
//! and `token` read to find it).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::RngCore;

pub const DEFAULT_PORT: u16 = 3210;

pub struct AppPaths {
    pub dir: PathBuf,
    pub state: PathBuf,
}

impl AppPaths {
    pub fn new(dir: &Path) -> AppPaths {
        AppPaths {
            dir: dir.to_path_buf(),
            state: dir.join(".pulsebase"),
        }
    }

    pub fn database(&self) -> PathBuf {
        self.state.join("data.sqlite3")
    }

    pub fn admin_key(&self) -> PathBuf {
        self.state.join("admin_key")
    }

    pub fn server_info(&self) -> PathBuf {
        self.state.join("server.json")
    }

    pub fn functions(&self) -> PathBuf {
        self.dir.join("functions")
    }

    pub fn schema(&self) -> PathBuf {
        self.dir.join("schema.toml")
    }

    /// The admin key, created (random, owner-only) on first use.
    pub fn ensure_admin_key(&self) -> anyhow::Result<String> {
        let path = self.admin_key();
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let key = existing.trim().to_string();
            if !key.is_empty() {
                return Ok(key);
            }
        }
        std::fs::create_dir_all(&self.state)
            .with_context(|| format!("cannot create {}", self.state.display()))?;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &key)?;
        Ok(key)
    }

    pub fn read_admin_key(&self) -> anyhow::Result<String> {
        let path = self.admin_key();
        let key = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read the admin key at {}: start the server from this directory first (pulsebase dev --dir {})",
                path.display(),
                self.dir.display()
            )
        })?;
        Ok(key.trim().to_string())
    }

    /// The URL of the server running from this directory, if its process is alive.
    pub fn running_server_url(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.server_info()).ok()?;
        let info: serde_json::Value = serde_json::from_str(&text).ok()?;
        let pid = info["pid"].as_u64()?;
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return None;
        }
        info["url"].as_str().map(str::to_string)
    }

    /// `--url`, else the running server, else the default port.
    pub fn server_url(&self, explicit: Option<&str>) -> String {
        explicit
            .map(|u| u.trim_end_matches('/').to_string())
            .or_else(|| self.running_server_url())
            .unwrap_or_else(|| format!("http://127.0.0.1:{DEFAULT_PORT}"))
    }
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
