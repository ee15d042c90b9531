//! The log writer: per-request lines leave the request path through a bounded queue.
//!
//! A request task never writes to stderr itself: it formats its line and hands it to a
//! [`tracing_appender::non_blocking`](mod@tracing_appender::non_blocking) queue of [`QUEUE_LINES`] lines, which one thread
//! drains into a buffered stderr (one `write` per batch, not per line). When stderr cannot
//! keep up (a slow terminal, a blocked pipe) the queue is full and new lines are dropped
//! rather than stalling requests: each drop is counted in
//! `hookgate_log_lines_dropped_total`. The [`WorkerGuard`] returned by [`stderr_writer`]
//! must live as long as the process: dropping it flushes what is queued.

use std::io::{BufWriter, IsTerminal as _};
use std::sync::OnceLock;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Lines the queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 16_384;

/// The drop counter of the process's log queue, once [`stderr_writer`] made it.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// A non-blocking, lossy writer to stderr, and the guard that flushes it when dropped.
pub fn stderr_writer() -> (NonBlocking, WorkerGuard) {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("hookgate-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let _ = DROPPED.set(writer.error_counter());
    (writer, guard)
}

/// Whether log lines may carry ANSI colours: only when stderr is a terminal (log files
/// and journald get plain text).
pub fn ansi() -> bool {
    std::io::stderr().is_terminal()
}

/// Log lines dropped because the queue was full, since start-up.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| u64::try_from(c.dropped_lines()).unwrap_or(u64::MAX))
}

/// `hookgate_log_lines_dropped_total`, read from the queue's counter at each scrape.
#[derive(Debug, Default)]
pub(crate) struct DroppedLines;

impl EncodeMetric for DroppedLines {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&dropped_lines(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_counter_is_exported_as_a_counter() {
        let m = crate::telemetry::Metrics::new();
        let text = m.render();
        assert!(
            text.contains("# TYPE hookgate_log_lines_dropped counter"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "hookgate_log_lines_dropped_total {}",
                dropped_lines()
            )),
            "{text}"
        );
    }
}
