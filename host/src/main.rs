//! `click2dial-host`: run the service, or check its configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use click2dial_host::config::Config;

#[derive(Parser)]
#[command(version, about = "click2dial: click-to-dial for Asterisk PBXes")]
struct Cli {
    /// Configuration file (TOML); every key can be overridden by C2D_<SECTION>__<KEY>.
    #[arg(long, short, global = true, env = "C2D_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, global = true)]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
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
            ExitCode::SUCCESS
        }
        Command::Run => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(serve(config)),
            Err(e) => {
                eprintln!("click2dial-host: {e}");
                ExitCode::FAILURE
            }
        },
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
    let notifier = state.notifier.clone();
    let app = click2dial_host::app(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    let flushed = notifier.flush(Duration::from_secs(10)).await;
    if !flushed {
        tracing::error!(
            spooled = notifier.spool_depth(),
            "shutting down with notifications still spooled (Redis unreachable)"
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("click2dial-host: {e}");
            ExitCode::FAILURE
        }
    }
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
