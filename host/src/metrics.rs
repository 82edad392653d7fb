//! `/metrics` in the Prometheus text format (`prometheus-client`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `click2dial_http_requests_total` | counter | `route` (the matched route, `unmatched` otherwise), `method` (`GET`, `HEAD`, `POST`, `other`), `status` |
//! | `click2dial_rate_limited_total` | counter | `key` (the key's configured id) |
//! | `click2dial_calls_started_total` | counter | `pbx` (Originates it queued, softphone calls it started) |
//! | `click2dial_calls_ended_total` | counter | `event` (`hangup`/`failed`), `cause` |
//! | `click2dial_calls_in_flight` | gauge | — |
//! | `click2dial_ami_up` | gauge | `pbx` (1 while logged in) |
//! | `click2dial_ami_reconnects_total` | counter | `pbx` (logins after the first) |
//! | `click2dial_notification_spool_depth` | gauge | — (notifications not yet in Redis) |
//! | `click2dial_notification_latency_seconds` | histogram | — (AMI event read → its `LPUSH` done) |
//! | `click2dial_webhook_attempts_total` | counter | `key`, `outcome` (`delivered`, `retry`, `failed`, `gone`): this host's attempts |
//! | `click2dial_webhook_pending` | gauge | `key` (events queued, all hosts; read from Redis every few seconds) |
//! | `click2dial_webhook_failed` | gauge | `key` (events given up, all hosts, since the key's state began) |
//! | `click2dial_webhook_disabled` | gauge | `key` (1 while the endpoint is disabled after a `410 Gone`) |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

/// Every label comes from a closed set, so nothing a client sends adds a series: `route`
/// is a route template (or `unmatched`), `method` one the routes accept (or `other`),
/// `status` a status the host answers with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    key: String,
    outcome: &'static str,
}

