//! JSON parsing and key extraction on arbitrary bytes: never panics; a parsed document
//! respects the depth bound; extracted ids are within the key size bound.
#![no_main]

use hookgate::config::raw::{MissingKey, OrderTimeUnit};
use hookgate::pipeline::extract::{DedupKey, EventKeys, MAX_KEY_BYTES, OrderSpec, event_time};
use hookgate::pipeline::json;
use libfuzzer_sys::fuzz_target;

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = json::parse(data, 32) else {
        return;
    };
    assert!(depth(&doc) <= 32);
    for unit in [OrderTimeUnit::Auto, OrderTimeUnit::S, OrderTimeUnit::Ms] {
        let _ = event_time(&doc, unit);
        for pointer in ["", "/event_id", "/a/0", "/incident/incident_id", "/~1x"] {
            let keys = EventKeys {
                dedup: Some(DedupKey::Pointer(pointer.into())),
                order: Some(OrderSpec {
                    entity: pointer.into(),
                    time: "/event_time".into(),
                    unit,
                }),
                missing: MissingKey::Pass,
            };
            if let Ok(got) = keys.extract(&http::HeaderMap::new(), data, &doc)
                && let Some(id) = got.event_id
            {
                assert!(!id.is_empty() && id.len() <= MAX_KEY_BYTES);
            }
        }
    }
});
