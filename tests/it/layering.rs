//! The module graph keeps the shape issue 11 asked for: the configuration is compiled
//! one way. Nothing outside `config/` reads `config::raw`, and what `config` builds
//! (allowlists, credential checks, key specs, schemas, targets, retry policies) comes
//! from modules that never reach back into `config` beyond its plain `spec` types, so a
//! change to how requests run cannot make the config compiler depend on itself.
//!
//! Read from the sources, file by file (a `mod.rs` is its directory's module): every
//! `crate::a::b` path names the longest module it starts with, `super::x` its sibling,
//! and `use x::` in a module file its own submodule. Test modules are left out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("read src");
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`; `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    let name = parts.join("::");
    // The crate roots, and test-only modules (`config/tests.rs`), are not part of the graph.
    (name != "lib" && name != "main" && !name.ends_with("tests")).then_some(name)
}

/// The code of a file without its test module and without line comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `prefix` followed by a path of identifiers, as the list of its segments.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        out.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    out
}

fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut texts = BTreeMap::new();
    for file in &files {
        if let Some(module) = module_of(&src, file) {
            let text = std::fs::read_to_string(file).expect("read source");
            texts.insert(module, (file.ends_with("mod.rs"), code(&text)));
        }
    }
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let longest = |parts: &[&str]| {
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, (is_dir, text)) in &texts {
        let out = edges.entry(module.clone()).or_default();
        for parts in paths_after(text, "crate::") {
            if let Some(target) = longest(&parts)
                && target != *module
                && !module.starts_with(&format!("{target}::"))
            {
                out.insert(target);
            }
        }
        let parent = module.rsplit_once("::").map(|(p, _)| p.to_owned());
        for parts in paths_after(text, "super::") {
            if let Some(first) = parts.first() {
                let sibling = match &parent {
                    Some(p) => format!("{p}::{first}"),
                    None => (*first).to_owned(),
                };
                if modules.contains(&sibling) && sibling != *module {
                    out.insert(sibling);
                }
            }
        }
        if *is_dir {
            for parts in paths_after(text, "use ") {
                if let Some(first) = parts.first() {
                    let child = format!("{module}::{first}");
                    if modules.contains(&child) {
                        out.insert(child);
                    }
                }
            }
        }
    }
    let texts = texts.into_iter().map(|(m, (_, t))| (m, t)).collect();
    (edges, texts)
}

fn in_config(module: &str) -> bool {
    module == "config" || module.starts_with("config::")
}

#[test]
fn nothing_outside_config_reads_config_raw() {
    let (_, texts) = graph();
    let readers: Vec<&String> = texts
        .iter()
        .filter(|(m, t)| !in_config(m) && t.contains("raw::"))
        .filter(|(_, t)| {
            paths_after(t, "config::")
                .iter()
                .any(|p| p.first() == Some(&"raw"))
        })
        .map(|(m, _)| m)
        .collect();
    assert!(readers.is_empty(), "config::raw read from {readers:?}");
}

#[test]
fn what_config_builds_never_reaches_back_into_config() {
    let (edges, _) = graph();
    let allowed = |m: &str| m == "config::spec";
    // Breadth-first from every module `config` uses, through modules outside `config`.
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for (module, out) in &edges {
        if in_config(module) {
            for target in out.iter().filter(|t| !in_config(t)) {
                if seen.insert(target.clone(), Some(module.clone())).is_none() {
                    queue.push_back(target.clone());
                }
            }
        }
    }
    // `config::spec` is plain data: what it uses must obey the same rule.
    for target in edges
        .get("config::spec")
        .into_iter()
        .flatten()
        .filter(|t| !in_config(t))
    {
        if seen
            .insert(target.clone(), Some("config::spec".into()))
            .is_none()
        {
            queue.push_back(target.clone());
        }
    }
    assert!(
        seen.contains_key("pipeline::allowlist") && seen.contains_key("delivery::target"),
        "the graph reader lost its way: {:?}",
        seen.keys().collect::<Vec<_>>()
    );
    while let Some(module) = queue.pop_front() {
        for target in edges.get(&module).into_iter().flatten() {
            if in_config(target) {
                if allowed(target) {
                    continue;
                }
                let mut path = vec![target.clone(), module.clone()];
                while let Some(Some(prev)) = seen.get(path.last().expect("path")) {
                    path.push(prev.clone());
                    if in_config(prev) {
                        break;
                    }
                }
                path.reverse();
                panic!("config reaches back into itself: {}", path.join(" → "));
            }
            if !seen.contains_key(target) {
                seen.insert(target.clone(), Some(module.clone()));
                queue.push_back(target.clone());
            }
        }
    }
}