/// `pbx`: a configured PBX's name (`[[pbx]] name`, or `default`), a closed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PbxLabels {
    pbx: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    event: &'static str,
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PbxOutcomeLabels {
    pbx: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

struct Inner {
    registry: Registry,
    fastagi_sessions: Family<OutcomeLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    rate_limited: Family<KeyLabels, Counter>,
    calls_started: Family<PbxLabels, Counter>,
    calls_ended: Family<EndLabels, Counter>,
    calls_in_flight: Gauge,
    ami_up: Family<PbxLabels, Gauge>,
    ami_reconnects: Family<PbxLabels, Counter>,
    calls_resynchronised: Family<PbxOutcomeLabels, Counter>,
    spool_depth: Gauge,
    notification_latency: Histogram,
    webhook_attempts: Family<AttemptLabels, Counter>,
    webhook_pending: Family<KeyLabels, Gauge>,
    webhook_failed: Family<KeyLabels, Gauge>,
    webhook_disabled: Family<KeyLabels, Gauge>,
}

/// The service's metrics; cheap to clone, shared by the HTTP layer, the AMI client and the
/// notifier.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("click2dial");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        let rate_limited = Family::<KeyLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a key's rate limit",
            rate_limited.clone(),
        );
        let fastagi_sessions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "fastagi_sessions",
            "FastAGI sessions by outcome: dial, reject, repeat, hung_up, timeout, error, refused_peer, busy",
            fastagi_sessions.clone(),
        );
        let calls_started = Family::<PbxLabels, Counter>::default();
        registry.register(
            "calls_started",
            "Calls the PBX started: Originates it queued, softphone calls it ran",
            calls_started.clone(),
        );
        let calls_ended = Family::<EndLabels, Counter>::default();
        registry.register(
            "calls_ended",
            "Calls by outcome: the final hangup or failed notification and its cause",
            calls_ended.clone(),
        );
        let calls_in_flight = Gauge::default();
        registry.register(
            "calls_in_flight",
            "Calls originated and not yet finished",
            calls_in_flight.clone(),
        );
        let ami_up = Family::<PbxLabels, Gauge>::default();
        registry.register(
            "ami_up",
            "1 while the PBX's AMI session is logged in",
            ami_up.clone(),
        );
        let ami_reconnects = Family::<PbxLabels, Counter>::default();
        registry.register(
            "ami_reconnects",
            "AMI logins after the first (each follows a lost connection)",
            ami_reconnects.clone(),
        );
        let calls_resynchronised = Family::<PbxOutcomeLabels, Counter>::default();
        registry.register(
            "calls_resynchronised",
            "Calls in flight found again in the PBX's channel list after a login: going_on \
             and ended (left by a lost connection), resumed (not followed by this process)",
            calls_resynchronised.clone(),
        );
        let spool_depth = Gauge::default();
        registry.register(
            "notification_spool_depth",
            "Notifications waiting to be pushed to Redis",
            spool_depth.clone(),
        );
        // 0.5 ms … ~16 s.
        let notification_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "notification_latency_seconds",
            "From reading the AMI event to the notification's LPUSH completing",
            notification_latency.clone(),
        );
        let webhook_attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by this host, by key and outcome",
            webhook_attempts.clone(),
        );
        let webhook_pending = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "webhook_pending",
            "Webhook events queued for the key's endpoint (all hosts)",
            webhook_pending.clone(),
        );
        let webhook_failed = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "webhook_failed",
            "Webhook events given up (all hosts)",
            webhook_failed.clone(),
        );
        let webhook_disabled = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "webhook_disabled",
            "1 while the key's endpoint is disabled (it answered 410 Gone)",
            webhook_disabled.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            fastagi_sessions,
            requests,
            rate_limited,
            calls_started,
            calls_ended,
            calls_in_flight,
            ami_up,
            ami_reconnects,
            calls_resynchronised,
            spool_depth,
            notification_latency,
            webhook_attempts,
            webhook_pending,
            webhook_failed,
            webhook_disabled,
        }))
    }

    /// One answered request; `route` is a matched template or `unmatched`.
    pub fn request(&self, route: Arc<str>, method: &'static str, status: StatusCode) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: status.as_u16(),
            })
            .inc();
    }

    /// One request refused by `key`'s rate limit.
    pub fn rate_limited(&self, key: &str) {
        self.0
            .rate_limited
            .get_or_create(&KeyLabels { key: key.into() })
            .inc();
    }

    /// A FastAGI session ended with `outcome`.
    pub fn fastagi_session(&self, outcome: &'static str) {
        self.0
            .fastagi_sessions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// `pbx` queued an Originate (or started a softphone call).
    pub fn call_started(&self, pbx: &Arc<str>) {
        self.0
            .calls_started
            .get_or_create(&PbxLabels { pbx: pbx.clone() })
            .inc();
    }

    /// A call's final `hangup`/`failed` notification.
    pub fn call_ended(&self, event: &'static str, cause: &'static str) {
        self.0
            .calls_ended
            .get_or_create(&EndLabels { event, cause })
            .inc();
    }

    /// `pbx`'s series, at 0, before anything happened: every configured PBX shows.
    pub fn pbx_configured(&self, pbx: &Arc<str>) {
        let labels = PbxLabels { pbx: pbx.clone() };
        self.0.ami_up.get_or_create(&labels).set(0);
        let _ = self.0.ami_reconnects.get_or_create(&labels);
        let _ = self.0.calls_started.get_or_create(&labels);
    }

    /// `pbx`'s AMI session logged in (`first`: the process's first login to it).
    pub fn ami_logged_in(&self, pbx: &Arc<str>, first: bool) {
        let labels = PbxLabels { pbx: pbx.clone() };
        self.0.ami_up.get_or_create(&labels).set(1);
        if !first {
            self.0.ami_reconnects.get_or_create(&labels).inc();
        }
    }

    /// A call in flight re-synchronised from `pbx`'s channel list: `going_on`, `ended` or
    /// `resumed`.
    pub fn call_resynchronised(&self, pbx: &Arc<str>, outcome: &'static str) {
        self.0
            .calls_resynchronised
            .get_or_create(&PbxOutcomeLabels {
                pbx: pbx.clone(),
                outcome,
            })
            .inc();
    }

    /// `pbx`'s AMI session was lost.
    pub fn ami_down(&self, pbx: &Arc<str>) {
        self.0
            .ami_up
            .get_or_create(&PbxLabels { pbx: pbx.clone() })
            .set(0);
    }

    /// A notification reached Redis `latency` after its AMI event was read.
    pub fn notification_pushed(&self, latency: Duration) {
        self.0.notification_latency.observe(latency.as_secs_f64());
    }

    /// One webhook delivery attempt for `key` ended with `outcome`.
    pub fn webhook_attempt(&self, key: &str, outcome: &'static str) {
        self.0
            .webhook_attempts
            .get_or_create(&AttemptLabels {
                key: key.into(),
                outcome,
            })
            .inc();
    }

    /// `key`'s delivery state as read from Redis.
    pub fn webhook_state(&self, key: &str, pending: u64, failed: u64, disabled: bool) {
        let labels = KeyLabels { key: key.into() };
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.0
            .webhook_pending
            .get_or_create(&labels)
            .set(gauge(pending));
        self.0
            .webhook_failed
            .get_or_create(&labels)
            .set(gauge(failed));
        self.0
            .webhook_disabled
            .get_or_create(&labels)
            .set(i64::from(disabled));
    }

    /// The text exposition, with the gauges that are read on demand set first.
    pub fn encode(&self, spool_depth: usize, calls_in_flight: usize) -> String {
        self.0
            .spool_depth
            .set(i64::try_from(spool_depth).unwrap_or(i64::MAX));
        self.0
            .calls_in_flight
            .set(i64::try_from(calls_in_flight).unwrap_or(i64::MAX));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.0.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// The `method` label: one the routes accept, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        _ => "other",
    }
}

/// Layer: counts every answer by matched route, method and status. A plain tower layer
/// (not `axum::middleware::from_fn`): its future wraps the inner one, nothing is boxed.
#[derive(Clone, Debug)]
pub struct CountRequests(pub Metrics);

impl<S> Layer<S> for CountRequests {
    type Service = CountRequestsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequestsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service of [`CountRequests`].
#[derive(Clone, Debug)]
pub struct CountRequestsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Service<Request> for CountRequestsService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        static UNMATCHED: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        let route = request.extensions().get::<MatchedPath>().map_or_else(
            || UNMATCHED.get_or_init(|| Arc::from("unmatched")).clone(),
            |p| Arc::from(p.as_str()),
        );
        let method = method_label(request.method());
        Counted {
            inner: self.inner.call(request),
            count: Some((self.metrics.clone(), route, method)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`CountRequestsService`]: the inner answer, counted when it is ready.
    pub struct Counted<F> {
        #[pin]
        inner: F,
        count: Option<(Metrics, Arc<str>, &'static str)>,
    }
}

impl<F, E> Future for Counted<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some((metrics, route, method))) = (&output, this.count.take()) {
            metrics.request(route, method, response.status());
        }
        Poll::Ready(output)
    }
}
