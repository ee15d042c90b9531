//! The `hookgate presets [show NAME]` and `hookgate sign` commands (DESIGN.md §2).
//!
//! `presets` reads the same bundled data the gateway uses, so what it lists is what a
//! route's `preset` fills and what `auth = { type = NAME }` verifies. `sign` produces the
//! headers a sender using a preset would send, through the same engine that verifies
//! them (`CompiledScheme::sign`), so users can test a route, or their own receiver, with
//! a real signed request. Both write to the writers they are given and return the exit
//! status, so the tests drive them without a process.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use sha2::Digest as _;

use crate::pipeline::signature::{CompiledScheme, HeaderOverrides};
use crate::providers::{self, Preset};

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: unknown preset, unreadable file, unusable secret.
pub const EXIT_USAGE: u8 = 2;

/// The route keys a preset fills, as `key=value` text.
fn fills(p: &Preset) -> Vec<String> {
    let mut keys = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            keys.push(format!("{k}={v}"));
        }
    };
    add("schema", p.schema.clone());
    add("dedup_key", p.dedup_key.clone());
    add("order_key", p.order_key.clone());
    add("order_time", p.order_time.clone());
    add(
        "allow_ips",
        p.allow_ips
            .as_ref()
            .map(|a| format!("{} addresses", a.len())),
    );
    add("methods", p.methods.as_ref().map(|m| m.join(",")));
    add("body", p.body.map(|b| b.as_str().to_owned()));
    keys
}

/// What authenticates the preset's sender: `auth type=NAME` for a signing sender, else
/// the kind of credentials it can send.
fn auth_of(name: &str, p: &Preset) -> String {
    match (&p.scheme, &p.credentials) {
        (Some(_), _) => format!("type={name}"),
        (None, Some(c)) => c.split(':').next().unwrap_or(c).trim().to_owned(),
        (None, None) => "none".to_owned(),
    }
}

/// `hookgate presets [show NAME]`.
pub fn presets(show: Option<&str>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let all = match providers::presets() {
        Ok(all) => all,
        Err(e) => {
            let _ = writeln!(err, "hookgate presets: {e}");
            return EXIT_USAGE;
        }
    };
    let Some(name) = show else {
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:<20} FILLS",
            "PRESET", "AUTH", "SCHEMA"
        );
        for (name, p) in all {
            let _ = writeln!(
                out,
                "{name:<20} {:<24} {:<20} {}",
                auth_of(name, p),
                p.schema.as_deref().unwrap_or("-"),
                fills(p).join(" ")
            );
        }
        return EXIT_OK;
    };
    let Some(p) = all.get(name) else {
        let _ = writeln!(
            err,
            "hookgate presets: no preset {name:?} (known: {})",
            all.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        return EXIT_USAGE;
    };
    let mut text = String::new();
    let _ = writeln!(text, "preset:      {name}");
    let _ = writeln!(text, "description: {}", p.description);
    match (&p.scheme, &p.credentials) {
        (Some(spec), _) => {
            let _ = writeln!(
                text,
                "auth:        auth = {{ type = \"{name}\", secrets = [\"env:...\"] }}"
            );
            let _ = writeln!(text, "signature:   {}", spec.summary());
            if spec.signs_url() {
                let _ = writeln!(
                    text,
                    "             signs the URL: the route needs public_url = \"https://...\""
                );
            }
            if let Some(v) = &spec.vector {
                let _ = writeln!(text, "vector:      {v}");
            }
        }
        (None, Some(c)) => {
            let _ = writeln!(text, "auth:        no signature; {c}");
        }
        (None, None) => {}
    }
    let _ = writeln!(text, "schema:      {}", p.schema.as_deref().unwrap_or("-"));
    for key in fills(p) {
        let _ = writeln!(text, "fills:       {key}");
    }
    for ip in p.allow_ips.iter().flatten() {
        let _ = writeln!(text, "address:     {ip}");
    }
    let _ = writeln!(text, "\n# as bundled (schemas/presets.toml):");
    text.push_str(&bundled_section(name));
    let _ = out.write_all(text.as_bytes());
    EXIT_OK
}

