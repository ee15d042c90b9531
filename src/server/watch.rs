//! Watching files that are reread when they change: the TLS certificates and the
//! `allow_ips` files.
//!
//! The watcher observes the files' directories rather than the files: certbot replaces
//! symlinks in `live/` and cert-manager (like any Kubernetes volume) swaps a `..data`
//! symlink, neither of which changes the old file's inode. Every event in a directory
//! sends one wake-up; the reader coalesces them for [`SETTLE`] and compares
//! [`fingerprint`]s, so unrelated files in the same directory cost a read, not a reload.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long file events are gathered before one reread: a rotation writes several
/// files (a chain and its key) as separate steps.
pub const SETTLE: Duration = Duration::from_millis(250);

/// Most bytes of one file the fingerprint reads; the readers refuse larger files anyway.
const MAX_FINGERPRINT_BYTES: u64 = 4 * 1024 * 1024 + 1;

/// Watches the directories of `files`; each change event (not a mere access) sends a
/// wake-up on `tx` (dropped when one is already pending). `None`, with a warning, when no
/// watcher can start (inotify limits): the files are then reread on SIGHUP only. `what`
/// names the files in the log.
pub fn dirs(
    files: &[PathBuf],
    tx: tokio::sync::mpsc::Sender<()>,
    what: &str,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    if files.is_empty() {
        return None;
    }
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                // Full means a reread is already due.
                let _ = tx.try_send(());
            }
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(files = what, error = %e, "Cannot watch files; they are reread on SIGHUP only.");
            return None;
        }
    };
    let mut dirs: Vec<PathBuf> = files.iter().map(|f| parent(f)).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(files = what, dir = %dir.display(), error = %e, "Cannot watch a directory; its files are reread on SIGHUP only.");
        }
    }
    Some(watcher)
}

fn parent(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Every file's bytes (at most a little over 4 MiB each), concatenated with their
/// lengths; an unreadable file counts as empty. Equal fingerprints mean nothing changed.
pub fn fingerprint(files: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::new();
    for path in files {
        let mut bytes = Vec::new();
        if let Ok(f) = std::fs::File::open(path)
            && f.take(MAX_FINGERPRINT_BYTES)
                .read_to_end(&mut bytes)
                .is_err()
        {
            bytes.clear();
        }
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}
