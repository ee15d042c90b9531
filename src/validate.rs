//! `hookgate validate` and `hookgate schemas`: the schema conformance tester.
//!
//! Exit codes (DESIGN.md §2): 0 every document valid, 1 any invalid, 2 unreadable input
//! or unknown schema. A document that is not JSON cannot be validated, so it counts as
//! unreadable (2). Documents are read with the gateway's own bounds (128 levels of
//! nesting; [`MAX_DOCUMENT_BYTES`]).

use std::io::{Read, Write};
use std::path::PathBuf;

use serde_json::json;

use crate::pipeline::json;
use crate::schema::{BUNDLED, Schema, Violation};

/// Largest document `validate` reads.
pub const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Output format of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per document, then one indented line per error.
    Text,
    /// One JSON document with every result.
    Json,
}

/// Exit status: all valid.
pub const EXIT_VALID: u8 = 0;
/// Exit status: at least one document invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit status: unreadable input or unknown schema.
pub const EXIT_UNREADABLE: u8 = 2;

enum Outcome {
    Valid,
    Invalid(Vec<Violation>),
    Unreadable(String),
}

/// Runs `validate`: every file (or stdin when `files` is empty) against `schema`.
pub fn run(
    schema: &str,
    format: Format,
    files: &[PathBuf],
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let schema = match Schema::load(schema) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "hookgate validate: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let mut results = Vec::new();
    if files.is_empty() {
        results.push(("-".to_owned(), check(&schema, read_all(stdin))));
    } else {
        for f in files {
            let bytes = std::fs::File::open(f)
                .map_err(|e| e.to_string())
                .and_then(|mut file| read_all(&mut file));
            results.push((f.display().to_string(), check(&schema, bytes)));
        }
    }
    let mut code = EXIT_VALID;
    for (_, o) in &results {
        code = code.max(match o {
            Outcome::Valid => EXIT_VALID,
            Outcome::Invalid(_) => EXIT_INVALID,
            Outcome::Unreadable(_) => EXIT_UNREADABLE,
        });
    }
    let _ = match format {
        Format::Text => write_text(&results, out),
        Format::Json => write_json(schema.name(), &results, out),
    };
    code
}

fn read_all(r: &mut dyn Read) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    r.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(format!("larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    Ok(buf)
}

fn check(schema: &Schema, bytes: Result<Vec<u8>, String>) -> Outcome {
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return Outcome::Unreadable(e),
    };
    match json::parse(&bytes, crate::config::JSON_DEPTH_CEILING) {
        Err(e) => Outcome::Unreadable(e.to_string()),
        Ok(doc) => {
            let v = schema.violations(&doc, usize::MAX);
            if v.is_empty() {
                Outcome::Valid
            } else {
                Outcome::Invalid(v)
            }
        }
    }
}

fn write_text(results: &[(String, Outcome)], out: &mut dyn Write) -> std::io::Result<()> {
    for (name, o) in results {
        match o {
            Outcome::Valid => writeln!(out, "{name}: valid")?,
            Outcome::Unreadable(e) => writeln!(out, "{name}: unreadable: {e}")?,
            Outcome::Invalid(v) => {
                writeln!(out, "{name}: invalid ({} errors)", v.len())?;
                for e in v {
                    let path = if e.instance_path.is_empty() {
                        "/"
                    } else {
                        &e.instance_path
                    };
                    writeln!(out, "  {path}: {}: {}", e.keyword, e.message)?;
                }
            }
        }
    }
    Ok(())
}

fn write_json(
    schema: &str,
    results: &[(String, Outcome)],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let docs: Vec<_> = results
        .iter()
        .map(|(name, o)| match o {
            Outcome::Valid => json!({"file": name, "valid": true, "errors": []}),
            Outcome::Invalid(v) => json!({"file": name, "valid": false, "errors": v}),
            Outcome::Unreadable(e) => {
                json!({"file": name, "valid": false, "unreadable": e, "errors": []})
            }
        })
        .collect();
    let all_valid = results.iter().all(|(_, o)| matches!(o, Outcome::Valid));
    let doc = json!({"schema": schema, "valid": all_valid, "results": docs});
    writeln!(out, "{doc:#}")
}

/// `hookgate schemas`: the bundled names with their titles; `show NAME` prints one.
pub fn schemas(show: Option<&str>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match show {
        None => {
            for (name, text) in BUNDLED {
                let title = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v["title"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let _ = writeln!(out, "{name:<20} {title}");
            }
            EXIT_VALID
        }
        Some(name) => match crate::schema::bundled(name) {
            Some(text) => {
                let _ = out.write_all(text.as_bytes());
                if !text.ends_with('\n') {
                    let _ = writeln!(out);
                }
                EXIT_VALID
            }
            None => {
                let _ = writeln!(
                    err,
                    "hookgate schemas: no bundled schema {name:?} (known: {})",
                    crate::schema::bundled_names()
                );
                EXIT_UNREADABLE
            }
        },
    }
}
