//! The `hookgate` command line (DESIGN.md §2): `serve`, `check`, `validate`, `schemas`,
//! `presets`, `sign`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hookgate::config::{self, Settings};

/// mimalloc instead of the system allocator: a request allocates many small, short-lived
/// buffers (headers, the parsed JSON, the forwarded request) across two runtime threads,
/// where glibc's malloc spent ~20% of the gateway's CPU (perf, benches/load/run.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Inbound webhook gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the outbox commands go: a running gateway's admin listener, or the store
/// file of a stopped one.
#[derive(clap::Args)]
struct AdminTarget {
    /// Config file (default: ./hookgate.toml if present, else the built-in default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The admin listener's URL (instead of the config's `[admin] listen`).
    #[arg(long)]
    admin: Option<String>,
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
}

#[derive(Subcommand)]
enum DeadLettersAction {
    /// List dead letters.
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Move dead letters back to the outbox (all, or by --route / --id).
    Replay {
        #[command(flatten)]
        target: AdminTarget,
        /// Only the dead letter with this event id.
        #[arg(long)]
        id: Option<String>,
    },
    /// Delete dead letters (all, or by --route / --id).
    Drop {
        #[command(flatten)]
        target: AdminTarget,
        /// Only the dead letter with this event id.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (default: ./hookgate.toml if present, else the built-in default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log line format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Load the config, resolve every secret, print a summary per route.
    Check {
        /// Config file (default: ./hookgate.toml if present, else the built-in default).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Async outbox status per route: pending, oldest age, in retry, dead letters.
    Outbox {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Inspect, replay or drop dead letters.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
    /// Validate JSON documents (stdin when no FILE) against a bundled schema or a schema file.
    Validate {
        /// Bundled schema name (see `hookgate schemas`) or path to a JSON Schema file.
        #[arg(long)]
        schema: String,
        /// Draft for a schema file that names no `$schema` (a `$schema` always wins):
        /// 4, 6, 7, 2019-09 or 2020-12.
        #[arg(long, default_value = "2020-12")]
        draft: hookgate::schema::Draft,
        /// `PREFIX=DIR`: load `$ref`s whose absolute URI starts with PREFIX from DIR plus
        /// the rest of the path, never from the network. Repeatable.
        #[arg(long = "ref-map", value_name = "PREFIX=DIR")]
        ref_map: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutFormat::Text)]
        format: OutFormat,
        /// Documents, or folders holding `*.json` and `*.ndjson` (one document per line).
        files: Vec<PathBuf>,
    },
    /// List the bundled schemas, or print one with `show NAME`.
    Schemas {
        #[command(subcommand)]
        action: Option<SchemasAction>,
    },
    /// List the sender presets, or show one with `show NAME`.
    Presets {
        #[command(subcommand)]
        action: Option<PresetsAction>,
    },
    /// Print the headers a sender using a preset would send with FILE as the body.
    Sign {
        /// Preset name (see `hookgate presets`).
        #[arg(long)]
        preset: String,
        /// The shared secret: a literal, env:NAME or file:PATH.
        #[arg(long)]
        secret: String,
        /// Signed time, unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<u64>,
        /// Message id, for schemes that sign one (default: derived from body and time).
        #[arg(long)]
        id: Option<String>,
        /// The URL the sender posts to, for schemes that sign it (Twilio, Square).
        #[arg(long)]
        url: Option<String>,
        /// Print a curl command instead of header lines.
        #[arg(long)]
        curl: bool,
        /// The body.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PresetsAction {
    /// Show one preset: what it fills, its signature scheme, its addresses.
    Show {
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Print a bundled schema.
    Show {
        /// Its name.
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    Text,
    Json,
    Junit,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => serve(config, log_format),
        Command::Check { config } => check(config),
        Command::Validate {
            schema,
            draft,
            ref_map,
            format,
            files,
        } => {
            let format = match format {
                OutFormat::Text => hookgate::validate::Format::Text,
                OutFormat::Json => hookgate::validate::Format::Json,
                OutFormat::Junit => hookgate::validate::Format::Junit,
            };
            let mut options = hookgate::schema::SchemaOptions {
                draft,
                ..Default::default()
            };
            for arg in &ref_map {
                if let Err(e) = options.ref_map.insert_arg(arg) {
                    eprintln!("hookgate validate: --ref-map: {e}");
                    return ExitCode::from(hookgate::validate::EXIT_UNREADABLE);
                }
            }
            ExitCode::from(hookgate::validate::run(
                &schema,
                &options,
                format,
                &files,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            ))
        }
        Command::Presets { action } => {
            let show = action
                .as_ref()
                .map(|PresetsAction::Show { name }| name.as_str());
            ExitCode::from(hookgate::presets_cmd::presets(
                show,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            ))
        }
        Command::Sign {
            preset,
            secret,
            timestamp,
            id,
            url,
            curl,
            file,
        } => ExitCode::from(hookgate::presets_cmd::sign(
            &hookgate::presets_cmd::SignArgs {
                preset: &preset,
                secret: &secret,
                timestamp,
                id: id.as_deref(),
                url: url.as_deref(),
                curl,
                file: &file,
            },
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )),
        Command::Outbox { target } => admin_cli(hookgate::admin::CliAction::Status, target, None),
        Command::DeadLetters { action } => match action {
            DeadLettersAction::List { target } => {
                admin_cli(hookgate::admin::CliAction::List, target, None)
            }
            DeadLettersAction::Replay { target, id } => {
                admin_cli(hookgate::admin::CliAction::Replay, target, id)
            }
            DeadLettersAction::Drop { target, id } => {
                admin_cli(hookgate::admin::CliAction::Drop, target, id)
            }
        },
        Command::Schemas { action } => {
            let show = action
                .as_ref()
                .map(|SchemasAction::Show { name }| name.as_str());
            ExitCode::from(hookgate::validate::schemas(
                show,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            ))
        }
    }
}

fn admin_cli(
    action: hookgate::admin::CliAction,
    target: AdminTarget,
    id: Option<String>,
) -> ExitCode {
    // With --admin alone no config is needed; a config that does not load is then
    // not an error.
    let settings = if target.admin.is_some() && target.config.is_none() {
        None
    } else {
        match load(target.config) {
            Ok((_, s)) => Some(s),
            Err(code) => return code,
        }
    };
    ExitCode::from(hookgate::admin::cli(
        action,
        settings.as_ref(),
        target.admin.as_deref(),
        target.route.as_deref(),
        id.as_deref(),
    ))
}

fn load(config: Option<PathBuf>) -> Result<(config::ConfigSource, Settings), ExitCode> {
    let source = config::locate(config.as_deref());
    match config::load(&source) {
        Ok(s) => Ok((source, s)),
        Err(e) => {
            eprintln!("hookgate: invalid configuration: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn check(config: Option<PathBuf>) -> ExitCode {
    let (source, settings) = match load(config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    for w in settings.warnings() {
        eprintln!("hookgate: warning: {w}");
    }
    if let Some(tls) = &settings.server.tls {
        // The pair must load as `serve` would load it (key matches certificate).
        if let Err(e) = hookgate::server::tls::TlsEdge::new(tls) {
            eprintln!("hookgate: invalid configuration: server.tls: {e}");
            return ExitCode::from(1);
        }
        match hookgate::server::tls::summaries(tls) {
            Ok(certs) => {
                for c in certs {
                    println!(
                        "certificate {}: subject {:?}, SANs [{}], expires {} ({} days)",
                        c.path.display(),
                        c.subject,
                        c.sans.join(", "),
                        c.not_after,
                        c.days_left
                    );
                    if c.days_left < hookgate::server::tls::EXPIRY_WARNING_DAYS {
                        eprintln!(
                            "hookgate: warning: certificate {} expires in {} days",
                            c.path.display(),
                            c.days_left
                        );
                    }
                }
            }
            Err(e) => {
                eprintln!("hookgate: invalid configuration: server.tls: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if let Some(options) = hookgate::redis_options(&settings.store) {
        // The store must answer as `serve` would open it: say which check failed.
        match hookgate::store::Store::probe_redis(&options) {
            Ok(()) => println!(
                "store redis at {}: reachable, credentials accepted",
                hookgate::config::redact_url(&options.url)
            ),
            Err(e) => {
                eprintln!("hookgate: invalid configuration: store.url: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!("config {source}: ok, listen {}", settings.server.listen);
    println!("{}", store_summary(&settings.store));
    for r in &settings.routes {
        println!("{}", summary(r));
    }
    ExitCode::SUCCESS
}

fn store_summary(s: &config::StoreSettings) -> String {
    use config::spec::StoreBackendName;
    let (backend, durability) = match s.backend {
        StoreBackendName::Embedded => ("embedded", format!("path={}", s.path.display())),
        StoreBackendName::Memory => ("memory", "(lost on restart)".to_owned()),
        StoreBackendName::Redis => ("redis", "(shared)".to_owned()),
    };
    format!(
        "store backend={backend} {durability} dedup_ttl={} on_unavailable={}",
        humantime::format_duration(s.dedup_ttl),
        s.on_unavailable.as_str()
    )
}

fn summary(r: &config::Route) -> String {
    let methods = r
        .methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let allow = r
        .allow_ips
        .as_ref()
        .map_or("any".to_owned(), |a| format!("{} networks", a.len()));
    format!(
        "route {} path={} methods={} allow_ips={} auth={} schema={} dedup={} order={} delivery={} upstream={}",
        r.name,
        r.path,
        methods,
        allow,
        r.auth.type_name(),
        schema_name(r),
        dedup_label(r),
        r.keys
            .order
            .as_ref()
            .map_or("-".to_owned(), |o| o.entity.clone()),
        r.delivery.as_str(),
        r.upstream
    )
}

fn schema_name(r: &config::Route) -> String {
    r.schema.as_ref().map_or("-".to_owned(), |s| {
        if r.schema_mode == config::spec::SchemaMode::Monitor {
            format!("{} (monitor)", s.name())
        } else {
            s.name().to_owned()
        }
    })
}

fn dedup_label(r: &config::Route) -> String {
    r.keys
        .dedup
        .as_ref()
        .map_or("-".to_owned(), ToString::to_string)
}

/// The start-up table of `serve`: one aligned row per route.
fn route_table(routes: &[std::sync::Arc<config::Route>]) -> Vec<String> {
    let mut rows = vec![[
        "PATH".to_owned(),
        "AUTH".to_owned(),
        "SCHEMA".to_owned(),
        "DEDUP".to_owned(),
        "DELIVERY".to_owned(),
        "UPSTREAM".to_owned(),
    ]];
    for r in routes {
        rows.push([
            r.path.clone(),
            r.auth.type_name().to_owned(),
            schema_name(r),
            dedup_label(r),
            r.delivery.as_str().to_owned(),
            r.upstream.to_string(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {}", cells.join("  ").trim_end())
        })
        .collect()
}

/// Installs the log subscriber; the returned guard flushes the log queue when dropped, so
/// it is kept until the process ends.
fn init_logs(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = hookgate::telemetry::logs::stderr_writer();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(hookgate::telemetry::logs::ansi())
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}

fn serve(config: Option<PathBuf>, log_format: LogFormat) -> ExitCode {
    let _log_guard = init_logs(log_format);
    let (source, settings) = match load(config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    for w in settings.warnings() {
        tracing::warn!(warning = %w, "Risky configuration.");
    }
    let listen = settings.server.listen;
    let table = route_table(&settings.routes);
    runtime.block_on(async move {
        #[cfg(unix)]
        ignore_file_size_signal();
        // Store and file sinks are opened before "listening" is printed: a sink that
        // cannot be opened must not look like a gateway that started.
        let shared = match hookgate::build(settings) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hookgate: {e}");
                return ExitCode::from(1);
            }
        };
        let tls = match hookgate::tls_edge(&shared) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("hookgate: {e}");
                return ExitCode::from(1);
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("hookgate: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        let tls_on = tls.is_some();
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // Start-up table; a closed stdout must not take the gateway down, so errors
        // writing it are ignored (println! would panic).
        {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let scheme = if tls_on { "https" } else { "http" };
            let _ = writeln!(
                out,
                "hookgate listening on {bound} ({scheme}, config: {source})"
            );
            for line in table {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
        }
        match hookgate::run_reloadable(listener, source, shared, tls, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hookgate: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// Keeps SIGXFSZ from killing the gateway. Its default action ends the process when a
/// write crosses the file-size limit (`ulimit -f`), so a file sink reaching it took the
/// whole gateway down with half a line in the file; handled, the write fails with EFBIG
/// instead and the sink cuts the failed line back off, as after a full disk. tokio never
/// unregisters a signal handler, so dropping the stream keeps it in place.
#[cfg(unix)]
fn ignore_file_size_signal() {
    let kind = tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ);
    if let Err(e) = tokio::signal::unix::signal(kind) {
        tracing::warn!(error = %e, "Cannot handle SIGXFSZ: a file sink over the file-size limit ends the process.");
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
