//! The dedup/order contract as a property of the whole gateway: random events for a few
//! entities, sent in random order and concurrency, with an upstream that fails at random
//! and senders that retry, never deliver an older event after a newer one for the same
//! entity, never deliver an id twice, and lose no event that the sender kept retrying.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use serde_json::json;

use crate::support::{client, gateway::Gateway, verdict};

#[derive(Debug, Clone)]
struct Event {
    id: u32,
    entity: u32,
    time: i64,
}

/// What the upstream saw, in the order it answered: (id, entity, time, answered 2xx).
type Log = Arc<Mutex<Vec<(u32, u32, i64, bool)>>>;

async fn flaky_upstream(fail_every: u64) -> (String, Log) {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let app = {
        let log = Arc::clone(&log);
        axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let (log, counter) = (Arc::clone(&log), Arc::clone(&counter));
            async move {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Give concurrent requests a chance to interleave.
                tokio::time::sleep(std::time::Duration::from_millis(n % 3)).await;
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                let ok = fail_every == 0 || n % fail_every != fail_every - 1;
                log.lock().expect("log").push((
                    v["event_id"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .expect("id"),
                    v["incident"]["incident_id"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .expect("entity"),
                    v["event_time"].as_i64().expect("time"),
                    ok,
                ));
                if ok {
                    http::StatusCode::OK
                } else {
                    http::StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        })
    };
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/in"), log)
}

fn events() -> impl Strategy<Value = (Vec<Event>, Vec<usize>, usize, u64)> {
    // Up to 16 distinct ids, each bound to one entity (of 3) and one time (of 6): an id
    // is one event, so its retries carry the same entity and time.
    proptest::collection::vec((0u32..3, 0i64..6), 1..16).prop_flat_map(|specs| {
        let events: Vec<Event> = specs
            .iter()
            .enumerate()
            .map(|(i, (entity, time))| Event {
                id: i as u32,
                entity: *entity,
                time: 1_712_000_000_000 + time,
            })
            .collect();
        let n = events.len();
        // Sends: every event at least once, some twice (a sender's duplicate), shuffled.
        let sends = proptest::collection::vec(0..n, 0..n)
            .prop_map(move |extra| (0..n).chain(extra).collect::<Vec<_>>())
            .prop_shuffle();
        // fail_every: 0 = the upstream never fails, k = every k-th answer is a 500.
        (
            Just(events),
            sends,
            1usize..6,
            prop_oneof![Just(0u64), 2u64..5],
        )
    })
}

/// A sender: retries on 409 / 5xx (as real senders do) until a final answer.
async fn send_until_final(c: reqwest::Client, url: String, e: Event) -> String {
    let body = json!({
        "event_id": e.id.to_string(),
        "event_time": e.time,
        "event_type": "i_new",
        "incident": {"incident_id": e.entity.to_string()},
    })
    .to_string();
    for _ in 0..200 {
        let r = c.post(&url).body(body.clone()).send().await.expect("send");
        let v = verdict(&r);
        match (r.status().as_u16(), v.as_str()) {
            (409, "in_flight") | (500, "forwarded") => {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            (200, "forwarded" | "duplicate" | "stale") => return v,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    panic!("event {e:?} never reached a final answer");
}

/// One random case against the gateway on `store` (its `[store]` lines).
fn check_interleavings(
    store: &str,
    events: &[Event],
    sends: &[usize],
    concurrency: usize,
    fail_every: u64,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let (upstream, log) = flaky_upstream(fail_every).await;
        let gw = Gateway::start(&format!(
            "[store]\n{store}\n[[route]]\nname = \"p\"\npath = \"/p\"\nupstream = \"{upstream}\"\ndedup_key = \"/event_id\"\norder_key = \"/incident/incident_id\"\norder_time = \"/event_time\"\n"
        )).await;
        let c = client();
        for chunk in sends.chunks(concurrency) {
            let tasks: Vec<_> = chunk
                .iter()
                .map(|&i| tokio::spawn(send_until_final(c.clone(), gw.url("/p"), events[i].clone())))
                .collect();
            for t in tasks {
                t.await.expect("join");
            }
        }
        let log = log.lock().expect("log").clone();
        let delivered: Vec<_> = log.iter().filter(|(.., ok)| *ok).collect();
        // (1) no id delivered twice
        let mut ids = HashSet::new();
        for (id, ..) in &delivered {
            assert!(ids.insert(*id), "id {id} delivered twice: {log:?}");
        }
        // (2) per entity, delivered times never go down
        let mut newest: HashMap<u32, i64> = HashMap::new();
        for (id, entity, time, _) in &delivered {
            if let Some(prev) = newest.get(entity) {
                assert!(time >= prev, "entity {entity}: id {id} at {time} after {prev}: {log:?}");
            }
            newest.insert(*entity, *time);
        }
        // (3) nothing lost: every event is delivered, or older than (or equal in time
        // but not newer than) what its entity already had when it was refused as stale.
        for e in events {
            let max = newest.get(&e.entity).copied().unwrap_or(i64::MIN);
            assert!(ids.contains(&e.id) || e.time < max, "event {e:?} lost: {log:?}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_keep_order_and_uniqueness((events, sends, concurrency, fail_every) in events()) {
        check_interleavings("backend = \"memory\"", &events, &sends, concurrency, fail_every);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// The same on a real Redis (a fresh server per case).
    #[test]
    fn random_interleavings_keep_order_and_uniqueness_on_redis((events, sends, concurrency, fail_every) in events()) {
        let backend = crate::support::Backend::redis();
        check_interleavings(&backend.toml, &events, &sends, concurrency, fail_every);
    }
}
