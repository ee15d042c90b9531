//! Configuration: parse the TOML file (`raw`), then compile it into checked [`Settings`].
//!
//! Bad configuration fails here, at start-up or in `hookgate check`, with a message that
//! names the key; it never surfaces on the first request.

mod auth;
mod compile;
mod presets;
mod raw;
pub mod secret_source;
pub mod spec;

use std::path::{Path, PathBuf};

pub use crate::secret::redact_url;
pub use compile::duration as parse_duration;
pub use compile::{
    CertPaths, JSON_DEPTH_CEILING, MAX_DURATION, RESERVED_PATHS, RedisSettings, Route,
    ServerSettings, Settings, SniCert, StoreSettings, TlsSettings,
};

/// The built-in default configuration (DESIGN.md §2), used when no file is given and
/// `./hookgate.toml` does not exist.
pub const DEFAULT_CONFIG: &str = include_str!("../../config.default.toml");

/// Why a configuration was refused. The message always names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys or wrong types.
    #[error("{origin}: {message}")]
    Parse {
        /// Which file (or "built-in default config").
        origin: String,
        /// The parser's message, naming the key and line.
        message: String,
    },
    /// A key has a value that cannot be used.
    #[error("{origin}: {key}: {reason}")]
    Invalid {
        /// Which file.
        origin: String,
        /// The key path, e.g. `route[0].allow_ips[1]`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the configuration came from, for messages.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file given with `--config` or found as `./hookgate.toml`.
    File(PathBuf),
    /// The built-in default.
    BuiltIn,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::BuiltIn => f.write_str("built-in default config"),
        }
    }
}

/// Picks the config source as DESIGN.md §2 says: `--config`, else `./hookgate.toml`, else
/// the built-in default.
pub fn locate(explicit: Option<&Path>) -> ConfigSource {
    match explicit {
        Some(p) => ConfigSource::File(p.to_path_buf()),
        None => {
            let local = Path::new("hookgate.toml");
            if local.exists() {
                ConfigSource::File(local.to_path_buf())
            } else {
                ConfigSource::BuiltIn
            }
        }
    }
}

/// Reads, parses and compiles the configuration from `source`.
pub fn load(source: &ConfigSource) -> Result<Settings, ConfigError> {
    let text = match source {
        ConfigSource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?
        }
        ConfigSource::BuiltIn => DEFAULT_CONFIG.to_owned(),
    };
    let base_dir = match source {
        ConfigSource::File(p) => p.parent().map(Path::to_path_buf),
        ConfigSource::BuiltIn => None,
    };
    compile_text(&text, &source.to_string(), base_dir.as_deref())
}

/// Parses and compiles configuration text; `origin` names it in error messages.
pub fn from_str(text: &str, origin: &str) -> Result<Settings, ConfigError> {
    compile_text(text, origin, None)
}

/// Parses and compiles configuration text; relative schema paths resolve against
/// `base_dir` (the config file's directory).
pub fn compile_text(
    text: &str,
    origin: &str,
    base_dir: Option<&Path>,
) -> Result<Settings, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_owned(),
        message: parse_message(text, &e),
    })?;
    secret_source::with_base_dir(base_dir, || compile::compile(raw, base_dir)).map_err(
        |(key, reason)| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            reason,
        },
    )
}

/// The parser's reason with its position, but without the snippet of the offending line
/// that `toml` prints and with quoted values masked: the line may hold a literal secret,
/// and this message reaches stderr and, for a refused reload, the log. Key names (which
/// serde quotes in backticks) stay.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let mut masked = String::new();
    let mut quoted = false;
    for c in e.message().trim_end().chars() {
        if c == '"' {
            if !quoted {
                masked.push_str("\"***\"");
            }
            quoted = !quoted;
        } else if !quoted {
            masked.push(c);
        }
    }
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.len() - line_start + 1;
            // The key the line assigns (up to its first '='), or a table header: never
            // what follows, which may be a secret.
            let prefix = before.get(line_start..).unwrap_or("");
            let key = match prefix.split_once('=') {
                Some((key, _)) => key.trim(),
                None if prefix.trim_start().starts_with('[') => prefix.trim(),
                None => "",
            };
            if key.is_empty() {
                format!("TOML parse error at line {line}, column {column}: {masked}")
            } else {
                format!("TOML parse error at line {line}, column {column} ({key}): {masked}")
            }
        }
        None => format!("TOML parse error: {masked}"),
    }
}

#[cfg(test)]
mod tests;
