//! The idempotency claim's Lua scripts (`store::schema`) run in a real `redis-server`: what
//! each one changes, and what it must leave alone.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use click2dial_host::store::idempotency::Acceptance;
use click2dial_host::store::schema::{ACCEPT_CLAIM, ADOPT_CLAIM, PENDING_TTL_SECS};

/// A `redis-server` on a free loopback port and a connection to it; killed when dropped.
struct Server {
    _process: Process,
    conn: redis::Connection,
}

/// The server's process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server() -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let process = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .spawn()
        .map(Process)
        .expect("redis-server is installed (.ci/run installs it)");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("URL");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(conn) = client.get_connection() {
            return Server {
                _process: process,
                conn,
            };
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const ANSWER: &str =
    r#"{"status":"queued","contact_ref":"crm-1","recording_ref":"aaaqeayeaudaocajbifqydiob4"}"#;

fn get(conn: &mut redis::Connection, key: &str) -> (Option<String>, i64) {
    let value: Option<String> = redis::cmd("GET").arg(key).query(conn).expect("GET");
    let ttl: i64 = redis::cmd("TTL").arg(key).query(conn).expect("TTL");
    (value, ttl)
}

fn set_pending(conn: &mut redis::Connection, claim: &Acceptance) {
    redis::cmd("SET")
        .arg(&claim.key)
        .arg(&claim.pending)
        .arg("EX")
        .arg(PENDING_TTL_SECS)
        .query::<()>(conn)
        .expect("SET");
}

#[test]
fn accept_claim_accepts_only_this_attempts_pending_claim() {
    let mut server = server();
    let conn = &mut server.conn;
    let script = redis::Script::new(ACCEPT_CLAIM);
    let ours = Acceptance::new("claim:ours".into(), "fp", ANSWER, 86_400);
    let accept = |conn: &mut redis::Connection, a: &Acceptance| -> i64 {
        script
            .key(&a.key)
            .arg(&a.pending)
            .arg(&a.accepted)
            .arg(a.ttl_secs)
            .invoke(conn)
            .expect("EVALSHA")
    };
    set_pending(conn, &ours);
    assert_eq!(accept(conn, &ours), 1);
    let (value, ttl) = get(conn, &ours.key);
    assert_eq!(value.as_deref(), Some(ours.accepted.as_str()));
    assert!(ttl > i64::try_from(PENDING_TTL_SECS).unwrap_or(60), "{ttl}");
    // Sent again (a lost reply): nothing changes.
    assert_eq!(accept(conn, &ours), 0);
    assert_eq!(
        get(conn, &ours.key).0.as_deref(),
        Some(ours.accepted.as_str())
    );

    // The claim expired and another attempt (another answer) claimed it: left alone.
    let theirs = Acceptance::new(
        ours.key.clone(),
        "fp",
        &ANSWER.replace("aaaq", "bbbq"),
        86_400,
    );
    set_pending(conn, &theirs);
    assert_eq!(accept(conn, &ours), 0);
    assert_eq!(
        get(conn, &ours.key).0.as_deref(),
        Some(theirs.pending.as_str())
    );

    // Gone (released): not made again.
    let gone = Acceptance::new("claim:gone".into(), "fp", ANSWER, 86_400);
    assert_eq!(accept(conn, &gone), 0);
    assert_eq!(get(conn, &gone.key).0, None);
}

#[test]
fn adopt_claim_accepts_a_pending_claim_naming_the_followed_call() {
    let mut server = server();
    let conn = &mut server.conn;
    let script = redis::Script::new(ADOPT_CLAIM);
    let adopt = |conn: &mut redis::Connection, key: &str, recording_ref: &str| -> i64 {
        script
            .key(key)
            .arg(recording_ref)
            .arg(86_400)
            .invoke(conn)
            .expect("EVALSHA")
    };
    let claim = Acceptance::new("claim:followed".into(), "fp", ANSWER, 86_400);
    set_pending(conn, &claim);
    // Another call's recording reference: left alone.
    assert_eq!(adopt(conn, &claim.key, "bbbqeayeaudaocajbifqydiob4"), 0);
    assert_eq!(
        get(conn, &claim.key).0.as_deref(),
        Some(claim.pending.as_str())
    );
    // The followed call's: accepted, byte for byte as its own host would have.
    assert_eq!(adopt(conn, &claim.key, "aaaqeayeaudaocajbifqydiob4"), 1);
    let (value, ttl) = get(conn, &claim.key);
    assert_eq!(value.as_deref(), Some(claim.accepted.as_str()));
    assert!(ttl > 60, "{ttl}");
    // Already accepted, or no claim (a generated contact_ref): nothing changes.
    assert_eq!(adopt(conn, &claim.key, "aaaqeayeaudaocajbifqydiob4"), 0);
    assert_eq!(adopt(conn, "claim:none", "aaaqeayeaudaocajbifqydiob4"), 0);
    assert_eq!(get(conn, "claim:none").0, None);
    // Not a claim this host wrote: left alone.
    redis::cmd("SET")
        .arg("claim:odd")
        .arg("{\"pending\":true}")
        .query::<()>(conn)
        .expect("SET");
    assert_eq!(adopt(conn, "claim:odd", "aaaqeayeaudaocajbifqydiob4"), 0);
}
