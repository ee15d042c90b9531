//! TLS termination: certificates loaded from PEM files, chosen by SNI, swapped without a
//! restart.
//!
//! The rustls `ServerConfig` is built once; its certificate resolver holds the loaded
//! certificates behind an [`ArcSwap`], so a reload replaces only them and every handshake
//! sees one consistent set. A reload that fails (a missing file, a key that does not match
//! its certificate, a file caught half-written by a rotation) is refused with an ERROR
//! line and the old certificates keep serving; the next change event tries again.
//!
//! Reloads come from SIGHUP and from file changes ([`super::watch`]): events are
//! coalesced and a reload only happens when some file's bytes changed.
//!
//! The client CA (mTLS) is read at start-up only: it is part of the verifier, which rustls
//! fixes in the `ServerConfig`.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::watch::SETTLE;
use crate::config::spec::ClientAuth;
use crate::config::{CertPaths, TlsSettings};

/// Most bytes read from one PEM file; a chain or CA bundle is a few hundred KiB at most.
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is larger than any PEM file should be.
    #[error("{0} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge(PathBuf),
    /// A file holds no usable PEM object of the expected kind.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the key, the pair, or the configuration.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being built.
        context: String,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The client CA could not be turned into a verifier.
    #[error("client_ca {path}: {reason}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge(path.to_path_buf()));
    }
    Ok(bytes)
}

fn pem_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the certificates of a PEM file, in file order.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// Loads one chain and key and checks that they belong together.
fn load_pair(paths: &CertPaths) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = read_certs(&paths.cert)?;
    let key_bytes = read_pem(&paths.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| pem_error(&paths.key, format!("no usable private key: {e}")))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| {
        TlsError::Rustls {
            context: format!("key {}", paths.key.display()),
            source,
        }
    })?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(|source| TlsError::Rustls {
        context: format!(
            "key {} does not match certificate {}",
            paths.key.display(),
            paths.cert.display()
        ),
        source,
    })?;
    Ok(Arc::new(certified))
}

/// One consistent set of served certificates.
#[derive(Debug)]
struct CertSet {
    default: Arc<CertifiedKey>,
    /// Exact names and `*.suffix` wildcards, lower-case.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// The bytes every file had when loaded, to tell a real change from a touch.
    fingerprint: Vec<u8>,
}

impl CertSet {
    fn load(settings: &TlsSettings) -> Result<CertSet, TlsError> {
        let default = load_pair(&settings.default)?;
        let mut by_name = HashMap::new();
        for entry in &settings.sni {
            let key = load_pair(&entry.paths)?;
            for name in &entry.names {
                by_name.insert(name.clone(), Arc::clone(&key));
            }
        }
        Ok(CertSet {
            default,
            by_name,
            fingerprint: fingerprint(settings),
        })
    }

