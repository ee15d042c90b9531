//! The outbox record as stored (`delivery::outbox::Record`): a worker reads it back after a
//! restart, a crash, or from a file another version wrote, so its bytes are outside input.
//!
//! Invariants: arbitrary bytes decode to a record or to an error, never a panic; a decoded
//! record encodes to bytes that decode to the same record; its body, headers and method are
//! each usable or refused with an error; a record built from arbitrary fields survives the
//! round trip exactly (body bytes, header values, method, ids, times), and any corruption of
//! its bytes (truncation, a flipped byte, an inserted byte) is an error or a record that
//! again round-trips — never a panic.
#![no_main]

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hookgate::delivery::outbox::{RECORD_VERSION, Record};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Fields {
    event_id: String,
    entity: Option<String>,
    event_time: Option<i64>,
    method: String,
    query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    client: String,
    received_ms: u64,
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
}

#[derive(Debug, Arbitrary)]
enum Corruption {
    None,
    Truncate(u16),
    Flip(u16, u8),
    Insert(u16, u8),
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Vec<u8>),
    Built(Box<Fields>, Corruption),
}

/// Every accessor of a decoded record: usable or an error, and a stable round trip.
fn check_decoded(record: &Record) {
    let again = Record::decode(&record.encode()).expect("an encoded record decodes");
    assert_eq!(&again, record, "encode/decode is not a round trip");
    let _ = record.body_bytes();
    let _ = record.method();
    if let Ok(map) = record.header_map() {
        assert!(map.len() <= record.headers.len());
    }
    let _ = record.age(SystemTime::UNIX_EPOCH);
    let _ = record.age(SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX.into()));
}

fn build(f: Fields) -> Record {
    Record {
        v: RECORD_VERSION,
        event_id: f.event_id,
        entity: f.entity,
        event_time: f.event_time,
        method: f.method,
        query: f.query,
        headers: f
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), B64.encode(v)))
            .collect(),
        body: B64.encode(&f.body),
        client: f.client,
        received_ms: f.received_ms,
        attempts: f.attempts,
        last_status: f.last_status,
        last_error: f.last_error,
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(bytes) => {
            if let Ok(record) = Record::decode(&bytes) {
                assert_eq!(record.v, RECORD_VERSION, "another version was accepted");
                check_decoded(&record);
            }
        }
        Input::Built(fields, corruption) => {
            let body = fields.body.clone();
            let method_ok = http::Method::from_bytes(fields.method.as_bytes()).is_ok();
            let headers = fields.headers.clone();
            let record = build(*fields);
            let mut bytes = record.encode();
            let decoded = Record::decode(&bytes).expect("a fresh record decodes");
            assert_eq!(decoded, record);
            assert_eq!(decoded.body_bytes().expect("body").as_ref(), &body[..]);
            assert_eq!(decoded.method().is_ok(), method_ok);
            if let Ok(map) = decoded.header_map() {
                // Every header came back with the exact value bytes, in order per name.
                for (name, value) in &headers {
                    let Ok(name) = http::HeaderName::try_from(name.as_str()) else {
                        panic!("an invalid header name was accepted");
                    };
                    assert!(
                        map.get_all(&name).iter().any(|v| v.as_bytes() == &value[..]),
                        "header {name} lost its value"
                    );
                }
            }
            match corruption {
                Corruption::None => {}
                Corruption::Truncate(at) => bytes.truncate(usize::from(at) % (bytes.len() + 1)),
                Corruption::Flip(at, mask) => {
                    let at = usize::from(at) % bytes.len().max(1);
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= mask;
                    }
                }
                Corruption::Insert(at, byte) => {
                    bytes.insert(usize::from(at) % (bytes.len() + 1), byte);
                }
            }
            if let Ok(record) = Record::decode(&bytes) {
                check_decoded(&record);
            }
        }
    }
});
