//! Every bundled schema on arbitrary JSON: the valid fixtures of each sender, mutated
//! (values replaced by arbitrary ones, members removed), and arbitrary documents.
//!
//! Invariants: an unmutated fixture is valid (positive control); `is_valid` agrees with
//! the violation list (valid exactly when it is empty); `violations(v, k)` holds at most
//! `k` entries and is a prefix of the longer list; every violation names a keyword,
//! says something, and points (`instance_path`, a JSON pointer) at a value that exists
//! in the document. Time per input is bounded by libFuzzer's `-timeout` (CI: 10 s).
#![no_main]

use std::sync::OnceLock;

use hookgate::schema::{BUNDLED, Schema};
use hookgate_fuzz::arb_json;
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// One valid fixture per bundled schema, in `BUNDLED` order of names.
const FIXTURES: &[(&str, &str)] = &[
    (
        "apono-integration",
        include_str!("../../tests/schemas/apono-integration/valid/active-no-issues.json"),
    ),
    (
        "apono-request",
        include_str!("../../tests/schemas/apono-request/valid/expired-minimal.json"),
    ),
    (
        "firefly",
        include_str!("../../tests/schemas/firefly/valid/ghost-resource-gcp.json"),
    ),
    (
        "flashduty-alert",
        include_str!("../../tests/schemas/flashduty-alert/valid/a_new-no-incident-no-person.json"),
    ),
    (
        "flashduty-incident",
        include_str!("../../tests/schemas/flashduty-incident/valid/minimal-required-only.json"),
    ),
    (
        "nops",
        include_str!("../../tests/schemas/nops/valid/doc-reserved-instance-surplus.json"),
    ),
    (
        "wallarm",
        include_str!("../../tests/schemas/wallarm/valid/undocumented-create_user.json"),
    ),
    (
        "wallarm-ndjson",
        include_str!("../../tests/schemas/wallarm-ndjson/valid/doc-ip-blocked.json"),
    ),
];

/// Most violations collected.
const MAX: usize = 64;

fn schemas() -> &'static Vec<(Schema, Value)> {
    static S: OnceLock<Vec<(Schema, Value)>> = OnceLock::new();
    S.get_or_init(|| {
        assert_eq!(
            BUNDLED.len(),
            FIXTURES.len(),
            "a fixture per bundled schema"
        );
        FIXTURES
            .iter()
            .map(|(name, text)| {
                let schema = Schema::load(name).expect("bundled schemas compile");
                (schema, serde_json::from_str(text).expect("fixture is JSON"))
            })
            .collect()
    })
}

/// Every node's JSON pointer, breadth first, at most `max`.
fn pointers(doc: &Value, max: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut i = 0;
    while i < out.len() && out.len() < max {
        let path = out[i].clone();
        match doc.pointer(&path) {
            Some(Value::Array(a)) => out.extend((0..a.len()).map(|j| format!("{path}/{j}"))),
            Some(Value::Object(o)) => out.extend(
                o.keys()
                    .map(|k| format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"))),
            ),
            _ => {}
        }
        i += 1;
    }
    out.truncate(max);
    out
}

/// Replaces or removes the node at `pointer`.
fn mutate(doc: &mut Value, pointer: &str, new: Option<Value>) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        if let Some(v) = new {
            *doc = v;
        }
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match (doc.pointer_mut(parent), new) {
        (Some(Value::Object(o)), Some(v)) => {
            o.insert(last, v);
        }
        (Some(Value::Object(o)), None) => {
            o.remove(&last);
        }
        (Some(Value::Array(a)), new) => {
            if let Ok(j) = last.parse::<usize>()
                && j < a.len()
            {
                match new {
                    Some(v) => a[j] = v,
                    None => {
                        a.remove(j);
                    }
                }
            }
        }
        _ => {}
    }
}

#[derive(Debug)]
struct Input {
    schema: usize,
    doc: Value,
    mutated: bool,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let schema = u.choose_index(FIXTURES.len())?;
        if u.ratio(1, 8)? {
            return Ok(Input {
                schema,
                doc: arb_json(u, 8)?,
                mutated: true,
            });
        }
        let mut doc = schemas()[schema].1.clone();
        let n = u.int_in_range(0..=4)?;
        for _ in 0..n {
            let ps = pointers(&doc, 256);
            let p = u.choose(&ps)?.clone();
            let new = if u.ratio(1, 4)? {
                None
            } else {
                Some(arb_json(u, 4)?)
            };
            mutate(&mut doc, &p, new);
        }
        Ok(Input {
            schema,
            doc,
            mutated: n > 0,
        })
    }
}

fuzz_target!(|input: Input| {
    let (schema, _) = &schemas()[input.schema];
    let doc = &input.doc;
    let valid = schema.is_valid(doc);
    if !input.mutated {
        assert!(valid, "{}: its own fixture is invalid", schema.name());
    }
    let all = schema.violations(doc, MAX);
    assert_eq!(
        valid,
        all.is_empty(),
        "{}: is_valid vs {all:?}",
        schema.name()
    );
    assert!(all.len() <= MAX);
    for v in &all {
        assert!(!v.keyword.is_empty() && !v.message.is_empty(), "{v:?}");
        assert!(
            doc.pointer(&v.instance_path).is_some(),
            "{}: {v:?} points at nothing in {doc}",
            schema.name()
        );
    }
    let few = schema.violations(doc, 2);
    assert!(few.len() <= 2);
    assert_eq!(few[..], all[..few.len()], "{}", schema.name());
});
