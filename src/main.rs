//! The `hookgate` command line (DESIGN.md §2): `serve`, `check`, `validate`, `schemas`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hookgate::config::{self, Settings};

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Inbound webhook gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    println!("config {source}: ok, listen {}", settings.server.listen);
    for r in &settings.routes {
        println!("{}", summary(r));
    }
    ExitCode::SUCCESS
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

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn serve(config: Option<PathBuf>, log_format: LogFormat) -> ExitCode {
    init_logs(log_format);
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
        // Store and file sinks are opened before "listening" is printed: a sink that
        // cannot be opened must not look like a gateway that started.
        let shared = match hookgate::build(settings) {
            Ok(s) => s,
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
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // Start-up table; a closed stdout must not take the gateway down, so errors
        // writing it are ignored (println! would panic).
        {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "hookgate listening on {bound} (config: {source})");
            for line in table {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
        }
        match hookgate::run_reloadable(listener, source, shared, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hookgate: {e}");
                ExitCode::from(1)
            }
        }
    })
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
