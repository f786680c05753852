//! The `tessera` binary: `serve` runs the registry; `admin …` manages it from the shell.

mod admin;
mod allocator;
mod keys;
mod seed;
mod transfer;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use tessera_server::Config;

/// mimalloc: the read path allocates many short-lived buffers; the system allocator is slower
/// at that on small machines.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// tessera: a self-hosted npm registry with npm-style two-factor authentication.
#[derive(Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "TESSERA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, tarballs, keys).
    #[arg(long, global = true, env = "TESSERA_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Database: `postgres://…` for PostgreSQL (scale-out); unset for SQLite in the data
    /// directory. Also `TESSERA_DATABASE`.
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// Tarball storage: `s3://bucket/prefix` for S3-compatible storage; unset for the data
    /// directory. Also `TESSERA_STORAGE`.
    #[arg(long, global = true, value_name = "URL")]
    storage: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "TESSERA_LISTEN", value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Administer accounts and the registry.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

/// Loads the configuration: defaults, the file, `TESSERA_*`, then flags.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(d) = &cli.data {
        config.data = d.clone();
    }
    if let Some(db) = &cli.database {
        config.database = Some(db.clone());
    }
    if let Some(st) = &cli.storage {
        config.storage = Some(st.clone());
    }
    config.validate()?;
    if let Command::Serve { listen: Some(l) } = &cli.command {
        config.listen = *l;
    }
    Ok(config)
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Threads for blocking work (file reads, password hashes; SQLite has its own). tokio's default
/// is 512: under 64 downloads of a 3 MB tarball, each connection's read-ahead ran on a thread of
/// its own and resident memory peaked near 290 MB (730 req/s); with 16 threads it peaked near
/// 105 MB (860 req/s), on the bench's 2-core machine.
const BLOCKING_THREADS: usize = 16;

fn main() -> anyhow::Result<()> {
    allocator::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("cannot start the runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = load_config(&cli)?;
    match cli.command {
        Command::Serve { .. } => {
            init_logging(&config);
            for name in &config.deprecated_names {
                tracing::warn!("deprecated configuration key {name}");
            }
            serve(config).await
        }
        Command::Admin { command } => admin::run(config, command).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let data = match (&config.database, &config.storage) {
        (None, None) => config.data.display().to_string(),
        (db, st) => format!(
            "{}, {}",
            db.as_deref()
                .map(tessera_server::config::redact_url)
                .unwrap_or_else(|| config.database_path().display().to_string()),
            st.clone()
                .unwrap_or_else(|| config.tarball_dir().display().to_string())
        ),
    };
    let signup = format!("{:?}", config.signup).to_lowercase();
    raise_file_limit(config.connections.max_connections);
    let state = tessera_server::open_state(config).await?;
    allocator::spawn_trims();
    let threads = state.config.connections.threads;
    let listeners = tessera_server::http::listener::bind(listen, threads, LISTEN_BACKLOG)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listeners[0].local_addr()?;
    println!("tessera listening on http://{addr}/ (data: {data}, sign-up: {signup})");
    tracing::info!(
        %addr,
        threads = listeners.len(),
        packument_cache_mib = state.config.packument_cache_bytes() >> 20,
        tarball_cache_mib = state.config.tarball_cache_mb,
        "listening"
    );
    tessera_server::serve(listeners, state, allocator::upkeep(), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Pending connections the kernel may queue before tessera accepts them (it caps this at
/// `net.core.somaxconn`). `TcpListener::bind` asks for 128, which a burst of new connections
/// overflows before the accept loop drains it; each dropped one waits 1 s for its client to retry.
const LISTEN_BACKLOG: u32 = 1024;

/// Raises the open-file limit to its hard maximum: every connection is a file descriptor, and
/// `connections.max_connections` should be what bounds them, not a low default soft limit.
fn raise_file_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
        let current = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
            limit.rlim_cur
        };
        // Files, the database pool and the listener need some descriptors of their own.
        if (current as u128) < max_connections as u128 + 256 {
            tracing::warn!(
                open_files = current,
                max_connections,
                "the open-file limit is below connections.max_connections: raise it (ulimit -n) \
                 or lower the cap"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = max_connections;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
