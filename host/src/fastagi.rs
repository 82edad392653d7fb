//! The FastAGI service: calls started from an agent's softphone.
//!
//! The agent's INVITE to the click-to-dial extension carries `X-Teleforge-*` headers; the
//! dialplan (`host/asterisk/extensions.conf`, `[c2d-agent-webrtc]`) runs
//! `AGI(agi://<fastagi.listen>/click2dial)`. Each connection is one session of core's
//! [`Script`]: it reads the caller's PJSIP endpoint (the agent, as Asterisk authenticated
//! it; nothing the phone writes, `From` or a header, names the agent) and the headers, and
//! this module decides exactly as `POST /click2dial/calls` does — the same validators and
//! dialling policy, the same idempotency claim on `contact_ref`, the same cap on calls in
//! flight and the same stored call record ([`crate::calls::admission`]) — then the script leaves
//! the decision in channel variables and the session closes. A dialled call is followed like an originated one ([`crate::pbx::Pbx::follow`]), so it
//! sends the same notifications, keyed by the agent channel's `Uniqueid`.
//!
//! A phone that claims another agent (`X-Teleforge-Agent`) or a call without an endpoint is
//! refused like any invalid request, and logged at `warn` with the endpoint, the claimed
//! agent and the `contact_ref`: it is either a misconfigured phone or an attempt to place
//! calls in someone else's name.
//!
//! The PBX is trusted as the client here (it holds no API key): only the configured PBXes'
//! addresses may connect (`fastagi.allowed_peers` for `[ami]` alone, each `[[pbx]]`'s
//! `fastagi_peers` or its AMI address), and the call is followed on the PBX at the session's
//! address that serves the agent. Asterisk has no read timeout on the service and the caller
//! hears nothing while it runs, so every session has a deadline
//! (`fastagi.session_timeout_ms`); a session that cannot decide in time leaves no decision,
//! and the dialplan rejects the call.

use std::net::SocketAddr;
use std::time::Duration;

use click2dial_core::agi::{
    DecideError, Decision, Dial, Header, Headers, Rejection, Script, ScriptEvent, Value,
    AGENT_MISMATCH, MAX_COMMAND_LEN, NO_ENDPOINT,
};
use click2dial_core::call::Mode;
use click2dial_core::{Error, ErrorCode, Field};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::calls::admission::{self, Admission, Refusal};
use crate::calls::Calls;
use crate::metrics::Metrics;
use crate::pbx::OriginateRequest;

/// What a session uses: the calls service (rules, admission, the PBX) and the metrics.
#[derive(Clone)]
struct Service {
    calls: Calls,
    metrics: Metrics,
}

impl std::ops::Deref for Service {
    type Target = Calls;

    fn deref(&self) -> &Calls {
        &self.calls
    }
}

/// A repeated `contact_ref` with the same values: the call was placed already.
const ALREADY_PLACED: Error = Error::field(
    ErrorCode::ContactRefConflict,
    click2dial_core::Field::ContactRef,
    "a call with this contact_ref was placed already; it is not dialled twice",
);

/// Accepts sessions until the task is dropped.
pub async fn serve(calls: Calls, metrics: Metrics, listener: TcpListener) {
    let state = Service { calls, metrics };
    let sessions = std::sync::Arc::new(Semaphore::new(state.config.fastagi.max_sessions));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "FastAGI accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // On a dual-stack listener (`[::]:4573`) an IPv4 peer arrives as `::ffff:a.b.c.d`:
        // compared as the IPv4 address it is, so `allowed_peers = ["127.0.0.1"]` holds.
        if !state.pbxes.accepts_peer(peer.ip()) {
            tracing::warn!(%peer, "FastAGI connection from a peer that is no configured PBX's (fastagi.allowed_peers, [[pbx]] fastagi_peers)");
            state.metrics.fastagi_session("refused_peer");
            continue;
        }
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            // Closing without a decision: the dialplan rejects the call at once.
            tracing::warn!(%peer, "FastAGI session refused: fastagi.max_sessions reached");
            state.metrics.fastagi_session("busy");
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let outcome = session(&state, stream, peer).await;
            state.metrics.fastagi_session(outcome);
            drop(permit);
        });
    }
}

/// One session; returns its outcome for the metrics.
async fn session(state: &Service, mut stream: TcpStream, peer: SocketAddr) -> &'static str {
    let _ = stream.set_nodelay(true);
    let deadline = Duration::from_millis(state.config.fastagi.session_timeout_ms);
    let mut session = Session {
        state,
        peer,
        script: Script::new(),
        outcome: "error",
    };
    let result = tokio::time::timeout(deadline, session.run(&mut stream)).await;
    let outcome = match result {
        Ok(Ok(())) => session.outcome,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "FastAGI session failed");
            "error"
        }
        Err(_) if session.outcome == "error" => {
            tracing::warn!(%peer, channel = session.script.channel(), "FastAGI session timed out before a decision");
            "timeout"
        }
        Err(_) => session.outcome,
    };
    // Half-close, then let Asterisk finish (its final `HANGUP`, then its close), briefly.
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    outcome
}

struct Session<'s> {
    state: &'s Service,
    /// The PBX's address: which PBX runs the call.
    peer: SocketAddr,
    script: Script,
    /// What the session came to; `error` until it decided or the caller hung up.
    outcome: &'static str,
}

