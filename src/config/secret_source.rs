//! Resolving credential values: a literal, `env:NAME` or `file:PATH` (DESIGN.md §3).
//!
//! A missing or empty secret is an error naming the variable or file: an empty string
//! would otherwise be a credential that anybody can present.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

thread_local! {
    /// The directory relative `file:` paths resolve against while a config compiles.
    ///
    /// Scoped to one `compile` call on its thread rather than passed down: secrets are
    /// resolved deep inside every auth type's compile step, and the directory is a fact
    /// about the whole file, not about any one credential.
    static BASE_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Runs `f` with relative `file:` secrets resolving against `base_dir` (the config
/// file's directory); without one they resolve against the working directory.
pub fn with_base_dir<T>(base_dir: Option<&Path>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<PathBuf>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            BASE_DIR.with(|b| *b.borrow_mut() = old);
        }
    }
    let old = BASE_DIR.with(|b| b.replace(base_dir.map(Path::to_path_buf)));
    let _restore = Restore(old);
    f()
}

/// A path from the config, resolved against the config file's directory while a config
/// compiles (see [`with_base_dir`]).
pub fn resolve_path(path: &str) -> PathBuf {
    BASE_DIR.with(|b| match &*b.borrow() {
        Some(dir) if Path::new(path).is_relative() => dir.join(path),
        _ => PathBuf::from(path),
    })
}

/// Resolves one credential value as written in the config.
///
/// `file:` values lose one trailing newline (`\n` or `\r\n`), since editors and
/// `echo secret > file` add one that is never part of the secret.
pub fn resolve(value: &str) -> Result<Secret, String> {
    let bytes = if let Some(name) = value.strip_prefix("env:") {
        match std::env::var_os(name) {
            Some(v) if !v.is_empty() => v.into_encoded_bytes(),
            Some(_) => return Err(format!("environment variable {name} is empty")),
            None => return Err(format!("environment variable {name} is not set")),
        }
    } else if let Some(path) = value.strip_prefix("file:") {
        let resolved = BASE_DIR.with(|b| match &*b.borrow() {
            Some(dir) if Path::new(path).is_relative() => dir.join(path),
            _ => PathBuf::from(path),
        });
        let path = resolved.display().to_string();
        let path = path.as_str();
        let mut bytes =
            std::fs::read(path).map_err(|e| format!("cannot read secret file {path}: {e}"))?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(format!("secret file {path} is empty"));
        }
        bytes
    } else if value.is_empty() {
        return Err("empty secret".to_owned());
    } else {
        value.as_bytes().to_vec()
    };
    Ok(Secret::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_file_and_errors() {
        assert_eq!(
            resolve("abc").map(|s| s.expose().to_vec()),
            Ok(b"abc".to_vec())
        );
        assert!(resolve("").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("tok");
        std::fs::write(&p, "s3cret\n").expect("write");
        let s = resolve(&format!("file:{}", p.display())).expect("file secret");
        assert_eq!(s.expose(), b"s3cret");
        std::fs::write(&p, "\n").expect("write");
        let err = resolve(&format!("file:{}", p.display())).expect_err("empty");
        assert!(err.contains("empty"), "{err}");
        let err = resolve("file:/nonexistent/hookgate-secret").expect_err("missing");
        assert!(err.contains("/nonexistent/hookgate-secret"), "{err}");
        let err = resolve("env:HOOKGATE_TEST_SURELY_UNSET_VAR").expect_err("unset");
        assert!(err.contains("HOOKGATE_TEST_SURELY_UNSET_VAR"), "{err}");
    }
}
