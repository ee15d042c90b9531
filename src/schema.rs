//! JSON Schema validation: the bundled sender schemas and users' own schema files.
//!
//! Schemas are compiled once (at start-up for routes, once per run for `hookgate
//! validate`) with the `jsonschema` crate. A `$schema` in the file names its draft; a file
//! without one is read as the [`Draft`] the user chose (`--draft`, route `schema_draft`),
//! 2020-12 by default.
//!
//! Nothing is fetched over the network: `$ref`s resolve only to the bundled schemas (by
//! their `$id`, `https://hookgate.dev/schemas/<name>.json`), to files in the directory
//! of the user's schema (or below it), and through the [`RefMap`] (`--ref-map PREFIX=DIR`,
//! `[schemas] ref_map`), which maps absolute `$id` URI prefixes to local folders, so schema
//! sets split over files that reference each other by `https://` URLs work offline. Every
//! other remote `$ref` fails closed at compile time, naming the URI and the option that
//! would map it. Only regular files are ever read: a FIFO or device would block or stream
//! forever. Bundled schemas assert `format` (their timestamps
//! must be real dates); users' schemas follow the specification, where `format` is an
//! annotation in draft 2020-12, so `hookgate validate` agrees with the official JSON
//! Schema Test Suite.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The bundled schemas: (name, JSON text).
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "apono-integration",
        include_str!("../schemas/apono-integration.json"),
    ),
    (
        "apono-request",
        include_str!("../schemas/apono-request.json"),
    ),
    ("firefly", include_str!("../schemas/firefly.json")),
    (
        "flashduty-alert",
        include_str!("../schemas/flashduty-alert.json"),
    ),
    (
        "flashduty-incident",
        include_str!("../schemas/flashduty-incident.json"),
    ),
    ("nops", include_str!("../schemas/nops.json")),
    ("wallarm", include_str!("../schemas/wallarm.json")),
    (
        "wallarm-ndjson",
        include_str!("../schemas/wallarm-ndjson.json"),
    ),
];

/// The `$id` prefix of the bundled schemas.
pub const BUNDLED_ID_PREFIX: &str = "https://hookgate.dev/schemas/";

/// Largest schema file read from disk.
const MAX_SCHEMA_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The JSON text of a bundled schema.
pub fn bundled(name: &str) -> Option<&'static str> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Why a schema could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Neither a bundled name nor a readable file.
    #[error("unknown schema {0:?}: not a bundled schema name ({names}) nor a file", names = bundled_names())]
    Unknown(String),
    /// The file could not be read.
    #[error("cannot read schema {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not JSON.
    #[error("schema {path} is not JSON: {reason}")]
    NotJson {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A `--ref-map` / `[schemas] ref_map` entry is unusable.
    #[error("ref map {prefix:?}: {reason}")]
    RefMap {
        /// The URI prefix of the entry.
        prefix: String,
        /// Why.
        reason: String,
    },
    /// The JSON is not a valid schema (or a `$ref` does not resolve).
    #[error("schema {name} does not compile: {reason}")]
    Compile {
        /// The schema's name or path.
        name: String,
        /// The compiler's message.
        reason: String,
    },
}

/// The bundled schema names, comma-separated (for error messages).
pub(crate) fn bundled_names() -> String {
    BUNDLED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One way an instance breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer to the offending value (`""` is the whole document).
    pub instance_path: String,
    /// The schema keyword that failed (`required`, `type`, `enum`, ...).
    pub keyword: String,
    /// A human-readable message.
    pub message: String,
}

/// A compiled schema, ready to validate many documents.
#[derive(Debug)]
pub struct Schema {
    name: String,
    validator: jsonschema::Validator,
}

impl Schema {
    /// Loads a bundled schema by name, or else a schema file by path (draft 2020-12 for
    /// a file without `$schema`, no ref map).
    pub fn load(name_or_path: &str) -> Result<Schema, SchemaError> {
        Schema::load_with(name_or_path, &SchemaOptions::default())
    }

    /// Loads a bundled schema by name, or else a schema file by path, with `options`
    /// (default draft, ref map) applied to the file.
    pub fn load_with(name_or_path: &str, options: &SchemaOptions) -> Result<Schema, SchemaError> {
        if let Some(text) = bundled(name_or_path) {
            return Schema::compile_bundled(name_or_path, text);
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            return Err(SchemaError::Unknown(name_or_path.to_owned()));
        }
        Schema::from_file_with(path, options)
    }

