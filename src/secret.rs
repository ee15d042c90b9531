//! Secrets: credential values loaded from a literal, `env:NAME` or `file:PATH`.
//!
//! A [`Secret`] never prints its value (`Debug` shows `[redacted]`) and compares in
//! constant time, so neither logs nor timing leak it.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// A credential value (token, password, HMAC key, ...). Cheap to clone.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// Wraps raw secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Arc::from(bytes.into()))
    }

    /// The secret's bytes, for keying a MAC or comparing.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality with a presented value.
    ///
    /// Only the length is allowed to leak (as every constant-time comparison does).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_ref().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `scheme://user:***@host...`: the URL with any password replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The userinfo ends at the last '@' before the path.
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at_checked(slash).unwrap_or((rest, "")),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "[redacted]");
    }

    #[test]
    fn matches_only_equal_bytes() {
        let s = Secret::new(b"abc".to_vec());
        assert!(s.matches(b"abc"));
        assert!(!s.matches(b"abd"));
        assert!(!s.matches(b"ab"));
        assert!(!s.matches(b""));
    }
}
