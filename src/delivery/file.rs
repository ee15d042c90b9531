//! The file sink: one JSON line per delivered event, for the built-in default config and
//! for users who want events on disk rather than behind an HTTP service.
//!
//! Line format: `{"received_at":"<RFC 3339>","route":"..","event_id":..,"client":"..","body":<the body>}`
//! where `body` is the received JSON with the whitespace outside strings removed (so it
//! fits on one line; key order and number spelling are kept).
//!
//! A failed append (disk full, file-size limit, I/O error) is cut back off the file
//! before the error is answered: the sender retries, and the next line must start on a
//! clean line rather than after half a line of the failed event. If even the cut fails,
//! the length to return to is kept and every later append retries the cut first, refusing
//! to write behind a fragment.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{DeliveryError, Outbound};
use crate::pipeline::json;

/// An append-only JSON-lines file, fsynced after every line.
#[derive(Debug)]
pub struct FileSink {
    file: Arc<Mutex<SinkFile>>,
}

/// The open file and, after a failed append whose cut-back also failed, the length the
/// file must return to before anything else is written.
#[derive(Debug)]
struct SinkFile {
    file: std::fs::File,
    torn_at: Option<u64>,
}

impl SinkFile {
    /// Writes `line` whole and syncs it, or leaves the file as it was.
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(len) = self.torn_at {
            self.cut_back(len)?;
        }
        // Under the lock this process is the only writer, so the length now is where
        // the line starts (another process appending concurrently is not supported).
        let before = self.file.metadata()?.len();
        let written = self
            .file
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // The write error is the one worth answering; a failed cut is remembered.
            if self.cut_back(before).is_err() {
                self.torn_at = Some(before);
            }
            return Err(e);
        }
        Ok(())
    }

    fn cut_back(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_data()?;
        self.torn_at = None;
        Ok(())
    }
}

impl FileSink {
    /// Opens (creating it and its directory) the file for appending.
    pub fn open(path: &Path) -> Result<Self, DeliveryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DeliveryError::File(format!("{}: {e}", dir.display())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| DeliveryError::File(format!("{}: {e}", path.display())))?;
        Ok(FileSink {
            file: Arc::new(Mutex::new(SinkFile {
                file,
                torn_at: None,
            })),
        })
    }

    /// Appends one event and waits until it is on disk.
    pub async fn append(&self, out: &Outbound<'_>) -> Result<(), DeliveryError> {
        let line = render(out);
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || {
            let mut f = file
                .lock()
                .map_err(|_| DeliveryError::File("sink lock poisoned".into()))?;
            f.append(&line)
                .map_err(|e| DeliveryError::File(e.to_string()))
        })
        .await
        .map_err(|e| DeliveryError::File(e.to_string()))?
    }
}

fn render(out: &Outbound<'_>) -> Vec<u8> {
    let head = serde_json::json!({
        "received_at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "route": out.route,
        "event_id": out.event_id,
        "client": out.client,
    })
    .to_string();
    let body = json::minify(&out.body);
    let mut line = Vec::with_capacity(head.len() + body.len() + 10);
    // `head` is a JSON object `{...}`: reopen it to add the raw body.
    line.extend_from_slice(head.strip_suffix('}').unwrap_or(&head).as_bytes());
    line.extend_from_slice(b",\"body\":");
    line.extend_from_slice(if body.is_empty() { b"null" } else { &body });
    line.extend_from_slice(b"}\n");
    line
}