/// The preset's tables in the bundled file, with the comment block citing its sources.
fn bundled_section(name: &str) -> String {
    let lines: Vec<&str> = providers::PRESETS_TOML.lines().collect();
    let header = format!("[{name}]");
    let sub = format!("[{name}.");
    let Some(start) = lines.iter().position(|l| l.trim() == header) else {
        return String::new();
    };
    // The comment lines right above the table cite its sources.
    let above = lines
        .get(..start)
        .unwrap_or_default()
        .iter()
        .rev()
        .take_while(|l| l.starts_with('#'))
        .count();
    // The table and its sub-tables run to the next other table ...
    let below = lines
        .get(start + 1..)
        .unwrap_or_default()
        .iter()
        .take_while(|l| l.starts_with(&sub) || !l.starts_with('['))
        .collect::<Vec<_>>();
    // ... less the comments and blank lines that introduce that next table.
    let keep = below.len()
        - below
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#') || l.is_empty())
            .count();
    let mut s = lines
        .get(start - above..=start + keep)
        .unwrap_or_default()
        .join("\n");
    s.push('\n');
    s
}

/// What `hookgate sign` was asked to sign.
#[derive(Debug, Clone)]
pub struct SignArgs<'a> {
    /// Preset name.
    pub preset: &'a str,
    /// The secret: a literal, `env:NAME` or `file:PATH`.
    pub secret: &'a str,
    /// Unix seconds (default: now).
    pub timestamp: Option<u64>,
    /// Message id, for schemes that sign one (default: derived from the body).
    pub id: Option<&'a str>,
    /// The URL the sender posts to, for schemes that sign it.
    pub url: Option<&'a str>,
    /// Print a curl command instead of header lines.
    pub curl: bool,
    /// The body file.
    pub file: &'a Path,
}

/// `hookgate sign --preset NAME --secret S [--timestamp T] [--id ID] [--url URL] [--curl] FILE`.
pub fn sign(args: &SignArgs<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match sign_text(args) {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "hookgate sign: {e}");
            EXIT_USAGE
        }
    }
}

fn sign_text(args: &SignArgs<'_>) -> Result<String, String> {
    let all = providers::presets()?;
    let preset = all.get(args.preset).ok_or_else(|| {
        format!(
            "no preset {:?} (known: {})",
            args.preset,
            all.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let spec = preset.scheme.as_ref().ok_or_else(|| {
        format!(
            "preset {} has no signature scheme; its sender sends {}",
            args.preset,
            preset.credentials.as_deref().unwrap_or("no credentials")
        )
    })?;
    let scheme = CompiledScheme::compile(args.preset, spec, HeaderOverrides::default())?;
    let body = std::fs::read(args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let secret = crate::config::secret_source::resolve(args.secret)?;
    let timestamp = match args.timestamp {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970".to_owned())?
            .as_secs(),
    };
    let derived_id;
    let id = match args.id {
        Some(id) => id,
        None => {
            // Deterministic for one body and time, so a repeated `sign` reproduces a retry.
            let mut h = sha2::Sha256::new();
            h.update(timestamp.to_be_bytes());
            h.update(&body);
            let digest = h.finalize();
            derived_id = format!(
                "msg_{}",
                digest.iter().take(12).fold(String::new(), |mut s, b| {
                    let _ = write!(s, "{b:02x}");
                    s
                })
            );
            &derived_id
        }
    };
    let mut url = args.url.map(str::to_owned);
    if scheme.signs_url() && url.is_none() {
        return Err(format!(
            "{} signs the URL the sender posts to: pass --url https://...",
            args.preset
        ));
    }
    // Twilio's JSON variant: a JSON body is signed through its hash in the URL.
    if let (Some(param), Some(u)) = (scheme.body_sha256_param(), url.as_mut())
        && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok()
        && !u.contains(&format!("{param}="))
    {
        let digest = sha2::Sha256::digest(&body);
        let hex = digest.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        u.push(if u.contains('?') { '&' } else { '?' });
        let _ = write!(u, "{param}={hex}");
    }
    let headers = scheme.sign(secret.expose(), id, timestamp, url.as_deref(), &body)?;
    let mut text = String::new();
    if args.curl {
        let target = url.unwrap_or_else(|| format!("http://127.0.0.1:8080/hooks/{}", args.preset));
        let _ = write!(text, "curl -X POST '{target}'");
        for (k, v) in &headers {
            let _ = write!(text, " \\\n  -H '{k}: {v}'");
        }
        let _ = writeln!(text, " \\\n  --data-binary @'{}'", args.file.display());
    } else {
        if let Some(u) = &url {
            let _ = writeln!(text, "# POST {u}");
        }
        for (k, v) in &headers {
            let _ = writeln!(text, "{k}: {v}");
        }
    }
    Ok(text)
}
