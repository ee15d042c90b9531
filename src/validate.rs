//! `hookgate validate` and `hookgate schemas`: the schema conformance tester.
//!
//! Exit codes (DESIGN.md §2): 0 every document valid, 1 any invalid, 2 unreadable input,
//! unknown schema or unresolvable `$ref`. A document that is not JSON cannot be validated,
//! so it counts as unreadable (2). Documents are read with the gateway's own bounds (128
//! levels of nesting; [`MAX_DOCUMENT_BYTES`] per file).
//!
//! Inputs are files or directories; a directory is walked (sorted, symbolic links to
//! folders not followed, so no cycles) for `*.json` (one document) and `*.ndjson` (one
//! document per non-blank line, reported as `file:line`). Only regular files are read: a
//! FIFO or device named on the command line is unreadable (2), never opened, because
//! reading it could block forever. A directory that holds no document is an error (2),
//! not a silent success.
//!
//! The schema is compiled once; documents are read, parsed and validated on every core
//! (scoped threads over contiguous chunks), and reported in input order.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::pipeline::json;
use crate::schema::{BUNDLED, Schema, SchemaOptions, Violation};

/// Largest file (one document, or one NDJSON file) `validate` reads.
pub const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Output format of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per document, then one indented line per error.
    Text,
    /// One JSON document with every result.
    Json,
    /// One JUnit XML report: a test case per document, a failure per error.
    Junit,
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

/// Where the documents of one input come from.
enum Source {
    /// One JSON document per file.
    Json(PathBuf),
    /// One JSON document per non-blank line.
    Ndjson(PathBuf),
    /// An input that cannot be read at all (missing, not a regular file, empty folder).
    Broken(String, String),
}

/// Runs `validate`: every input (or stdin when `inputs` is empty) against `schema`,
/// compiled with `options` (default draft, ref map).
pub fn run(
    schema: &str,
    options: &SchemaOptions,
    format: Format,
    inputs: &[PathBuf],
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let schema = match Schema::load_with(schema, options) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "hookgate validate: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let results = if inputs.is_empty() {
        vec![("-".to_owned(), check(&schema, read_all(stdin)))]
    } else {
        let sources = collect(inputs);
        validate_all(&schema, &sources)
    };
    let mut code = EXIT_VALID;
    for (_, o) in &results {
        code = code.max(match o {
            Outcome::Valid => EXIT_VALID,
            Outcome::Invalid(_) => EXIT_INVALID,
            Outcome::Unreadable(_) => EXIT_UNREADABLE,
        });
    }
    let written = match format {
        Format::Text => write_text(&results, out),
        Format::Json => write_json(schema.name(), &results, out),
        Format::Junit => write_junit(schema.name(), &results, out),
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        let _ = writeln!(err, "hookgate validate: cannot write the report: {e}");
        return EXIT_UNREADABLE;
    }
    code
}

/// Expands the inputs into sources, in order; directories recurse.
fn collect(inputs: &[PathBuf]) -> Vec<Source> {
    let mut sources = Vec::new();
    for input in inputs {
        let shown = input.display().to_string();
        match std::fs::metadata(input) {
            Err(e) => sources.push(Source::Broken(shown, e.to_string())),
            Ok(m) if m.is_dir() => {
                let before = sources.len();
                walk(input, &mut sources);
                if sources.len() == before {
                    sources.push(Source::Broken(
                        shown,
                        "no *.json or *.ndjson document in this folder".to_owned(),
                    ));
                }
            }
            Ok(m) if m.is_file() => {
                if has_extension(input, "ndjson") {
                    sources.push(Source::Ndjson(input.clone()));
                } else {
                    sources.push(Source::Json(input.clone()));
                }
            }
            Ok(_) => sources.push(Source::Broken(
                shown,
                "not a regular file (FIFOs and devices are not read)".to_owned(),
            )),
        }
    }
    sources
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}

fn walk(dir: &Path, sources: &mut Vec<Source>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            sources.push(Source::Broken(dir.display().to_string(), e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        // `symlink_metadata`: a link to a folder is not followed (no cycles); a link to a
        // file is then checked with `metadata`, which must say regular file.
        let Ok(link) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if link.is_dir() {
            walk(&path, sources);
            continue;
        }
        let json = has_extension(&path, "json");
        let ndjson = has_extension(&path, "ndjson");
        if !json && !ndjson {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => sources.push(if ndjson {
                Source::Ndjson(path)
            } else {
                Source::Json(path)
            }),
            Ok(_) => sources.push(Source::Broken(
                path.display().to_string(),
                "not a regular file (FIFOs and devices are not read)".to_owned(),
            )),
            Err(e) => sources.push(Source::Broken(path.display().to_string(), e.to_string())),
        }
    }
}

/// Validates every source on every core; results keep the input order.
fn validate_all(schema: &Schema, sources: &[Source]) -> Vec<(String, Outcome)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(sources.len().max(1));
    if threads <= 1 {
        return sources
            .iter()
            .flat_map(|s| validate_source(schema, s))
            .collect();
    }
    let chunk = sources.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .flat_map(|s| validate_source(schema, s))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                // A worker only panics on a bug; report it rather than lose documents.
                h.join().unwrap_or_else(|_| {
                    vec![(
                        "-".to_owned(),
                        Outcome::Unreadable("internal error".to_owned()),
                    )]
                })
            })
            .collect()
    })
}

