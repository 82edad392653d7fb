//! `click2dial-host`: run the service, check its configuration, or make API keys.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use click2dial_host::auth;
use click2dial_host::config::Config;

/// mimalloc, not glibc's malloc: a create allocates and frees a few dozen small blocks
/// (Redis commands, futures, strings), and glibc's free-list work (consolidation, unlinking
/// chunks) was about a sixth of the host's CPU under load (`perf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "click2dial: click-to-dial for Asterisk PBXes")]
struct Cli {
    /// Configuration file (TOML); every key can be overridden by C2D_<SECTION>__<KEY>.
    #[arg(long, short, global = true, env = "C2D_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines (one object per event, with the request's span: method, path,
    /// request_id, key id).
    #[arg(long, global = true, env = "C2D_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Print the effective configuration, secrets masked, and exit.
    CheckConfig,
    /// Read an API key from standard input (one line) and print its `hash` for the
    /// configuration; the key itself never appears in the command line.
    HashKey,
    /// Make a new random API key; prints the key (give it to the client) and its hash (put
    /// it in `[[auth.keys]]`).
    NewKey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.command {
        Some(Command::HashKey) => return hash_key(),
        Some(Command::NewKey) => return new_key(),
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("click2dial-host: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            print!("{}", config.to_masked_toml());
            for warning in config.warnings() {
                eprintln!("click2dial-host: warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Command::HashKey | Command::NewKey => ExitCode::FAILURE,
        // One thread runs every task: a create crosses several tasks (the connection, the
        // AMI driver, the Redis connections, the notifier), and on two worker threads each
        // hand-over woke the other thread (a futex wake, a context switch) more often than
        // it found work to share. One thread runs far more creates per second than a PBX
        // places calls; file reads still go to tokio's blocking pool.
        Command::Run => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(serve(config)),
            Err(e) => {
                eprintln!("click2dial-host: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn hash_key() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("click2dial-host: cannot read the key: {e}");
        return ExitCode::FAILURE;
    }
    let key = line.trim();
    if key.len() < auth::MIN_KEY_LEN || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        eprintln!(
            "click2dial-host: a key must be at least {} characters without spaces; \
             `click2dial-host new-key` makes one",
            auth::MIN_KEY_LEN
        );
        return ExitCode::from(2);
    }
    println!("{}", auth::hash_key(key));
    ExitCode::SUCCESS
}

fn new_key() -> ExitCode {
    match auth::new_key() {
        Ok(key) => {
            println!("key  = {key}");
            println!("hash = \"{}\"", auth::hash_key(&key));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("click2dial-host: no randomness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config: Config) -> ExitCode {
    tokio::spawn(click2dial_host::clock::keep_driver_wake_near());
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    if config.redis.legacy_key_enabled {
        tracing::warn!(
            key = %config.redis.legacy_key,
            "the deprecated notification list is still written (redis.legacy_key_enabled)"
        );
    }
    let address = (config.http.listen, config.http.http_port);
    let state = match click2dial_host::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("click2dial-host: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "click2dial-host: cannot listen on {}:{}: {e}",
                address.0, address.1
            );
            return ExitCode::FAILURE;
        }
    };
    if let Ok(local) = listener.local_addr() {
        // First line on stdout, for scripts and tests that asked for port 0.
        println!("listening {local}");
        tracing::info!(%local, "click2dial-host listening");
    }
    let fastagi = match start_fastagi(&state).await {
        Ok(task) => task,
        Err(e) => {
            eprintln!("click2dial-host: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = state.config.shutdown.clone();
    let settings = click2dial_host::http::server::Settings {
        header_timeout: Duration::from_secs(state.config.http.header_timeout_secs),
        shutdown_grace: Duration::from_secs(shutdown.requests_grace_secs),
        max_connections: state.config.http.max_connections,
        max_connections_per_peer: state.config.http.max_connections_per_peer,
    };
    let app = click2dial_host::app(state.clone());
    let hub = state.notifier.hub().clone();
    let shutdown_started = async move {
        shutdown_signal().await;
        // Event streams would hold the drain below until the grace period ends: close them
        // (their clients reconnect elsewhere with Last-Event-ID).
        hub.close();
    };
    click2dial_host::http::server::serve(listener, app, settings, shutdown_started).await;
    // No new softphone calls either (a session in flight is short-lived: it ends with it).
    if let Some(task) = fastagi {
        task.abort();
    }
    // No request is in flight any more, so no new call can start: let the calls in flight
    // end (their last notifications are still to come), then empty the spool.
    let calls = state.calls.calls_in_flight();
    if calls > 0 {
        tracing::info!(calls, "waiting for calls in flight to end");
        if !state
            .calls
            .wait_calls_done(Duration::from_secs(shutdown.calls_grace_secs))
            .await
        {
            tracing::warn!(
                calls = state.calls.calls_in_flight(),
                "calls still in flight at exit: their further notifications are not sent"
            );
        }
    }
    let notifier = &state.notifier;
    if notifier.spool_depth() > 0 {
        tracing::info!(
            spooled = notifier.spool_depth(),
            "flushing notifications to Redis"
        );
    }
    if !notifier
        .flush(Duration::from_secs(shutdown.flush_timeout_secs))
        .await
    {
        tracing::error!(
            spooled = notifier.spool_depth(),
            "shutting down with notifications still spooled (Redis unreachable)"
        );
        return ExitCode::FAILURE;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Binds `[fastagi] listen` (when set) and serves it; prints `fastagi <addr>` on stdout.
async fn start_fastagi(
    state: &click2dial_host::Services,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let address = state.config.fastagi.listen.clone();
    if address.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on {address} (fastagi.listen): {e}"))?;
    if let Ok(local) = listener.local_addr() {
        println!("fastagi {local}");
        tracing::info!(%local, "FastAGI service listening");
    }
    Ok(Some(tokio::spawn(click2dial_host::fastagi::serve(
        state.calls.clone(),
        state.metrics.clone(),
        listener,
    ))))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight, flushing notifications");
}
