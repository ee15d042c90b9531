//! Schema validation cost on real payload shapes: a 1 KiB Flashduty incident and a
//! Firefly drift notification with 10 samples. The baseline in the same run is parsing
//! the same bytes with serde_json, which every request pays anyway, so the figures can
//! be read as "validation costs N× a parse".

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookgate::schema::Schema;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/schemas/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "flashduty-incident",
            "flashduty-incident/valid/bench-1kib.json",
        ),
        ("firefly", "firefly/valid/bench-drift-10-samples.json"),
    ];
    let mut group = c.benchmark_group("schema");
    for (schema_name, path) in cases {
        let bytes = fixture(path);
        let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let schema = Schema::load(schema_name).expect("schema");
        assert!(schema.is_valid(&doc));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("parse_baseline", schema_name),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    serde_json::from_slice::<serde_json::Value>(black_box(bytes)).expect("json")
                })
            },
        );
        // The gateway's own parse: UTF-8 check, depth pre-scan, duplicate-key check.
        group.bench_with_input(
            BenchmarkId::new("gateway_parse", schema_name),
            &bytes,
            |b, bytes| {
                b.iter(|| hookgate::pipeline::json::parse(black_box(bytes), 128).expect("json"))
            },
        );
        group.bench_with_input(BenchmarkId::new("is_valid", schema_name), &doc, |b, doc| {
            b.iter(|| schema.is_valid(black_box(doc)))
        });
        group.bench_with_input(
            BenchmarkId::new("violations", schema_name),
            &doc,
            |b, doc| b.iter(|| schema.violations(black_box(doc), 20)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
