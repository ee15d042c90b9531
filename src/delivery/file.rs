//! The file sink: one JSON line per delivered event, for the built-in default config and
//! for users who want events on disk rather than behind an HTTP service.
//!
//! Line format: `{"received_at":"<RFC 3339>","route":"..","event_id":..,"client":"..","body":<the body>}`
//! where `body` is the received JSON with the whitespace outside strings removed (so it
//! fits on one line; key order and number spelling are kept).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{DeliveryError, Outbound};
use crate::pipeline::json;

/// An append-only JSON-lines file, fsynced after every line.
#[derive(Debug)]
pub struct FileSink {
    file: Arc<Mutex<std::fs::File>>,
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
            file: Arc::new(Mutex::new(file)),
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
            f.write_all(&line)
                .and_then(|()| f.sync_data())
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
    line.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    line.extend_from_slice(b",\"body\":");
    line.extend_from_slice(if body.is_empty() { b"null" } else { &body });
    line.extend_from_slice(b"}\n");
    line
}
