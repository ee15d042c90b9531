//! The real gateway, in process, on an ephemeral port.

use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Starts the gateway with `config` (TOML) on 127.0.0.1:0; `[server] listen` is ignored.
    pub async fn start(config: &str) -> Gateway {
        Gateway::start_on("127.0.0.1:0", config).await
    }

    /// Starts it on `bind` (e.g. `[::1]:0`).
    pub async fn start_on(bind: &str, config: &str) -> Gateway {
        let settings = hookgate::config::from_str(config, "test config").expect("config");
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            hookgate::run(listener, settings, async {
                let _ = rx.await;
            })
            .await
            .expect("gateway run");
        });
        Gateway {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Starts the gateway with `config` on `store` (opened by the test) instead of the
    /// store the config names.
    pub async fn start_with_store(config: &str, store: hookgate::store::Store) -> Gateway {
        let settings = hookgate::config::from_str(config, "test config").expect("config");
        let shared = hookgate::build_with_store(settings, store).expect("build");
        Gateway::serve(shared).await
    }

    /// Serves an already built gateway on 127.0.0.1:0.
    pub async fn serve(shared: hookgate::server::Shared) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            hookgate::server::serve(listener, shared, None, async {
                let _ = rx.await;
            })
            .await;
        });
        Gateway {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Begins shutdown and returns the task that ends when draining is done.
    pub fn begin_shutdown(&mut self) -> JoinHandle<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("running")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
