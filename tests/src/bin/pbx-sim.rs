//! `pbx-sim`: the PBX simulator as a process. Prints `listening <addr>` on stdout once bound
//! (then `control <addr>` with `--control`), logs to stderr, stops on SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use click2dial_tests::pbx_sim::{filter, Config, Override, Simulator};
use tokio::net::TcpListener;
use tracing::{error, info};

/// An AMI server that answers like the recorded Asterisk 22 and plays recorded calls.
#[derive(Debug, Parser)]
#[command(name = "pbx-sim", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:5038")]
    listen: SocketAddr,
    /// Manager user name.
    #[arg(long, default_value = "c2d")]
    username: String,
    /// Manager secret.
    #[arg(long, default_value = "secret")]
    secret: String,
    /// Where `<recording_ref>.wav` files are written (created if missing).
    #[arg(long, alias = "recordings", default_value = "recordings")]
    recordings_dir: PathBuf,
    /// Wall-clock seconds per recorded second: 1.0 real time, 0.01 a hundred times faster.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// A dialplan context Originates may target (repeat for more).
    #[arg(long = "context", default_value = "c2d-outbound")]
    contexts: Vec<String>,
    /// Caller ID of the callee leg when the Originate has no C2D_OUTBOUND_ID variable.
    #[arg(long, default_value = "27820001234")]
    outbound_cid: String,
    /// Force an outcome: `agent:<endpoint>=<outcome>` or `callee:<number>=<outcome>`
    /// (repeat for more). Outcomes: answered, agent-no-answer, agent-busy,
    /// agent-unavailable, callee-busy, callee-not-found, callee-declines, callee-no-answer,
    /// agent-hangs-up.
    #[arg(long = "outcome")]
    overrides: Vec<Override>,
    /// The FastAGI service the `c2d` extension calls (`AGI(agi://ADDR/click2dial)`) when a
    /// softphone's INVITE is played; without it every INVITE gets `agi-failed`.
    #[arg(long)]
    fastagi: Option<SocketAddr>,
    /// Listen for control connections here (port 0: a free one, printed as `control <addr>`).
    /// One line per request, one line per answer:
    /// `invite <endpoint> [<Header>=<value>]... [cancel=<n>]` (values percent-decoded; cancel:
    /// the caller hangs up while the service's command n, from 0, is in flight) answers
    /// `dial <uniqueid>`, `reject cause=<q850> reason=<C2D_REJECT_REASON|->`,
    /// `cancelled <uniqueid>`, `agi-failed` or `error <text>`, once the FastAGI session is over.
    #[arg(long, verbatim_doc_comment)]
    control: Option<SocketAddr>,
    /// Play a PBX without this context of the click2dial kit (repeat for more):
    /// `ShowDialPlan` answers `Did not find context NAME`, Originates into it fail.
    #[arg(long = "missing-context", value_name = "NAME")]
    missing_contexts: Vec<String>,
    /// Play a manager user that may not run this action (repeat for more): `ListCommands`
    /// leaves it out, sending it is answered `Permission denied`.
    #[arg(long = "deny-action", value_name = "ACTION")]
    denied_actions: Vec<String>,
    /// Refuse every Originate to this callee (`Exten`) with `Response: Error`
    /// (`Extension does not exist.`), after `--refusal-delay-ms` (repeat for more).
    #[arg(long = "refuse-callee", value_name = "NUMBER")]
    refused_callees: Vec<String>,
    /// How long a refused Originate (`--refuse-callee`) waits for its answer.
    #[arg(long = "refusal-delay-ms", value_name = "MS", default_value_t = 0)]
    refusal_delay_ms: u64,
    /// Queue every Originate to this callee (`Exten`) only after `--queue-delay-ms`: a PBX
    /// slow to answer (repeat for more).
    #[arg(long = "slow-callee", value_name = "NUMBER")]
    slow_callees: Vec<String>,
    /// How long an Originate to a slow callee (`--slow-callee`) waits for its answer.
    #[arg(long = "queue-delay-ms", value_name = "MS", default_value_t = 0)]
    queue_delay_ms: u64,
    /// Apply the `eventfilter(...)` lines of the manager user's section of this
    /// `manager.conf` (e.g. the kit's, `host/asterisk/manager.conf`), as Asterisk does.
    #[arg(long = "eventfilters-from", value_name = "MANAGER_CONF")]
    eventfilters_from: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let event_filters = match &cli.eventfilters_from {
        None => Vec::new(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| filter::read(&text, &cli.username))
        {
            Ok(filters) => filters,
            Err(e) => {
                error!(path = %path.display(), error = %e, "cannot read the event filters");
                return ExitCode::FAILURE;
            }
        },
    };
    let config = Config {
        username: cli.username,
        secret: cli.secret,
        recordings_dir: cli.recordings_dir,
        time_scale: cli.time_scale,
        contexts: cli.contexts,
        outbound_cid: cli.outbound_cid,
        overrides: cli.overrides,
        fastagi: cli.fastagi,
        missing_contexts: cli.missing_contexts,
        denied_actions: cli.denied_actions,
        refused_callees: cli.refused_callees,
        refusal_delay: std::time::Duration::from_millis(cli.refusal_delay_ms),
        slow_callees: cli.slow_callees,
        queue_delay: std::time::Duration::from_millis(cli.queue_delay_ms),
        event_filters,
    };
    let simulator = match Simulator::new(config) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(address = %cli.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            error!(error = %e, "no local address");
            return ExitCode::FAILURE;
        }
    };
    let control = match cli.control {
        Some(at) => match TcpListener::bind(at).await {
            Ok(l) => Some(l),
            Err(e) => {
                error!(address = %at, error = %e, "cannot listen for control");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening {addr}");
        if let Some(Ok(at)) = control.as_ref().map(TcpListener::local_addr) {
            let _ = writeln!(stdout, "control {at}");
        }
        let _ = stdout.flush();
    }
    if let Some(listener) = control {
        let sim = simulator.clone();
        tokio::spawn(async move { sim.serve_control(listener).await });
    }
    info!(%addr, recordings = %simulator.recordings_dir().display(), "PBX simulator ready");
    tokio::select! {
        result = simulator.serve(listener) => {
            if let Err(e) = result {
                error!(error = %e, "stopped");
                return ExitCode::FAILURE;
            }
        }
        () = shutdown_signal() => info!("shutting down"),
    }
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
