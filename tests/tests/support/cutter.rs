//! A TCP relay on loopback that can cut every connection through it at once, as a network
//! blip between a host and its PBX or its Redis does, and refuse new ones for a while.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Both sockets of every relayed connection.
    live: Vec<(TcpStream, TcpStream)>,
    refuse_until: Option<Instant>,
}

/// Relays `address` to a target until dropped.
pub struct Cutter {
    /// `host:port` to connect to instead of the target.
    pub address: String,
    state: Arc<Mutex<State>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Cutter {
    /// Relays connections to `target` (`host:port`).
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let target = target.to_owned();
        let (s, a, st) = (Arc::clone(&state), Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || accept(&listener, &target, &s, &a, &st));
        Self {
            address,
            state,
            accepted,
            stop,
        }
    }

    /// Cuts every connection now (both sides see it close) and refuses new ones for
    /// `refuse_for` (each is closed as soon as it is accepted).
    pub fn cut(&self, refuse_for: Duration) {
        let mut state = self.state.lock().expect("cutter state");
        state.refuse_until = Some(Instant::now() + refuse_for);
        for (client, server) in state.live.drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    /// Ends a refusal early: new connections are relayed again.
    pub fn reopen(&self) {
        self.state.lock().expect("cutter state").refuse_until = None;
    }

    /// How many connections were relayed so far (refused ones not counted).
    pub fn relayed(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut(Duration::ZERO);
    }
}

fn accept(
    listener: &TcpListener,
    target: &str,
    state: &Mutex<State>,
    accepted: &AtomicUsize,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        let refusing = {
            let state = state.lock().expect("cutter state");
            state.refuse_until.is_some_and(|t| Instant::now() < t)
        };
        if refusing {
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect(target) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        state.lock().expect("cutter state").live.push((c3, s3));
        accepted.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || pump(client, server));
        std::thread::spawn(move || pump(s2, c2));
    }
}

/// Copies `from` to `to` until either ends, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
