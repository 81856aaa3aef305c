//! The dev issuer's key on disk: `DATA_DIR/dev_issuer_key.pem`, created on first use with
//! owner-only permissions, so `pulsebase dev` keeps the same issuer key (and users stay
//! signed in) across restarts.
//!
//! Creation is race-free between two processes starting at once: the key is written to a
//! temporary file and hard-linked into place, which fails if another process won; the loser
//! then reads the winner's key.

use std::io::{ErrorKind, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use auth::{DEV_AUDIENCE, DevIssuerError, DevIssuerKey, Provider};

/// The key file's name inside the data directory.
pub const DEV_ISSUER_KEY_FILE: &str = "dev_issuer_key.pem";

/// Loading or creating the dev issuer key failed.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerLoadError {
    /// File system trouble.
    #[error("{path}: {reason}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The file exists but is not a usable key.
    #[error("{path}: {source}; delete the file to create a new dev issuer key")]
    BadKey {
        /// The key file.
        path: String,
        /// Why it is unusable.
        source: DevIssuerError,
    },
    /// Generating a key failed.
    #[error(transparent)]
    Generate(DevIssuerError),
}

/// The built-in dev identity provider's key, persisted in the data directory.
#[derive(Debug, Clone)]
pub struct DevIssuer {
    key: DevIssuerKey,
    path: PathBuf,
}

impl DevIssuer {
    /// Reads `data_dir/dev_issuer_key.pem`, creating the directory and a new 2048-bit key
    /// (mode 0600) when absent. Generating takes a moment: call it off the async runtime.
    pub fn load_or_create(data_dir: &Path) -> Result<DevIssuer, DevIssuerLoadError> {
        let path = data_dir.join(DEV_ISSUER_KEY_FILE);
        let io = |p: &Path, e: std::io::Error| DevIssuerLoadError::Io {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        match std::fs::read_to_string(&path) {
            Ok(pem) => return DevIssuer::from_pem(&pem, path),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        std::fs::create_dir_all(data_dir).map_err(|e| io(data_dir, e))?;
        let (key, pem) = DevIssuerKey::generate().map_err(DevIssuerLoadError::Generate)?;
        let temp = data_dir.join(format!(".{DEV_ISSUER_KEY_FILE}.{}.tmp", std::process::id()));
        write_private(&temp, pem.as_bytes()).map_err(|e| io(&temp, e))?;
        let linked = std::fs::hard_link(&temp, &path);
        // Best effort: a leftover temp file is harmless and named after our pid.
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), kid = key.kid(), "created a dev issuer key");
                Ok(DevIssuer { key, path })
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let pem = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                DevIssuer::from_pem(&pem, path)
            }
            Err(e) => Err(io(&path, e)),
        }
    }

    fn from_pem(pem: &str, path: PathBuf) -> Result<DevIssuer, DevIssuerLoadError> {
        match DevIssuerKey::from_pem(pem) {
            Ok(key) => Ok(DevIssuer { key, path }),
            Err(source) => Err(DevIssuerLoadError::BadKey {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.path
    }

    /// The key and its operations (`mint`, `jwks_json`, `openid_configuration`).
    pub fn key(&self) -> &DevIssuerKey {
        &self.key
    }

    /// A provider trusting this issuer at `issuer_url` with applicationID `convex`, with the
    /// keys in hand so the server never fetches its own JWKS. It also takes tokens whose
    /// `iss` is `/dev-issuer` on another loopback port (minted while no server ran, or for
    /// an earlier `dev --port 0`): see `auth::DevIssuerKey::builtin_provider` for why.
    pub fn builtin_provider(&self, issuer_url: &str) -> Provider {
        self.key.builtin_provider(issuer_url, DEV_AUDIENCE)
    }
}

impl Deref for DevIssuer {
    type Target = DevIssuerKey;

    fn deref(&self) -> &DevIssuerKey {
        &self.key
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