fn validate_source(schema: &Schema, source: &Source) -> Vec<(String, Outcome)> {
    match source {
        Source::Broken(name, why) => vec![(name.clone(), Outcome::Unreadable(why.clone()))],
        Source::Json(path) => vec![(path.display().to_string(), check(schema, read_file(path)))],
        Source::Ndjson(path) => {
            let name = path.display().to_string();
            let bytes = match read_file(path) {
                Ok(b) => b,
                Err(e) => return vec![(name, Outcome::Unreadable(e))],
            };
            let docs: Vec<_> = bytes
                .split(|b| *b == b'\n')
                .enumerate()
                .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
                .map(|(i, line)| {
                    (
                        format!("{name}:{}", i + 1),
                        check(schema, Ok(line.to_vec())),
                    )
                })
                .collect();
            if docs.is_empty() {
                vec![(
                    name,
                    Outcome::Unreadable("no document in this file".to_owned()),
                )]
            } else {
                docs
            }
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    // Checked again here: the file may have been replaced since the folder was walked.
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err("not a regular file (FIFOs and devices are not read)".to_owned()),
        Err(e) => return Err(e.to_string()),
    }
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    read_all(&mut file)
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
                    writeln!(out, "  {}: {}: {}", shown_path(e), e.keyword, e.message)?;
                }
            }
        }
    }
    Ok(())
}

fn shown_path(e: &Violation) -> &str {
    if e.instance_path.is_empty() {
        "/"
    } else {
        &e.instance_path
    }
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

/// JUnit XML, written with `quick-xml` so that escaping of names, paths and messages
/// (which come from documents and may hold `<`, `&`, quotes) is the library's, not ours.
/// XML 1.0 cannot carry most control characters even escaped, so those are replaced by
/// U+FFFD first. One `<testsuite>` (the schema), a `<testcase>` per document, a
/// `<failure>` per violation (`type` = keyword, `message` = instance path and keyword),
/// an `<error>` for an unreadable document.
fn write_junit(
    schema: &str,
    results: &[(String, Outcome)],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

    let failures = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Invalid(_)))
        .count();
    let errors = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Unreadable(_)))
        .count();
    let (tests, failures, errors) = (
        results.len().to_string(),
        failures.to_string(),
        errors.to_string(),
    );
    let suite_name = xml_safe(schema);
    let mut w = quick_xml::Writer::new_with_indent(out, b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let counts = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", errors.as_str()),
    ];
    let mut suites = BytesStart::new("testsuites");
    suites.extend_attributes([("name", "hookgate validate")].into_iter().chain(counts));
    w.write_event(Event::Start(suites))?;
    let mut suite = BytesStart::new("testsuite");
    suite.extend_attributes([("name", suite_name.as_str())].into_iter().chain(counts));
    w.write_event(Event::Start(suite))?;
    for (name, o) in results {
        let name = xml_safe(name);
        let mut case = BytesStart::new("testcase");
        case.extend_attributes([("name", name.as_str()), ("classname", suite_name.as_str())]);
        match o {
            Outcome::Valid => w.write_event(Event::Empty(case))?,
            Outcome::Invalid(v) => {
                w.write_event(Event::Start(case))?;
                for e in v {
                    let summary = xml_safe(&format!("{}: {}", shown_path(e), e.keyword));
                    let keyword = xml_safe(&e.keyword);
                    let mut failure = BytesStart::new("failure");
                    failure.extend_attributes([
                        ("message", summary.as_str()),
                        ("type", keyword.as_str()),
                    ]);
                    w.write_event(Event::Start(failure))?;
                    let text = xml_safe(&format!(
                        "instance path: {}\nkeyword: {}\n{}",
                        shown_path(e),
                        e.keyword,
                        e.message
                    ));
                    w.write_event(Event::Text(BytesText::new(&text)))?;
                    w.write_event(Event::End(BytesEnd::new("failure")))?;
                }
                w.write_event(Event::End(BytesEnd::new("testcase")))?;
            }
            Outcome::Unreadable(why) => {
                w.write_event(Event::Start(case))?;
                let why = xml_safe(why);
                let mut error = BytesStart::new("error");
                error.extend_attributes([("message", why.as_str()), ("type", "unreadable")]);
                w.write_event(Event::Empty(error))?;
                w.write_event(Event::End(BytesEnd::new("testcase")))?;
            }
        }
    }
    w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    writeln!(w.into_inner())
}

/// Replaces the characters XML 1.0 cannot represent at all (C0 controls other than tab,
/// newline and carriage return; U+FFFE, U+FFFF) with U+FFFD.
fn xml_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => c,
        })
        .collect()
}

/// `hookgate schemas`: the bundled names with their titles; `show NAME` prints one.
pub fn schemas(show: Option<&str>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match show {
        None => {
            for (name, text) in BUNDLED {
                let title = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("title")?.as_str().map(str::to_owned))
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
