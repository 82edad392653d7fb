//! `POST /click2dial/calls`, in the host's order: content type, size, JSON, field rules and
//! policy, PBX readiness, references, idempotency, Originate. Every answer body is written by
//! core's JSON writers, so it is the host's byte for byte (without `recording_url` and
//! `notifications_key`, which need recordings and Redis).

use click2dial_core::fingerprint::Fingerprint;
use click2dial_core::json::{self, Accepted};
use click2dial_core::reference::{ContactRef, REFERENCE_ENTROPY_LEN};
use click2dial_core::validate::Call;
use click2dial_core::values::CallValues;
use click2dial_core::{request, Error, ErrorCode, Validators};
use embassy_time::{Duration, Instant};

use crate::config::Config;
use crate::fmt::{error, info};
use crate::idempotency::{Claim, Table};
use crate::pbx::{OriginateError, Pbx, State};
use crate::Entropy;

/// A status and the length of the JSON body written into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Bytes of JSON written.
    pub len: usize,
}

/// The error body used when even an error does not fit the buffer.
const INTERNAL_FALLBACK: &[u8] =
    br#"{"error":{"code":"internal_error","message":"internal error"}}"#;

/// `503` while the PBX refuses this device's login or its check. The host's answer names the
/// problem; here `GET /admin/status` and the log do, which keeps the sentences out of flash.
const PBX_REFUSED: Error = Error::request(
    ErrorCode::PbxUnavailable,
    "the PBX refused this device: a wrong [ami] username or secret, or a missing manager \
     privilege (the device's status and log name it); nothing was dialled",
);

/// The create-call service: configuration, validators, idempotency table, PBX handle.
pub struct App<'a> {
    config: &'a Config,
    validators: &'a Validators,
    pbx: &'a Pbx,
    table: &'a Table,
    entropy: &'a dyn Entropy,
}

impl<'a> App<'a> {
    /// The service over the board's parts. The validators (about 3 KiB) and the idempotency
    /// table (about 2 KiB) are the board's `static`s, so they never travel through the stack.
    pub const fn new(
        config: &'a Config,
        validators: &'a Validators,
        pbx: &'a Pbx,
        table: &'a Table,
        entropy: &'a dyn Entropy,
    ) -> Self {
        Self {
            config,
            validators,
            pbx,
            table,
            entropy,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        self.config
    }

    /// The PBX handle: its state for `GET /admin/status`.
    pub fn pbx(&self) -> &Pbx {
        self.pbx
    }

    /// Answers a create-call body whose content type was already accepted.
    pub async fn create_call(&self, body: &[u8], out: &mut [u8]) -> Answer {
        match self.try_create_call(body, out).await {
            Ok(answer) => answer,
            Err(e) => error_answer(&e, out),
        }
    }

    async fn try_create_call(&self, body: &[u8], out: &mut [u8]) -> Result<Answer, Error> {
        let parsed = request::parse(body)?;
        let valid = self.validators.validate(&parsed, &self.config.policy)?;
        match self.pbx.state() {
            State::Ready => {}
            State::Refused => return Err(PBX_REFUSED),
            State::Unreachable => return Err(Error::PBX_UNAVAILABLE),
        }
        let mut entropy = [0u8; 2 * REFERENCE_ENTROPY_LEN];
        self.entropy.fill(&mut entropy);
        let call = valid.assign_references(&entropy);
        let contact_ref = call.contact_ref.as_str();

        if !call.contact_ref.is_generated() {
            let print = Fingerprint::of(&call).hash64();
            let ttl = Duration::from_secs(self.config.idempotency.ttl_secs.into());
            let now = Instant::now();
            match self
                .table
                .claim(contact_ref, print, call.recording_ref, now, ttl)
            {
                Claim::New => {}
                Claim::Repeat(recording_ref) => {
                    info!("repeated contact_ref answered from the first");
                    let first = Call {
                        valid,
                        contact_ref: ContactRef::Given(contact_ref),
                        recording_ref,
                    };
                    return accepted(&first, out);
                }
                Claim::Conflict => return Err(Error::CONTACT_REF_CONFLICT),
            }
        }
        let answer = accepted(&call, out);
        let params = CallValues::new(&call).ok_or(Error::INTERNAL);
        let result = match params {
            Ok(params) => self.pbx.originate(&params).await,
            Err(_) => Err(OriginateError::Encode),
        };
        if let Err(e) = result {
            if !call.contact_ref.is_generated() {
                self.table.release(contact_ref);
            }
            return Err(match e {
                OriginateError::NotConnected => Error::PBX_UNAVAILABLE,
                OriginateError::Refused => {
                    error!("the PBX refused the originate");
                    Error::PBX_UNAVAILABLE
                }
                OriginateError::Encode => {
                    error!("the originate could not be encoded");
                    Error::INTERNAL
                }
            });
        }
        info!("call queued");
        answer
    }
}

fn accepted(call: &Call<'_>, out: &mut [u8]) -> Result<Answer, Error> {
    let accepted = Accepted {
        call,
        recording_url: None,
        notifications_key: None,
    };
    let len = json::write_accepted(&accepted, out).map_err(|_| Error::INTERNAL)?;
    Ok(Answer { status: 202, len })
}

/// Writes `error` as the contract's JSON body.
pub fn error_answer(error: &Error, out: &mut [u8]) -> Answer {
    match json::write_error(error, out) {
        Ok(len) => Answer {
            status: error.status(),
            len,
        },
        Err(_) => {
            let len = INTERNAL_FALLBACK.len().min(out.len());
            if let (Some(dest), Some(src)) = (out.get_mut(..len), INTERNAL_FALLBACK.get(..len)) {
                dest.copy_from_slice(src);
            }
            Answer {
                status: ErrorCode::Internal.status(),
                len,
            }
        }
    }
}