impl Session<'_> {
    async fn run(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        let mut input = Vec::with_capacity(4096);
        let mut out = [0u8; MAX_COMMAND_LEN];
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(n) = self.script.poll_transmit(&mut out).map_err(io_error)? {
                stream.write_all(out.get(..n).unwrap_or_default()).await?;
            }
            match self.script.poll_event() {
                Some(ScriptEvent::Decide) => {
                    self.decide().await.map_err(io_error)?;
                    continue;
                }
                Some(ScriptEvent::HungUp) => {
                    if self.outcome == "error" {
                        self.outcome = "hung_up";
                        tracing::info!(
                            channel = self.script.channel(),
                            "caller hung up before the decision"
                        );
                    }
                    continue;
                }
                Some(ScriptEvent::Close) => return Ok(()),
                None => {}
            }
            // Feed what is buffered; read more only when the script needs it.
            let used = self.script.handle_input(&input).map_err(io_error)?;
            if used > 0 {
                input.drain(..used);
                continue;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "Asterisk closed the session",
                ));
            }
            input.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Decides the call the headers describe and hands the decision to the script; on
    /// `Dial`, the call is admitted and followed first.
    async fn decide(&mut self) -> Result<(), DecideError> {
        let state = self.state;
        let headers = *self.script.headers();
        let valid = match headers.validate(&state.validators, &state.policy()) {
            Ok(valid) => valid,
            Err(rejection) => {
                if rejection.error == AGENT_MISMATCH || rejection.error == NO_ENDPOINT {
                    self.log_identity_refusal(&headers, &rejection);
                }
                return self.reject(rejection);
            }
        };
        // The PBX that ran the AGI (its address) and serves the agent follows the call.
        let Some(site) = state.pbxes.for_peer(self.peer.ip(), valid.agent) else {
            return self.reject(UNKNOWN_AGENT.into());
        };
        if !site.pbx.is_ready() {
            return self.reject(Error::PBX_UNAVAILABLE.into());
        }
        // As for REST: a campaign the PBX's tvc context lacks is refused before dialling.
        if let Some(campaign) = valid.outbound_id.campaign() {
            if site.pbx.unknown_campaign(campaign).is_some() {
                return self.reject(UNKNOWN_CAMPAIGN.into());
            }
        }
        let mut entropy = [0u8; 32];
        if getrandom::fill(&mut entropy).is_err() {
            return self.reject(Error::INTERNAL.into());
        }
        let call = valid.assign_references(&entropy);
        let channel_id = self.script.uniqueid().to_string();
        let owner = state.config.fastagi.owner_key.as_str();
        let mut admitted = match admission::admit(
            state,
            &call,
            owner,
            channel_id,
            Mode::AgentInitiated,
            &site.name,
        )
        .await
        {
            Ok(Admission::New(admitted)) => admitted,
            Ok(Admission::Repeat(_)) => {
                self.outcome = "repeat";
                return self.script.decide(&Rejection::from(ALREADY_PLACED).into());
            }
            Err(Refusal::Error(error)) => return self.reject(error.into()),
            Err(Refusal::Busy) => return self.reject(admission::TOO_MANY_CALLS.into()),
            Err(Refusal::FirstPending) => return self.reject(admission::FIRST_PENDING.into()),
        };
        let claim = admitted.claim.take();
        let request = OriginateRequest::from(admitted);
        let contact_ref = request.record.call.contact_ref.as_str().to_string();
        if let Err(e) = site.pbx.follow(request).await {
            tracing::warn!(error = %e, contact_ref, "FastAGI call not followed: rejected");
            admission::release(state, claim.as_ref().map(|c| c.key.as_str())).await;
            return self.reject(Error::PBX_UNAVAILABLE.into());
        }
        admission::accepted(state, claim).await;
        tracing::info!(
            contact_ref,
            agent = call.valid.agent,
            channel = self.script.channel(),
            "softphone call accepted"
        );
        self.outcome = "dial";
        self.script.decide(&Decision::Dial(Dial::for_call(&call)))
    }

    /// A phone that claimed another agent, or a call that is not from a PJSIP endpoint.
    fn log_identity_refusal(&self, headers: &Headers, rejection: &Rejection) {
        let contact_ref = match headers.get(Header::ContactRef) {
            Value::Given(v) => v,
            Value::Absent => "",
            Value::TooLong => "(too long)",
        };
        tracing::warn!(
            endpoint = headers.endpoint().unwrap_or(""),
            claimed_agent = headers.claimed_agent().unwrap_or(""),
            contact_ref,
            channel = self.script.channel(),
            reason = rejection.error.message,
            "softphone call refused: the agent is not the calling PJSIP endpoint"
        );
    }

    fn reject(&mut self, rejection: Rejection) -> Result<(), DecideError> {
        tracing::info!(
            channel = self.script.channel(),
            code = rejection.error.code.as_str(),
            cause = rejection.cause,
            reason = rejection.error.message,
            "softphone call rejected"
        );
        self.outcome = "reject";
        self.script.decide(&rejection.into())
    }
}

/// A `tvc_` campaign the PBX's tvc context does not list (REST answers it `422` with the
/// campaign's name; the softphone gets cause 21).
const UNKNOWN_CAMPAIGN: Error = Error::field(
    ErrorCode::UnknownCampaign,
    Field::OutboundId,
    "the campaign is not in the PBX's tvc context",
);

/// An agent no PBX at the session's address serves (REST answers it `422 unknown_agent`;
/// the softphone gets cause 21).
const UNKNOWN_AGENT: Error = Error::field(
    ErrorCode::UnknownAgent,
    Field::Agent,
    "no configured PBX at this address serves the agent",
);

fn io_error<E: std::fmt::Display>(e: E) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}
