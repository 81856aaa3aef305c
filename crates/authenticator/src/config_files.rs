//! Reading an app's auth configuration from disk: `auth.config.toml` plus the variables it
//! references from the process environment, `.env.local` and `.env` (in that order of
//! precedence, as Convex and most dev tools do).
//!
//! The parsing itself is `auth::AuthConfig::parse` (pure); this module only owns the files.
//! The lead's watcher re-runs [`load_auth_config`] when any of [`watched_paths`] changes.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use auth::{AuthConfig, AuthConfigError, AuthConfigErrorKind};

/// The config file, relative to the app directory.
pub const AUTH_CONFIG_FILE: &str = "auth.config.toml";
/// Local overrides (not committed).
pub const ENV_LOCAL_FILE: &str = ".env.local";
/// Shared defaults.
pub const ENV_FILE: &str = ".env";

/// The files whose change should trigger a reload of the auth configuration.
pub fn watched_paths(app_dir: &Path) -> Vec<PathBuf> {
    [AUTH_CONFIG_FILE, ENV_LOCAL_FILE, ENV_FILE]
        .iter()
        .map(|f| app_dir.join(f))
        .collect()
}

/// Loads `app_dir/auth.config.toml`; a missing file means no providers.
pub fn load_auth_config(app_dir: &Path) -> Result<AuthConfig, AuthConfigError> {
    let path = app_dir.join(AUTH_CONFIG_FILE);
    let label = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(AuthConfig::empty()),
        Err(e) => {
            return Err(AuthConfigError::whole_file(
                &label,
                AuthConfigErrorKind::Unreadable(e.to_string()),
            ));
        }
    };
    let files = EnvFiles::load(app_dir)?;
    AuthConfig::parse(&text, &label, &|name| files.lookup(name))
}

/// Variables from `.env.local` and `.env`, consulted after the process environment.
#[derive(Debug, Default, Clone)]
pub struct EnvFiles {
    local: HashMap<String, String>,
    shared: HashMap<String, String>,
}

impl EnvFiles {
    /// Reads both files; a missing file is empty, a malformed one is an error with its line.
    pub fn load(app_dir: &Path) -> Result<EnvFiles, AuthConfigError> {
        Ok(EnvFiles {
            local: read_env_file(&app_dir.join(ENV_LOCAL_FILE))?,
            shared: read_env_file(&app_dir.join(ENV_FILE))?,
        })
    }

    /// Process environment first, then `.env.local`, then `.env`.
    pub fn lookup(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.local.get(name).cloned())
            .or_else(|| self.shared.get(name).cloned())
    }
}

fn read_env_file(path: &Path) -> Result<HashMap<String, String>, AuthConfigError> {
    let label = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => {
            return Err(AuthConfigError::whole_file(
                &label,
                AuthConfigErrorKind::Unreadable(e.to_string()),
            ));
        }
    };
    let mut vars = HashMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                vars.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(line_text, index)) => {
                let line = text
                    .lines()
                    .position(|l| l.trim_end() == line_text.trim_end())
                    .map_or(0, |i| i + 1);
                return Err(AuthConfigError {
                    file: label,
                    line,
                    column: index + 1,
                    kind: AuthConfigErrorKind::Syntax(
                        "expected KEY=VALUE (quote values with spaces or #)".into(),
                    ),
                });
            }
            Err(e) => {
                return Err(AuthConfigError::whole_file(
                    &label,
                    AuthConfigErrorKind::Unreadable(e.to_string()),
                ));
            }
        }
    }
    Ok(vars)
}