    fn choose(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni else {
            return Arc::clone(&self.default);
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.by_name.get(&name) {
            return Arc::clone(k);
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.by_name.get(&format!("*.{parent}"))
        {
            return Arc::clone(k);
        }
        // An unknown name gets the default certificate; the client decides whether it
        // accepts it (DESIGN.md: the top-level pair is the default).
        Arc::clone(&self.default)
    }
}

/// Every watched file's bytes, concatenated with their lengths (unreadable files count as
/// empty): equal fingerprints mean nothing to reload.
fn fingerprint(settings: &TlsSettings) -> Vec<u8> {
    let mut out = Vec::new();
    for path in files(settings) {
        let bytes = read_pem(&path).unwrap_or_default();
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn files(settings: &TlsSettings) -> Vec<PathBuf> {
    let mut out = vec![settings.default.cert.clone(), settings.default.key.clone()];
    for e in &settings.sni {
        out.push(e.paths.cert.clone());
        out.push(e.paths.key.clone());
    }
    out
}

#[derive(Debug)]
struct Resolver {
    current: ArcSwap<CertSet>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().choose(hello.server_name()))
    }
}

/// The TLS side of the listener: the acceptor and what reloads its certificates.
#[derive(Clone)]
pub struct TlsEdge {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    settings: Arc<TlsSettings>,
}

impl std::fmt::Debug for TlsEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsEdge")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsEdge {
    /// Loads the certificates and builds the acceptor: TLS 1.2 and 1.3 with the ring
    /// provider, ALPN `h2` then `http/1.1`, client certificates per `client_ca`.
    pub fn new(settings: &TlsSettings) -> Result<TlsEdge, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(Resolver {
            current: ArcSwap::from_pointee(CertSet::load(settings)?),
        });
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|source| TlsError::Rustls {
                context: "protocol versions".to_owned(),
                source,
            })?;
        let builder = match &settings.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| TlsError::ClientCa {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match settings.client_auth {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier.build().map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&resolver) as _);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsEdge {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            settings: Arc::new(settings.clone()),
        })
    }

    /// The acceptor handshakes run on.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the certificate files again and swaps them in when they changed. On an
    /// error the served certificates stay and the error is returned.
    pub fn reload(&self) -> Result<bool, TlsError> {
        if fingerprint(&self.settings) == self.resolver.current.load().fingerprint {
            return Ok(false);
        }
        let set = CertSet::load(&self.settings)?;
        self.resolver.current.store(Arc::new(set));
        Ok(true)
    }

    fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(true) => tracing::info!(trigger = why, "TLS certificates reloaded."),
            Ok(false) => tracing::debug!(trigger = why, "TLS certificates unchanged."),
            Err(e) => tracing::error!(
                trigger = why,
                error = %e,
                "TLS certificate reload refused; the served certificates stay."
            ),
        }
    }

    /// Reloads on SIGHUP and whenever a file in a certificate's directory changes, until
    /// the returned task is aborted.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let edge = self.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        // The watcher lives as long as the task; a watcher that cannot start (inotify
        // limits) leaves SIGHUP working, with a warning.
        let watcher = super::watch::dirs(&files(&self.settings), tx, "TLS certificates");
        tokio::spawn(async move {
            let _watcher = watcher;
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<Option<()>>();
                tokio::select! {
                    Some(()) = hangup => edge.reload_logged("SIGHUP"),
                    Some(()) = rx.recv() => {
                        tokio::time::sleep(SETTLE).await;
                        while rx.try_recv().is_ok() {}
                        edge.reload_logged("file change");
                    }
                    else => break,
                }
            }
        })
    }
}

/// The names a verified client certificate proves: its DNS and URI SANs and its subject
/// CNs. Empty when the certificate cannot be parsed (it was verified, so this does not
/// happen in practice; an unparsable one simply matches no `client_subjects`).
pub fn client_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => names.push((*n).to_owned()),
                _ => {}
            }
        }
    }
    for cn in parsed.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(s.to_owned());
        }
    }
    names
}

/// What `hookgate check` says about one served certificate (the chain's leaf).
#[derive(Debug, Clone)]
pub struct CertSummary {
    /// The file.
    pub path: PathBuf,
    /// The subject, as RFC 4514 text.
    pub subject: String,
    /// DNS, URI and IP subject alternative names.
    pub sans: Vec<String>,
    /// `notAfter`, RFC 2822-like text.
    pub not_after: String,
    /// Whole days until `notAfter` (negative once expired).
    pub days_left: i64,
}

/// Certificates closer than this to expiry get a warning from `hookgate check`.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// Summaries of every certificate `settings` serves, default first.
pub fn summaries(settings: &TlsSettings) -> Result<Vec<CertSummary>, TlsError> {
    let mut paths = vec![settings.default.cert.clone()];
    paths.extend(settings.sni.iter().map(|e| e.paths.cert.clone()));
    paths.iter().map(|p| summary(p)).collect()
}

fn summary(path: &Path) -> Result<CertSummary, TlsError> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let certs = read_certs(path)?;
    let leaf = certs
        .first()
        .ok_or_else(|| pem_error(path, "no CERTIFICATE in the file"))?;
    let (_, parsed) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| pem_error(path, format!("unreadable certificate: {e}")))?;
    let mut sans = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => sans.push(format!("DNS:{n}")),
                GeneralName::URI(n) => sans.push(format!("URI:{n}")),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(format!("IP:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    let not_after = parsed.validity().not_after;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(CertSummary {
        path: path.to_path_buf(),
        subject: parsed.subject().to_string(),
        sans,
        not_after: not_after.to_string(),
        days_left: (not_after.timestamp() - now).div_euclid(86_400),
    })
}