    fn compile_bundled(name: &str, text: &str) -> Result<Schema, SchemaError> {
        let value: Value = serde_json::from_str(text).map_err(|e| SchemaError::Compile {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        // Ours: assert `format`, so bundled timestamps must be real dates.
        let options = jsonschema::options().should_validate_formats(true);
        Schema::build(options, &value, name, None, &SchemaOptions::default())
    }

    /// Compiles a user's schema file; relative `$ref`s resolve to files beside it.
    pub fn from_file(path: &Path) -> Result<Schema, SchemaError> {
        Schema::from_file_with(path, &SchemaOptions::default())
    }

    /// Compiles a user's schema file with `options`; relative `$ref`s resolve to files
    /// beside it, mapped absolute ones through the ref map.
    pub fn from_file_with(path: &Path, options: &SchemaOptions) -> Result<Schema, SchemaError> {
        let abs = std::fs::canonicalize(path).map_err(|e| SchemaError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let value = read_json_file(&abs)?;
        let root = abs.parent().map(Path::to_path_buf);
        Schema::compile_value_with(
            &value,
            &abs.display().to_string(),
            Some(&abs),
            root,
            options,
        )
    }

    /// Compiles a schema given as a value (users' schemas: `format` is an annotation).
    /// `file` sets the base URI for relative references; `root` is the directory that
    /// references may read from.
    pub fn compile_value(
        value: &Value,
        name: &str,
        file: Option<&Path>,
        root: Option<PathBuf>,
    ) -> Result<Schema, SchemaError> {
        Schema::compile_value_with(value, name, file, root, &SchemaOptions::default())
    }

    /// [`Schema::compile_value`] with a default draft and a ref map.
    pub fn compile_value_with(
        value: &Value,
        name: &str,
        file: Option<&Path>,
        root: Option<PathBuf>,
        options: &SchemaOptions,
    ) -> Result<Schema, SchemaError> {
        let mut builder = jsonschema::options();
        if let Some(file) = file {
            builder = builder.with_base_uri(format!("file://{}", file.display()));
        }
        Schema::build(builder, value, name, root, options)
    }

    /// The one place a validator is built: no network retriever, the chosen draft unless
    /// the schema names its own.
    fn build(
        builder: jsonschema::ValidationOptions<'_>,
        value: &Value,
        name: &str,
        root: Option<PathBuf>,
        options: &SchemaOptions,
    ) -> Result<Schema, SchemaError> {
        let mut builder = builder.with_retriever(LocalRetriever {
            root,
            ref_map: options.ref_map.clone(),
        });
        // `with_draft` overrides `$schema`, so it is only the fallback for files that
        // name none: a `$schema` in the file always wins.
        let default = options.draft.to_jsonschema();
        if value.get("$schema").is_none() {
            builder = builder.with_draft(default);
        }
        // `dependencies` is a draft 4-7 keyword: 2019-09 split it into `dependentRequired`
        // and `dependentSchemas`, and an unknown keyword only annotates. jsonschema applies
        // it under every draft, which rejects documents that ajv, check-jsonschema and
        // the specification accept, so it is switched off when the root is 2019-09 or
        // later. (A draft-7 schema `$ref`ed from such a root loses it too; the custom
        // keyword cannot see the draft of the resource it sits in.)
        if matches!(
            default.detect(value),
            jsonschema::Draft::Draft201909 | jsonschema::Draft::Draft202012
        ) {
            builder = builder.with_keyword("dependencies", |_, _, _| Ok(Box::new(Annotation)));
        }
        let validator = builder.build(value).map_err(|e| SchemaError::Compile {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Schema {
            name: name.to_owned(),
            validator,
        })
    }

    /// The schema's name (bundled name or file path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when `instance` conforms (fast path, no error collection).
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// The violations of `instance`, at most `max` of them.
    pub fn violations(&self, instance: &Value, max: usize) -> Vec<Violation> {
        if self.validator.is_valid(instance) {
            return Vec::new();
        }
        self.validator
            .iter_errors(instance)
            .take(max)
            .map(|e| Violation {
                instance_path: e.instance_path().as_str().to_owned(),
                keyword: e.kind().keyword().to_owned(),
                message: e.to_string(),
            })
            .collect()
    }
}

fn read_json_file(path: &Path) -> Result<Value, SchemaError> {
    let meta = std::fs::metadata(path).map_err(|e| SchemaError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(SchemaError::Read {
            path: path.to_path_buf(),
            reason: "not a regular file".to_owned(),
        });
    }
    if meta.len() > MAX_SCHEMA_FILE_BYTES {
        return Err(SchemaError::Read {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_SCHEMA_FILE_BYTES} bytes"),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| SchemaError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| SchemaError::NotJson {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Resolves `$ref`s without a network: bundled schemas by `$id`, `file://` URIs inside
/// `root`, and URIs under a ref-map prefix from its folder.
struct LocalRetriever {
    root: Option<PathBuf>,
    ref_map: RefMap,
}

impl jsonschema::Retrieve for LocalRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        if let Some(file) = text.strip_prefix(BUNDLED_ID_PREFIX) {
            let name = file.strip_suffix(".json").unwrap_or(file);
            let body = bundled(name).ok_or_else(|| format!("no bundled schema {name:?}"))?;
            return Ok(serde_json::from_str(body)?);
        }
        if let Some(found) = self.ref_map.resolve(text) {
            let path = found?;
            return read_json_file(&path).map_err(|e| e.to_string().into());
        }
        if uri.scheme().as_str() == "file" {
            let root = self
                .root
                .as_ref()
                .ok_or("file references are only allowed from a schema file")?;
            let path = std::fs::canonicalize(uri.path().as_str())
                .map_err(|e| format!("{}: {e}", uri.path()))?;
            if !path.starts_with(root) {
                return Err(format!(
                    "{} is outside the schema's directory {}",
                    path.display(),
                    root.display()
                )
                .into());
            }
            return read_json_file(&path).map_err(|e| e.to_string().into());
        }
        Err(format!(
            "remote reference {text} is not fetched (no network access for schemas); \
             map its prefix to a local folder with `--ref-map PREFIX=DIR` \
             (config: `[schemas] ref_map`)"
        )
        .into())
    }
}

/// A keyword that only annotates: every instance passes it.
struct Annotation;

impl<'i> jsonschema::Keyword<'i> for Annotation {
    fn validate(&self, _: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        Ok(())
    }

    fn is_valid(&self, _: &'i Value) -> bool {
        true
    }
}

// === Draft ===

/// The JSON Schema draft of a schema that names no `$schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Draft {
    /// Draft 4.
    #[serde(rename = "4")]
    Draft4,
    /// Draft 6.
    #[serde(rename = "6")]
    Draft6,
    /// Draft 7.
    #[serde(rename = "7")]
    Draft7,
    /// Draft 2019-09.
    #[serde(rename = "2019-09")]
    Draft201909,
    /// Draft 2020-12 (the default).
    #[default]
    #[serde(rename = "2020-12")]
    Draft202012,
}

impl Draft {
    /// The accepted spellings, for messages.
    pub const NAMES: &'static str = "4, 6, 7, 2019-09, 2020-12";

    fn to_jsonschema(self) -> jsonschema::Draft {
        match self {
            Draft::Draft4 => jsonschema::Draft::Draft4,
            Draft::Draft6 => jsonschema::Draft::Draft6,
            Draft::Draft7 => jsonschema::Draft::Draft7,
            Draft::Draft201909 => jsonschema::Draft::Draft201909,
            Draft::Draft202012 => jsonschema::Draft::Draft202012,
        }
    }
}

impl std::str::FromStr for Draft {
    type Err = String;

    fn from_str(s: &str) -> Result<Draft, String> {
        Ok(match s {
            "4" => Draft::Draft4,
            "6" => Draft::Draft6,
            "7" => Draft::Draft7,
            "2019-09" => Draft::Draft201909,
            "2020-12" => Draft::Draft202012,
            _ => return Err(format!("unknown draft {s:?} (one of {})", Draft::NAMES)),
        })
    }
}

impl std::fmt::Display for Draft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Draft::Draft4 => "4",
            Draft::Draft6 => "6",
            Draft::Draft7 => "7",
            Draft::Draft201909 => "2019-09",
            Draft::Draft202012 => "2020-12",
        })
    }
}

