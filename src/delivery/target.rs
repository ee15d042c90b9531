//! Where a route's events go, parsed once when the configuration is compiled: an
//! `http(s)://` upstream (its URI without credentials, the `Authorization: Basic` they
//! stand for) or a file.
//!
//! A leaf module on purpose: `config` builds these values, and nothing here reaches
//! back into `config` or the delivery machinery, so the configuration depends only on
//! plain data (issue 11, "one-way config"; checked by `tests/layering.rs`).

use std::path::PathBuf;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Uri};
use percent_encoding::{AsciiSet, CONTROLS};

/// Where a route's events go. `Debug` and `Display` hide URL credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// An HTTP(S) upstream.
    Http(Box<HttpUpstream>),
    /// A JSON-lines file.
    File(PathBuf),
}

impl Target {
    /// Parses `http://...`, `https://...` or `file://PATH` (`file:///abs/path` or
    /// `file://./relative/path`: everything after `file://` is the path).
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// upstream needs a path".into());
            }
            return Ok(Target::File(PathBuf::from(path)));
        }
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => HttpUpstream::new(url)
                .map(|up| Target::Http(Box::new(up)))
                .map_err(|e| format!("{text:?} cannot be requested ({e})")),
            "http" | "https" => Err(format!("{text:?} has no host")),
            other => Err(format!(
                "scheme {other:?} is not supported (use http://, https:// or file://)"
            )),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Credentials in the URL are never printed (start-up table, `check`, logs),
            // nor query values: a query is where many upstreams take their secret
            // (`?code=`, `?token=`). Parameter names stay.
            Target::Http(upstream) => {
                let u = upstream.url();
                let mut shown = u.clone();
                if u.password().is_some() || !u.username().is_empty() {
                    let _ = shown.set_username("***");
                    let _ = shown.set_password(None);
                }
                if let Some(query) = u.query().filter(|q| !q.is_empty()) {
                    let masked: Vec<String> = query
                        .split('&')
                        .map(|pair| match pair.split_once('=') {
                            Some((name, _)) => format!("{name}=***"),
                            None => pair.to_owned(),
                        })
                        .collect();
                    shown.set_query(Some(&masked.join("&")));
                }
                write!(f, "{shown}")
            }
            Target::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

/// Characters of a query that are sent percent-encoded: those the WHATWG URL standard
/// encodes in the query of an `http(s)` URL (what reqwest's `Url` did to the sender's
/// query, kept so the upstream sees the same bytes as before).
const QUERY_ENCODED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\'');

/// An `http(s)://` upstream, parsed once when the configuration is compiled.
#[derive(Clone)]
pub struct HttpUpstream {
    /// The URL as configured (credentials included): for display and config checks.
    url: url::Url,
    /// The request URI when the sender sent no query: credentials removed.
    uri: Uri,
    /// Its parts, to build a URI with a merged query.
    scheme: Scheme,
    authority: Authority,
    /// The path, percent-encoded as `Url` normalised it.
    path: String,
    /// `Authorization: Basic` for credentials in the URL.
    authorization: Option<HeaderValue>,
}

impl HttpUpstream {
    /// Takes an `http://` or `https://` URL with a host apart.
    pub fn new(url: url::Url) -> Result<Self, String> {
        let host = url.host_str().ok_or("no host")?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authority = Authority::try_from(authority).map_err(|e| format!("host: {e}"))?;
        let scheme = Scheme::try_from(url.scheme()).map_err(|e| format!("scheme: {e}"))?;
        let path = url.path().to_owned();
        let path_and_query = match url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| format!("path: {e}"))?;
        Ok(HttpUpstream {
            authorization: basic_authorization(&url),
            url,
            uri,
            scheme,
            authority,
            path,
        })
    }

    /// The URL as configured.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// `Authorization: Basic` for credentials in the URL, if it has any.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// The URI to request: the configured one, or with `query` (the configured query
    /// merged with the sender's) in place of its own.
    pub fn uri(&self, query: Option<&str>) -> Result<Uri, String> {
        let Some(query) = query else {
            return Ok(self.uri.clone());
        };
        let query: std::borrow::Cow<'_, str> =
            percent_encoding::utf8_percent_encode(query, QUERY_ENCODED).into();
        let path_and_query =
            PathAndQuery::try_from(format!("{}?{query}", self.path)).map_err(|e| e.to_string())?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|e| e.to_string())
    }
}

impl PartialEq for HttpUpstream {
    fn eq(&self, other: &Self) -> bool {
        // Everything else is derived from the URL.
        self.url == other.url
    }
}

impl Eq for HttpUpstream {}

/// `Basic base64(user:password)` from the URL's userinfo, percent-decoded (as reqwest
/// sent it); `None` without credentials.
fn basic_authorization(url: &url::Url) -> Option<HeaderValue> {
    use base64::Engine as _;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let mut pair: Vec<u8> = percent_encoding::percent_decode_str(url.username()).collect();
    pair.push(b':');
    pair.extend(percent_encoding::percent_decode_str(
        url.password().unwrap_or(""),
    ));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    // Kept out of HPACK tables and debug output.
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(text: &str) -> HttpUpstream {
        HttpUpstream::new(url::Url::parse(text).expect("url")).expect("upstream")
    }

    #[test]
    fn uri_drops_credentials_and_default_port() {
        let up = upstream("https://svc:p%40ss@example.com:443/in/../hook?a=1");
        assert_eq!(up.uri(None).expect("uri"), "https://example.com/hook?a=1");
        let basic = up.authorization().expect("basic").to_str().expect("ascii");
        // base64("svc:p@ss")
        assert_eq!(basic, "Basic c3ZjOnBAc3M=");
        let up = upstream("http://[::1]:8080/x");
        assert_eq!(up.uri(None).expect("uri"), "http://[::1]:8080/x");
        assert!(up.authorization().is_none());
    }

    #[test]
    fn uri_with_query_encodes_like_url() {
        let up = upstream("http://h/p");
        let uri = up.uri(Some("a=\"x\"&b='y'&c=%41")).expect("uri");
        let mut url = url::Url::parse("http://h/p").expect("url");
        url.set_query(Some("a=\"x\"&b='y'&c=%41"));
        assert_eq!(uri.to_string(), url.to_string());
    }
}
