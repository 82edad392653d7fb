//! The create-call path allocates nothing: a counting global allocator watches the whole
//! path — loading the validators, parsing, validating, assigning references and writing the
//! `202` body, error bodies and notifications — over valid and invalid bodies.
//!
//! Only allocations made on the measuring thread while a measurement is open are counted,
//! so the test harness (and tests running on other threads) cannot disturb the count.

// A global allocator is an `unsafe impl`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use click2dial_core::json::{self, Accepted, Cause, Event, Notification};
use click2dial_core::template::Template;
use click2dial_core::time::Timestamp;
use click2dial_core::{request, DialPolicy, Error, Validators};

/// Forwards to [`System`], counting allocations made while [`MEASURING`] is set.
struct CountingAllocator;

thread_local! {
    /// Whether this thread is inside [`count_allocations`].
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// Allocations (`alloc`, `alloc_zeroed`, `realloc`) counted on this thread.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn record_allocation() {
    // `try_with`: the allocator can run while this thread's locals are being torn down.
    let measuring = MEASURING.try_with(Cell::get).unwrap_or(false);
    if measuring {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the number of heap allocations it made on this thread.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    MEASURING.with(|m| m.set(true));
    let result = f();
    MEASURING.with(|m| m.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

/// Valid and invalid bodies, covering every branch of the path.
const BODIES: &[&[u8]] = &[
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"crm-42"}"#,
    br#"{"agent":"2002","callee":"27821234567","outbound_id":"tvc_spring-sale_2026"}"#,
    br#"{"agent":1001,"callee":"0027823456789","outbound_id":"0821110000","call_ref":"legacy-1"}"#,
    br#"{"agent":"0821234567","callee":"0821234567","outbound_id":"tvc_direct","x":[1,{"a":null}]}"#,
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"","call_ref":null}"#,
    br#"{"agent":"1001","callee":"08200012","outbound_id":"27820001234"}"#,
    br#"{"agent":"1001","callee":820001234,"outbound_id":"27820001234"}"#,
    br#"{"agent":"1001","callee":"0862001234","outbound_id":"27820001234"}"#,
    br#"{"agent":"1001","callee":"0044201234567","outbound_id":"27820001234"}"#,
    br#"{"agent":"10","callee":"0820001234","outbound_id":"27820001234"}"#,
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"tvc_"}"#,
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"a b"}"#,
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","contact_ref":"a","call_ref":"b"}"#,
    br#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","agent":"1002"}"#,
    br#"{"agent":"1\u0030","callee":"0820001234","outbound_id":"27820001234"}"#,
    br#"{"callee":"0820001234","outbound_id":"27820001234"}"#,
    br#"{"agent":"1001","callee":"0820001234""#,
    br#"[[[[[[[[[[[[[[[[[[[[["#,
    b"not json",
];

const RECORDING_URL: &str = "http://pbx.example:8080/click2dial/recordings/{recording_ref}";
const NOTIFICATIONS_KEY: &str = "teleforge:notifications:c2d:{contact_ref}";

/// What the path wrote for one body, in buffers allocated before the measurement.
#[derive(Clone)]
struct Output {
    accepted: Option<usize>,
    error: Option<usize>,
    notifications: [usize; 3],
    accepted_buf: [u8; 1024],
    error_buf: [u8; 512],
    notification_bufs: [[u8; 1024]; 3],
}

impl Output {
    const EMPTY: Self = Self {
        accepted: None,
        error: None,
        notifications: [0; 3],
        accepted_buf: [0; 1024],
        error_buf: [0; 512],
        notification_bufs: [[0; 1024]; 3],
    };
}

