//! JSON Schema validation: the bundled sender schemas and users' own schema files.
//!
//! Schemas are compiled once (at start-up for routes, once per run for `hookgate
//! validate`) with the `jsonschema` crate, draft 2020-12 unless the schema says otherwise.
//! Nothing is fetched over the network: `$ref`s resolve only to the bundled schemas (by
//! their `$id`, `https://hookgate.dev/schemas/<name>.json`) and to files in the directory
//! of the user's schema (or below it). Bundled schemas assert `format` (their timestamps
//! must be real dates); users' schemas follow the specification, where `format` is an
//! annotation in draft 2020-12, so `hookgate validate` agrees with the official JSON
//! Schema Test Suite.

use std::path::{Path, PathBuf};

use serde::Serialize;
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
    /// Loads a bundled schema by name, or else a schema file by path.
    pub fn load(name_or_path: &str) -> Result<Schema, SchemaError> {
        if let Some(text) = bundled(name_or_path) {
            return Schema::compile_bundled(name_or_path, text);
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            return Err(SchemaError::Unknown(name_or_path.to_owned()));
        }
        Schema::from_file(path)
    }

    fn compile_bundled(name: &str, text: &str) -> Result<Schema, SchemaError> {
        let value: Value = serde_json::from_str(text).map_err(|e| SchemaError::Compile {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        // Ours: assert `format`, so bundled timestamps must be real dates.
        let options = jsonschema::options().should_validate_formats(true);
        Schema::build(options, &value, name, None)
    }

    /// Compiles a user's schema file; relative `$ref`s resolve to files beside it.
    pub fn from_file(path: &Path) -> Result<Schema, SchemaError> {
        let abs = std::fs::canonicalize(path).map_err(|e| SchemaError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let value = read_json_file(&abs)?;
        let root = abs.parent().map(Path::to_path_buf);
        Schema::compile_value(&value, &abs.display().to_string(), Some(&abs), root)
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
        let mut options = jsonschema::options();
        if let Some(file) = file {
            options = options.with_base_uri(format!("file://{}", file.display()));
        }
        Schema::build(options, value, name, root)
    }

    /// The one place a validator is built: no network retriever, draft 2020-12 unless
    /// the schema names its own.
    fn build(
        options: jsonschema::ValidationOptions<'_>,
        value: &Value,
        name: &str,
        root: Option<PathBuf>,
    ) -> Result<Schema, SchemaError> {
        let mut options = options.with_retriever(LocalRetriever { root });
        if value.get("$schema").is_none() {
            options = options.with_draft(jsonschema::Draft::Draft202012);
        }
        let validator = options.build(value).map_err(|e| SchemaError::Compile {
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

/// Resolves `$ref`s without a network: bundled schemas by `$id`, and `file://` URIs
/// inside `root`.
struct LocalRetriever {
    root: Option<PathBuf>,
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
        Err(
            format!("remote reference {text} is not fetched (no network access for schemas)")
                .into(),
        )
    }
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
}
