//! The official JSON Schema Test Suite through the real `hookgate validate` binary: every
//! required test (each `*.json` directly under a draft folder, not `optional/`) of drafts
//! 4, 6, 7, 2019-09 and 2020-12, with the suite's remote schemas mapped offline from
//! `http://localhost:1234/` by `--ref-map`.
//!
//! Each schema is written to a file with its test documents beside it as one NDJSON file,
//! so the binary runs once per schema (about 1 400 runs), spread over a few threads.
//! The draft is passed with `--draft`, as the suite's schemas mostly name no `$schema`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/json-schema-test-suite")
}

/// Known disagreements: (draft, file stem, group description, test description, reason).
/// A listed case that starts to agree fails the test too, so the list stays true.
const EXCEPTIONS: &[(&str, &str, &str, &str, &str)] = &[];

struct Group {
    draft: &'static str,
    stem: String,
    description: String,
    schema: serde_json::Value,
    tests: Vec<(String, serde_json::Value, bool)>,
}

fn groups(draft: &'static str) -> Vec<Group> {
    let dir = suite().join(format!("draft{draft}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("suite folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        for g in doc.as_array().expect("groups") {
            out.push(Group {
                draft,
                stem: stem.clone(),
                description: g["description"].as_str().unwrap_or_default().to_owned(),
                schema: g["schema"].clone(),
                tests: g["tests"]
                    .as_array()
                    .expect("tests")
                    .iter()
                    .map(|t| {
                        (
                            t["description"].as_str().unwrap_or_default().to_owned(),
                            t["data"].clone(),
                            t["valid"].as_bool().expect("valid flag"),
                        )
                    })
                    .collect(),
            });
        }
    }
    out
}

/// Runs one group through the binary; returns the descriptions of the tests whose
/// outcome differs from the suite's (all of them, with the reason, if it did not run).
fn run_group(dir: &Path, index: usize, g: &Group) -> Vec<(String, String)> {
    let schema = dir.join(format!("{index}-schema.json"));
    let docs = dir.join(format!("{index}-docs.ndjson"));
    std::fs::write(&schema, g.schema.to_string()).expect("write schema");
    let lines: Vec<String> = g.tests.iter().map(|(_, d, _)| d.to_string()).collect();
    std::fs::write(&docs, lines.join("\n")).expect("write docs");
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("validate")
        .arg("--schema")
        .arg(&schema)
        .args(["--draft", g.draft, "--format", "json", "--ref-map"])
        .arg(format!(
            "http://localhost:1234/={}",
            suite().join("remotes").display()
        ))
        .arg(&docs)
        .output()
        .expect("run hookgate");
    let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(r) => r,
        Err(_) => {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return g
                .tests
                .iter()
                .map(|(d, _, _)| (d.clone(), why.clone()))
                .collect();
        }
    };
    let results = report["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), g.tests.len(), "{}: {report}", g.description);
    g.tests
        .iter()
        .zip(&results)
        .filter(|((_, _, valid), r)| {
            r.get("unreadable").is_some() || r["valid"].as_bool() != Some(*valid)
        })
        .map(|((d, _, valid), r)| (d.clone(), format!("expected valid={valid}, got {r}")))
        .collect()
}

#[test]
fn official_suite_passes_through_the_binary_for_every_draft() {
    let tmp = tempfile::tempdir().expect("tmp");
    let drafts = ["4", "6", "7", "2019-09", "2020-12"];
    let all: Vec<Group> = drafts.iter().flat_map(|d| groups(d)).collect();
    let workers = 4;
    let disagreements: Vec<(usize, String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let all = &all;
                let dir = tmp.path();
                scope.spawn(move || {
                    let mut found = Vec::new();
                    for (i, g) in all.iter().enumerate().skip(w).step_by(workers) {
                        for (test, why) in run_group(dir, i, g) {
                            found.push((i, test, why));
                        }
                    }
                    found
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut unexpected = Vec::new();
    let mut excused = Vec::new();
    for (i, test, why) in &disagreements {
        let g = &all[*i];
        let listed = EXCEPTIONS.iter().any(|(d, s, gd, td, _)| {
            *d == g.draft && *s == g.stem && *gd == g.description && td == test
        });
        if listed {
            excused.push((g.draft, g.stem.clone(), g.description.clone(), test.clone()));
        } else {
            unexpected.push(format!(
                "draft{} {}: {} / {test}: {why}",
                g.draft, g.stem, g.description
            ));
        }
    }
    let stale: Vec<_> = EXCEPTIONS
        .iter()
        .filter(|(d, s, gd, td, _)| {
            !excused
                .iter()
                .any(|(ed, es, egd, etd)| ed == d && es == s && egd == gd && etd == td)
        })
        .collect();
    for d in drafts {
        let total: usize = all
            .iter()
            .filter(|g| g.draft == d)
            .map(|g| g.tests.len())
            .sum();
        let failed = disagreements
            .iter()
            .filter(|(i, _, _)| all[*i].draft == d)
            .count();
        eprintln!(
            "draft {d}: {} of {total} required tests pass",
            total - failed
        );
        assert!(total > 500, "draft {d}: only {total} tests found");
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected disagreements:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(stale.is_empty(), "exceptions that now pass: {stale:?}");
}
