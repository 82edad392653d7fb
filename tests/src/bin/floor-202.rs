//! The load benchmark's floor: a handler that does only the exchanges a create cannot go
//! without, and nothing the host does around them. Per `POST /click2dial/calls` it reads the
//! body, claims it in Redis (one `SET … NX EX` round trip, through the same redis-rs
//! multiplexed connection the host uses), writes an `Originate` of the host's size to the
//! PBX (whose answers and events a task reads and drops) and answers a fixed `202`. No
//! validation, API key, call record, tracking, notification or log: less than a create must
//! do, so its CPU per create is a lower bound of the host's on this machine. One thread, as
//! the host runs.
//!
//! `floor-202 <listen> <redis-url> <ami-address> <ami-secret>`; prints `listening <addr>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// The host's `202` body for the load's calls, as `bare-202` answers it.
const ANSWER: &str = r#"{"status":"queued","contact_ref":"crm-42","recording_ref":"aaaqeayeaudaocajbifqydiob4","recording_url":"http://127.0.0.1:8080/click2dial/recordings/aaaqeayeaudaocajbifqydiob4","notifications_key":"teleforge:notifications:c2d:crm-42","warnings":[]}"#;

struct Floor {
    redis: redis::aio::MultiplexedConnection,
    ami: Mutex<OwnedWriteHalf>,
    calls: AtomicU64,
}

/// The `Originate` the host writes for the load's agent, with `id` as its `ActionID` and
/// `ChannelId`.
fn originate(id: &str) -> String {
    format!(
        "Action: Originate\r\nActionID: {id}\r\nChannel: PJSIP/1404\r\nContext: c2d-outbound\r\n\
         Exten: 0820001234\r\nPriority: 1\r\nCallerID: 0820001234\r\nTimeout: 30000\r\n\
         Async: true\r\nChannelId: {id}\r\nVariable: C2D_CONTACT_REF={id}\r\n\
         Variable: C2D_RECORDING_REF=aaaqeayeaudaocajbifqydiob4\r\n\
         Variable: C2D_OUTBOUND_ID=27820001234\r\nVariable: C2D_CALLEE=0820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Agent)=1404\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Callee)=0820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Outbound-Id)=27820001234\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Contact-Ref)={id}\r\n\
         Variable: PJSIP_HEADER(add,X-Teleforge-Recording-Ref)=aaaqeayeaudaocajbifqydiob4\r\n\r\n"
    )
}

async fn create(State(floor): State<Arc<Floor>>, _body: Bytes) -> impl IntoResponse {
    let n = floor.calls.fetch_add(1, Ordering::Relaxed);
    // Not `c2d-`: a host on the same PBX would take the call for another host's and look
    // its record up in Redis.
    let id = format!("floor{}-{n}", std::process::id());
    let claimed: Result<Option<String>, _> = redis::cmd("SET")
        .arg(format!("floor:claim:{id}"))
        .arg("1")
        .arg("NX")
        .arg("EX")
        .arg(60)
        .query_async(&mut floor.redis.clone())
        .await;
    if claimed.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "redis").into_response();
    }
    if floor
        .ami
        .lock()
        .await
        .write_all(originate(&id).as_bytes())
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "pbx").into_response();
    }
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        ANSWER,
    )
        .into_response()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, redis_url, ami, secret] = args.as_slice() else {
        eprintln!("usage: floor-202 <listen> <redis-url> <ami-address> <ami-secret>");
        std::process::exit(2);
    };
    let redis = redis::Client::open(redis_url.as_str())
        .map_err(std::io::Error::other)?
        .get_multiplexed_async_connection()
        .await
        .map_err(std::io::Error::other)?;
    let (read, mut write) = TcpStream::connect(ami.as_str()).await?.into_split();
    write
        .write_all(
            format!(
                "Action: Login\r\nActionID: login\r\nUsername: c2d\r\nSecret: {secret}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut read = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other(
                "the PBX closed before the login's answer",
            ));
        }
        if line.starts_with("Response: ") {
            if line.trim_end() != "Response: Success" {
                return Err(std::io::Error::other(format!("login: {}", line.trim_end())));
            }
            break;
        }
    }
    // The PBX's answers and events, read and dropped.
    tokio::spawn(async move {
        let mut sink = vec![0u8; 16 * 1024];
        while matches!(read.read(&mut sink).await, Ok(1..)) {}
    });
    let floor = Arc::new(Floor {
        redis,
        ami: Mutex::new(write),
        calls: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await?;
    println!("listening {}", listener.local_addr()?);
    let app = Router::new()
        .route("/click2dial/calls", post(create))
        .with_state(floor);
    axum::serve(listener, app).await
}