/// How a user's schema file is compiled: the draft for a file without `$schema`, and
/// where absolute `$ref`s are found offline.
#[derive(Debug, Clone, Default)]
pub struct SchemaOptions {
    /// The draft of a schema that names no `$schema`.
    pub draft: Draft,
    /// URI prefix → local folder.
    pub ref_map: RefMap,
}

// === RefMap ===

/// Absolute `$ref` URI prefixes mapped to local folders: `https://schemas.example.com/`
/// → `schemas/shared` loads `https://schemas.example.com/common/user.json` from
/// `schemas/shared/common/user.json`, never from the network.
///
/// A prefix matches on whole path segments (`.../common` and `.../common/` are the same
/// prefix and do not match `.../commons.json`); the longest matching prefix wins. The
/// rest of the URI must stay inside the folder: `.`/`..` segments (also percent-encoded),
/// empty segments, backslashes and symbolic links that lead out of the folder are refused.
#[derive(Debug, Clone, Default)]
pub struct RefMap {
    /// (prefix ending in `/`, canonical folder), longest prefix first.
    entries: Vec<(String, PathBuf)>,
}

impl RefMap {
    /// Adds `prefix` → `dir`. The prefix must be an absolute URI (`scheme://...`) without
    /// query or fragment; the folder must exist.
    pub fn insert(&mut self, prefix: &str, dir: &Path) -> Result<(), SchemaError> {
        let fail = |reason: String| SchemaError::RefMap {
            prefix: prefix.to_owned(),
            reason,
        };
        if !prefix.contains("://") || prefix.contains(['?', '#']) {
            return Err(fail(
                "the prefix must be an absolute URI such as https://schemas.example.com/ \
                 without query or fragment"
                    .to_owned(),
            ));
        }
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| fail(format!("folder {}: {e}", dir.display())))?;
        if !dir.is_dir() {
            return Err(fail(format!("{} is not a folder", dir.display())));
        }
        let mut key = prefix.to_owned();
        if !key.ends_with('/') {
            key.push('/');
        }
        self.entries.retain(|(p, _)| *p != key);
        self.entries.push((key, dir));
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        Ok(())
    }

    /// Parses one `PREFIX=DIR` command-line argument. The first `=` separates them: a
    /// prefix has no query, so `=` is rare in it, while folder names may hold one.
    pub fn insert_arg(&mut self, arg: &str) -> Result<(), SchemaError> {
        let (prefix, dir) = arg.split_once('=').ok_or_else(|| SchemaError::RefMap {
            prefix: arg.to_owned(),
            reason: "expected PREFIX=DIR".to_owned(),
        })?;
        self.insert(prefix, Path::new(dir))
    }

    /// True when no prefix is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `None` when no prefix matches `uri`; else the local file, or why it is refused.
    fn resolve(&self, uri: &str) -> Option<Result<PathBuf, String>> {
        let uri = uri.split_once('#').map_or(uri, |(u, _)| u);
        let (prefix, dir) = self
            .entries
            .iter()
            .find(|(p, _)| uri.starts_with(p.as_str()) || p.strip_suffix('/') == Some(uri))?;
        Some(map_rest(uri, uri.get(prefix.len()..).unwrap_or(""), dir))
    }
}

