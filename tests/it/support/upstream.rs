//! A real upstream: an axum server on `127.0.0.1:0` that records every request it gets
//! and answers with a settable status, body and delay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::{Mutex, mpsc};

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
struct Knobs {
    tx: mpsc::UnboundedSender<Recorded>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    arrivals: Arc<AtomicU64>,
    retry_after: Arc<AtomicU64>,
}

/// The running upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    rx: Mutex<mpsc::UnboundedReceiver<Recorded>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    arrivals: Arc<AtomicU64>,
    retry_after: Arc<AtomicU64>,
}

impl Upstream {
    /// Starts it; it answers 200 `{"upstream":"ok"}` until told otherwise.
    pub async fn start() -> Upstream {
        let (tx, rx) = mpsc::unbounded_channel();
        let knobs = Knobs {
            tx,
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            arrivals: Arc::new(AtomicU64::new(0)),
            retry_after: Arc::new(AtomicU64::new(0)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(record)
            .with_state(knobs.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream {
            addr,
            rx: Mutex::new(rx),
            status: knobs.status,
            delay_ms: knobs.delay_ms,
            arrivals: knobs.arrivals,
            retry_after: knobs.retry_after,
        }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Status of the next answers.
    pub fn set_status(&self, s: u16) {
        self.status.store(s, Ordering::SeqCst);
    }

    /// `Retry-After` seconds sent with the next answers (0: none).
    #[allow(dead_code)]
    pub fn set_retry_after(&self, secs: u64) {
        self.retry_after.store(secs, Ordering::SeqCst);
    }

    /// Delay before answering.
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Waits until `n` requests have arrived, before their delay and answer (fails the
    /// test after 5 s): a test can then act while they are in flight, without a sleep.
    #[allow(dead_code)]
    pub async fn wait_arrivals(&self, n: u64) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while self.arrivals.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "fewer than {n} requests arrived within 5 s");
    }

    /// The next recorded request (fails the test after 5 s).
    pub async fn next(&self) -> Recorded {
        tokio::time::timeout(Duration::from_secs(5), self.rx.lock().await.recv())
            .await
            .expect("upstream received nothing within 5 s")
            .expect("channel open")
    }

    /// The next recorded request within `wait`, if any.
    #[allow(dead_code)]
    pub async fn next_within(&self, wait: Duration) -> Option<Recorded> {
        tokio::time::timeout(wait, self.rx.lock().await.recv())
            .await
            .ok()
            .flatten()
    }

    /// Asserts that nothing more reaches the upstream within a short wait.
    pub async fn assert_nothing(&self) {
        let got =
            tokio::time::timeout(Duration::from_millis(150), self.rx.lock().await.recv()).await;
        if let Ok(Some(r)) = got {
            panic!("upstream unexpectedly received {} {}", r.method, r.uri);
        }
    }

    /// How many requests are waiting in the record right now.
    #[allow(dead_code)]
    pub async fn count_now(&self) -> usize {
        let mut rx = self.rx.lock().await;
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

async fn record(
    State(k): State<Knobs>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    k.arrivals.fetch_add(1, Ordering::SeqCst);
    let delay = k.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let _ = k.tx.send(Recorded {
        method,
        uri,
        headers,
        body,
    });
    let status = StatusCode::from_u16(k.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    let retry_after = k.retry_after.load(Ordering::SeqCst);
    if retry_after > 0 {
        headers.insert("retry-after", http::HeaderValue::from(retry_after));
    }
    (status, headers, r#"{"upstream":"ok"}"#)
}