/// The whole create-call path for one body, as a server runs it.
fn handle(validators: &Validators, body: &[u8], entropy: &[u8; 32], out: &mut Output) {
    let recording_url = Template::new(RECORDING_URL).expect("valid template");
    let notifications_key = Template::new(NOTIFICATIONS_KEY).expect("valid template");
    let valid =
        request::parse(body).and_then(|r| validators.validate(&r, &DialPolicy::SOUTH_AFRICA));
    let call = match valid {
        Ok(valid) => valid.assign_references(entropy),
        Err(error) => {
            out.error = Some(json::write_error(&error, &mut out.error_buf).expect("fits"));
            return;
        }
    };
    let contact_ref = call.contact_ref.as_str();
    let recording_ref = call.recording_ref.as_str();
    assert!(validators.is_recording_ref(recording_ref));
    let url = recording_url.render(contact_ref, recording_ref);
    let accepted = Accepted {
        call: &call,
        recording_url: Some(url),
        notifications_key: Some(notifications_key.render(contact_ref, recording_ref)),
    };
    out.accepted = Some(json::write_accepted(&accepted, &mut out.accepted_buf).expect("fits"));
    let events = [
        (Event::Queued, None, None),
        (Event::Hangup, Some(Cause::NormalClearing), Some(16)),
        (Event::RecordingReady, None, None),
    ];
    for (i, (event, cause, q850)) in events.into_iter().enumerate() {
        let notification = Notification {
            event,
            contact_ref,
            agent: call.valid.agent,
            callee: &call.valid.callee.e164(),
            outbound_id: call.valid.outbound_id.as_str(),
            recording_ref,
            recording_url: Some(&url),
            timestamp: Timestamp::from_unix_millis(1_795_761_984_123),
            cause,
            q850,
        };
        out.notifications[i] =
            json::write_notification(&notification, &mut out.notification_bufs[i]).expect("fits");
    }
}

fn json_value(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("the core writes well-formed JSON")
}

#[test]
fn create_call_path_allocates_nothing() {
    let mut outputs = vec![Output::EMPTY; BODIES.len()];
    let entropy: [u8; 32] = core::array::from_fn(|i| i as u8 * 7 + 3);

    let ((), allocations) = count_allocations(|| {
        let validators = Validators::new().expect("embedded DFAs load");
        for (body, out) in BODIES.iter().zip(outputs.iter_mut()) {
            handle(&validators, black_box(body), &entropy, out);
        }
    });
    assert_eq!(allocations, 0, "the create-call path allocated");

    // The path really ran: every body produced an answer, of both kinds, and it is JSON.
    let accepted = outputs.iter().filter(|o| o.accepted.is_some()).count();
    let rejected = outputs.iter().filter(|o| o.error.is_some()).count();
    assert_eq!(accepted + rejected, BODIES.len());
    assert!(
        accepted >= 5 && rejected >= 10,
        "{accepted} accepted, {rejected} rejected"
    );
    for out in &outputs {
        if let Some(n) = out.accepted {
            let body = json_value(&out.accepted_buf[..n]);
            assert_eq!(body["status"], "queued");
            let recording_ref = body["recording_ref"].as_str().expect("recording_ref");
            let contact_ref = body["contact_ref"].as_str().expect("contact_ref");
            let url = body["recording_url"].as_str().expect("recording_url");
            assert!(url.ends_with(&format!("/recordings/{recording_ref}")));
            let key = body["notifications_key"]
                .as_str()
                .expect("notifications_key");
            assert_eq!(key, format!("teleforge:notifications:c2d:{contact_ref}"));
            for (i, &len) in out.notifications.iter().enumerate() {
                let notification = json_value(&out.notification_bufs[i][..len]);
                assert_eq!(notification["recording_ref"], recording_ref);
                assert!(notification["callee"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("+27")));
                assert_eq!(notification["timestamp"], "2026-11-27T06:46:24.123Z");
            }
        }
        if let Some(n) = out.error {
            let body = json_value(&out.error_buf[..n]);
            assert!(body["error"]["code"].is_string());
        }
    }
}

#[test]
fn counter_sees_allocations() {
    // Control: the same measurement catches a heap allocation made inside it…
    let (v, allocations) = count_allocations(|| black_box(Vec::<u8>::with_capacity(64)));
    drop(v);
    assert!(allocations >= 1, "a Vec allocation was not counted");

    // …including one hidden in formatting, as a careless error path would do.
    let (s, allocations) = count_allocations(|| black_box(Error::MALFORMED_JSON.to_string()));
    drop(s);
    assert!(allocations >= 1, "a String allocation was not counted");

    // And it counts nothing when nothing allocates.
    let ((), allocations) = count_allocations(|| {
        black_box([0u8; 64]);
    });
    assert_eq!(allocations, 0);
}