fn map_rest(uri: &str, rest: &str, dir: &Path) -> Result<PathBuf, String> {
    if rest.is_empty() {
        return Err(format!(
            "{uri} names the mapped folder {}, not a file",
            dir.display()
        ));
    }
    if rest.contains('?') {
        return Err(format!("{uri}: a query string cannot be mapped to a file"));
    }
    let mut path = dir.to_path_buf();
    for raw in rest.split('/') {
        let segment = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| format!("{uri}: a path segment is not UTF-8"))?;
        if segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.contains(['/', '\\', '\0'])
        {
            return Err(format!(
                "{uri} is refused: its path must stay inside the mapped folder {}",
                dir.display()
            ));
        }
        path.push(segment.as_ref());
    }
    let real = std::fs::canonicalize(&path)
        .map_err(|e| format!("mapped file {} for {uri}: {e}", path.display()))?;
    if !real.starts_with(dir) {
        return Err(format!(
            "{uri} is refused: {} leads outside the mapped folder {}",
            path.display(),
            dir.display()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bundled_schema_compiles_and_accepts_its_examples() {
        for (name, text) in BUNDLED {
            let schema = Schema::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let value: Value = serde_json::from_str(text).expect("json");
            assert!(
                value.get("$id").is_some() && value.get("title").is_some(),
                "{name}"
            );
            let examples = value["examples"].as_array().expect("examples");
            assert!(!examples.is_empty(), "{name} has no examples");
            for ex in examples {
                assert_eq!(schema.violations(ex, 20), vec![], "{name} example");
            }
        }
    }

    #[test]
    fn violations_carry_path_keyword_and_are_bounded() {
        let s = Schema::compile_value(
            &json!({"type": "object", "required": ["a"], "properties": {"b": {"type": "integer"}},
                    "additionalProperties": {"type": "string"}}),
            "t",
            None,
            None,
        )
        .expect("schema");
        let v = s.violations(&json!({"b": "x"}), 20);
        assert!(
            v.iter()
                .any(|e| e.keyword == "required" && e.instance_path.is_empty())
        );
        assert!(
            v.iter()
                .any(|e| e.keyword == "type" && e.instance_path == "/b")
        );
        let many: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(s.violations(&Value::Object(many), 20).len(), 20);
    }

    #[test]
    fn remote_refs_are_not_fetched_but_bundled_ids_resolve() {
        let remote = json!({"$ref": "http://127.0.0.1:1/never.json"});
        assert!(Schema::compile_value(&remote, "r", None, None).is_err());
        let bundled_ref = json!({"$ref": "https://hookgate.dev/schemas/nops.json"});
        let s = Schema::compile_value(&bundled_ref, "b", None, None).expect("bundled ref");
        assert!(!s.is_valid(&json!({})));
    }

    #[test]
    fn file_refs_resolve_beside_the_schema_only() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("item.json"), r#"{"type":"integer"}"#).expect("w");
        std::fs::write(
            dir.path().join("main.json"),
            r#"{"type":"array","items":{"$ref":"item.json"}}"#,
        )
        .expect("w");
        let s = Schema::from_file(&dir.path().join("main.json")).expect("schema");
        assert!(s.is_valid(&json!([1, 2])));
        assert!(!s.is_valid(&json!(["x"])));
        let inner = dir.path().join("inner");
        std::fs::create_dir(&inner).expect("mkdir");
        std::fs::write(
            inner.join("escape.json"),
            r#"{"$ref":"../../etc-passwd.json"}"#,
        )
        .expect("w");
        assert!(Schema::from_file(&inner.join("escape.json")).is_err());
    }

    #[test]
    fn ref_map_paths_stay_inside_the_folder() {
        let dir = tempfile::tempdir().expect("tmp");
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(shared.join("a")).expect("mkdir");
        std::fs::write(shared.join("a/x.json"), "{}").expect("w");
        std::fs::write(dir.path().join("secret.json"), "{}").expect("w");
        let mut map = RefMap::default();
        map.insert_arg(&format!("https://s.example/base={}", shared.display()))
            .expect("insert");
        let resolve = |uri: &str| map.resolve(uri);
        assert!(resolve("https://s.example/other/x.json").is_none());
        assert!(resolve("https://s.example/basement.json").is_none());
        assert!(matches!(
            resolve("https://s.example/base/a/x.json#/defs"),
            Some(Ok(_))
        ));
        // The URI library normalises dot segments away; these are the ones that reach us.
        for uri in [
            "https://s.example/base/../secret.json",
            "https://s.example/base/a/%2e%2e/../secret.json",
            "https://s.example/base/a/%2E%2E/%2e%2e/secret.json",
            "https://s.example/base/a%2f..%2f..%2fsecret.json",
            "https://s.example/base/a//x.json",
            "https://s.example/base/",
            "https://s.example/base",
        ] {
            match resolve(uri) {
                Some(Err(e)) => assert!(e.contains(uri), "{uri}: {e}"),
                other => panic!("{uri}: {other:?}"),
            }
        }
        assert!(map.insert_arg("no-scheme/=x").is_err());
        assert!(map.insert_arg("https://s.example/").is_err());
    }
}
