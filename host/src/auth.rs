//! API keys: `Authorization: Bearer <key>` against SHA-256 hashes from the configuration.
//!
//! Keys are random 256-bit tokens made by `click2dial-host new-key`, so a fast hash is
//! enough: nobody can guess a key from its hash, and hashing on every request stays cheap (a
//! password hash such as argon2 would cost tens of milliseconds per request and guard only
//! against weak keys, which `hash-key` refuses). The presented key's hash is compared with
//! every configured hash in constant time, so neither timing nor the order of keys tells
//! how close a guess came. Keys never reach the logs: only a key's configured `id` does.

use std::sync::{Arc, OnceLock};

use click2dial_core::{Error, ErrorCode, Field};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::{self, AgentRange};
pub use crate::config::{parse_hash, Scope, DEFAULT_SCOPES};

/// Shortest key `hash-key` accepts, in characters.
pub const MIN_KEY_LEN: usize = 32;

/// A configured key, as requests see it once authenticated.
#[derive(Debug)]
pub struct Caller {
    /// The key's name from the configuration.
    pub id: String,
    /// Caller IDs it may present; empty: any.
    pub outbound_ids: Vec<String>,
    /// Agents it may ring; `None`: any.
    pub agents: Option<AgentRange>,
    /// Its position in the configuration (its rate limiter).
    pub index: usize,
    /// What it may do, one bit per [`Scope`].
    pub scopes: u8,
}

/// `403 insufficient_scope`, naming the scope.
const fn missing(scope: Scope) -> Error {
    let message = match scope {
        Scope::CallsCreate => "this API key lacks the scope calls:create",
        Scope::CallsRead => "this API key lacks the scope calls:read",
        Scope::RecordingsRead => "this API key lacks the scope recordings:read",
        Scope::MetricsRead => "this API key lacks the scope metrics:read",
    };
    Error::request(ErrorCode::InsufficientScope, message)
}

/// The bits of `names` (unknown names are refused by `Config::check`); `None`: the defaults.
fn scope_bits(names: Option<&[String]>) -> u8 {
    match names {
        None => DEFAULT_SCOPES.iter().fold(0, |b, s| b | s.bit()),
        Some(names) => names
            .iter()
            .filter_map(|n| Scope::parse(n))
            .fold(0, |b, s| b | s.bit()),
    }
}

impl Caller {
    /// `Ok` when the key has `scope`, else `403 insufficient_scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Error> {
        if self.scopes & scope.bit() != 0 {
            Ok(())
        } else {
            tracing::info!(key = %self.id, scope = scope.as_str(), "request refused: scope missing");
            Err(missing(scope))
        }
    }

    /// The owner name of what this key creates (its configured id).
    pub fn owner(&self) -> &str {
        &self.id
    }

    /// Whether this key may place a call for `agent` presenting `outbound_id`.
    pub fn check_call(&self, agent: &str, outbound_id: &str) -> Result<(), Error> {
        if !self.outbound_ids.is_empty() && !self.outbound_ids.iter().any(|o| o == outbound_id) {
            return Err(OUTBOUND_ID_NOT_ALLOWED);
        }
        if let Some(range) = self.agents {
            if !range.contains(agent) {
                return Err(AGENT_NOT_ALLOWED);
            }
        }
        Ok(())
    }
}

/// `422`: the key may not present this caller ID.
pub const OUTBOUND_ID_NOT_ALLOWED: Error = Error::field(
    ErrorCode::OutboundIdNotAllowed,
    Field::OutboundId,
    "this API key may not present this outbound_id",
);

/// `422`: the agent is outside the key's range.
pub const AGENT_NOT_ALLOWED: Error = Error::field(
    ErrorCode::AgentNotAllowed,
    Field::Agent,
    "this API key may not place calls for this agent",
);

/// The configured keys.
#[derive(Default)]
pub struct Keys {
    hashes: Vec<[u8; 32]>,
    callers: Vec<Arc<Caller>>,
    /// Per key, the bytes that were presented and hashed to its hash, once one request has
    /// shown them: later requests are compared with these (in constant time, every key,
    /// no early exit), not hashed again. Only a preimage of the configured hash is ever
    /// kept, so nothing that was not a valid key can be accepted by this shortcut.
    verified: Vec<OnceLock<Box<[u8]>>>,
}

/// Names the keys, never their hashes nor the verified keys (a `Services` or a layer
/// printed with `{:?}` must not put a key in a log).
impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.callers.iter().map(|c| c.id.as_str()))
            .finish()
    }
}

impl Keys {
    /// From a checked configuration (entries whose hash does not parse are skipped;
    /// `Config::check` refuses them first).
    pub fn new(keys: &[config::ApiKey]) -> Self {
        let mut out = Self::default();
        for key in keys {
            let Some(hash) = parse_hash(&key.hash) else {
                continue;
            };
            out.callers.push(Arc::new(Caller {
                id: key.id.clone(),
                outbound_ids: key.outbound_ids.clone(),
                agents: key.agents.as_deref().and_then(AgentRange::parse),
                index: out.hashes.len(),
                scopes: scope_bits(key.scopes.as_deref()),
            }));
            out.hashes.push(hash);
            out.verified.push(OnceLock::new());
        }
        out
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The key whose hash matches `presented`'s, looked at in constant time.
    ///
    /// A key already seen is recognised by comparing the presented bytes with every key
    /// verified before, in constant time (SHA-256 costs about 7,000 instructions per
    /// request, the comparison a few hundred); anything else is hashed and compared with
    /// every configured hash, as before, and a match is remembered for its key. Which path
    /// a request takes tells only whether its key is valid, which the answer says anyway
    /// (and a length that differs from every verified key's, which is not secret:
    /// `new-key` makes them all the same length).
    pub fn find(&self, presented: &[u8]) -> Option<Arc<Caller>> {
        if let Some(caller) = self.find_verified(presented) {
            return Some(caller);
        }
        let found = self.find_hashed(presented)?;
        if let Some(slot) = self.verified.get(found.index) {
            let _ = slot.set(presented.into());
        }
        Some(found)
    }

    /// `presented` compared with every key verified before, in constant time.
    fn find_verified(&self, presented: &[u8]) -> Option<Arc<Caller>> {
        let hits = self.verified.iter().map(|slot| {
            slot.get()
                .map_or(subtle::Choice::from(0), |known| known.ct_eq(presented))
        });
        self.caller_at(hits)
    }

    /// `presented`'s SHA-256 compared with every configured hash, in constant time.
    fn find_hashed(&self, presented: &[u8]) -> Option<Arc<Caller>> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        self.caller_at(self.hashes.iter().map(|hash| hash.ct_eq(&digest)))
    }

    /// The caller at the position of the hit among `hits`, every one looked at (no early
    /// exit, no branch on a single comparison: the time does not say which key matched).
    fn caller_at(&self, hits: impl Iterator<Item = subtle::Choice>) -> Option<Arc<Caller>> {
        let mut found = 0u32;
        let mut any = subtle::Choice::from(0);
        for (i, hit) in hits.enumerate() {
            found.conditional_assign(&u32::try_from(i).unwrap_or(u32::MAX), hit);
            any |= hit;
        }
        if bool::from(any) {
            self.callers.get(usize::try_from(found).ok()?).cloned()
        } else {
            None
        }
    }
}

/// The configuration form of `key`'s hash: `sha256:<64 hex>`.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A new random key: `c2d_` and 64 hex digits (256 bits).
pub fn new_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let mut out = String::from("c2d_");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[
            config::ApiKey {
                id: "a".into(),
                hash: hash_key("key-a-0123456789abcdef0123456789abcdef"),
                ..Default::default()
            },
            config::ApiKey {
                id: "b".into(),
                hash: hash_key("key-b-0123456789abcdef0123456789abcdef"),
                outbound_ids: vec!["27820001234".into()],
                agents: Some("1000-1099".into()),
                ..Default::default()
            },
        ])
    }

    #[test]
    fn finds_each_key_and_nothing_else() {
        let keys = keys();
        assert_eq!(
            keys.find(b"key-a-0123456789abcdef0123456789abcdef")
                .map(|c| c.id.clone()),
            Some("a".into())
        );
        let b = keys
            .find(b"key-b-0123456789abcdef0123456789abcdef")
            .expect("b");
        assert_eq!((b.id.as_str(), b.index), ("b", 1));
        assert!(keys
            .find(b"key-c-0123456789abcdef0123456789abcdef")
            .is_none());
        assert!(keys.find(b"").is_none());
    }

    #[test]
    fn a_verified_key_is_found_again_and_nothing_else_is() {
        let keys = keys();
        for _ in 0..3 {
            let a = keys.find(b"key-a-0123456789abcdef0123456789abcdef");
            assert_eq!(a.map(|c| c.id.clone()), Some("a".into()));
            let b = keys.find(b"key-b-0123456789abcdef0123456789abcdef");
            assert_eq!(b.map(|c| c.index), Some(1));
        }
        assert!(keys.verified.iter().all(|v| v.get().is_some()));
        // Near misses of a remembered key: one byte changed, shorter, longer.
        assert!(keys
            .find(b"key-a-0123456789abcdef0123456789abcdee")
            .is_none());
        assert!(keys
            .find(b"key-a-0123456789abcdef0123456789abcde")
            .is_none());
        assert!(keys
            .find(b"key-a-0123456789abcdef0123456789abcdef0")
            .is_none());
        assert!(keys.find(b"").is_none());
        let printed = format!("{keys:?}");
        assert_eq!(printed, r#"["a", "b"]"#);
        assert!(!printed.contains("key-a"), "{printed}");
        // A refused key is never remembered.
        assert_eq!(
            keys.verified[0].get().map(|k| &k[..]),
            Some(&b"key-a-0123456789abcdef0123456789abcdef"[..])
        );
    }

    #[test]
    fn hash_round_trips_and_bad_hashes_are_refused() {
        let h = hash_key("x");
        assert_eq!(
            h,
            "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        assert!(parse_hash(&h).is_some());
        assert!(parse_hash(&h.to_uppercase().replace("SHA256", "sha256")).is_some());
        for bad in [
            "",
            "sha256:",
            "md5:00",
            &h[..70],
            &format!("{h}0"),
            &h.replace('d', "g"),
        ] {
            assert!(parse_hash(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn per_key_permissions() {
        let keys = keys();
        let b = keys
            .find(b"key-b-0123456789abcdef0123456789abcdef")
            .expect("b");
        assert!(b.check_call("1000", "27820001234").is_ok());
        assert!(b.check_call("1099", "27820001234").is_ok());
        assert_eq!(
            b.check_call("1100", "27820001234").map_err(|e| e.code),
            Err(ErrorCode::AgentNotAllowed)
        );
        assert_eq!(
            b.check_call("0820001234", "27820001234")
                .map_err(|e| e.code),
            Err(ErrorCode::AgentNotAllowed),
            "one-leg calls are outside any range"
        );
        assert_eq!(
            b.check_call("1000", "27820009999").map_err(|e| e.code),
            Err(ErrorCode::OutboundIdNotAllowed)
        );
        let a = keys
            .find(b"key-a-0123456789abcdef0123456789abcdef")
            .expect("a");
        assert!(a.check_call("0820001234", "tvc_sales").is_ok());
    }

    #[test]
    fn ranges_and_leading_zeros() {
        let plain = AgentRange::parse("100-199").expect("range");
        assert!(plain.contains("150") && plain.contains("100") && plain.contains("199"));
        assert!(!plain.contains("0150"), "0150 is not 150");
        assert!(!plain.contains("099") && !plain.contains("200"));
        let padded = AgentRange::parse("0100-0199").expect("range");
        assert!(padded.contains("0150"));
        assert!(
            !padded.contains("150"),
            "written at the range's length only"
        );
        assert!(
            AgentRange::parse("0100-199").is_none(),
            "ends of different lengths"
        );
    }

    #[test]
    fn scopes_default_and_parse() {
        let keys = keys();
        let a = keys
            .find(b"key-a-0123456789abcdef0123456789abcdef")
            .expect("a");
        for scope in DEFAULT_SCOPES {
            assert!(a.require(scope).is_ok(), "{scope:?}");
        }
        assert_eq!(
            a.require(Scope::MetricsRead).map_err(|e| e.code),
            Err(ErrorCode::InsufficientScope)
        );
        assert_eq!(Scope::parse("metrics:read"), Some(Scope::MetricsRead));
        assert_eq!(Scope::parse("admin"), None);
        let only = Keys::new(&[config::ApiKey {
            id: "m".into(),
            hash: hash_key("key-m-0123456789abcdef0123456789abcdef"),
            scopes: Some(vec!["metrics:read".into()]),
            ..Default::default()
        }]);
        let m = only
            .find(b"key-m-0123456789abcdef0123456789abcdef")
            .expect("m");
        assert!(m.require(Scope::MetricsRead).is_ok());
        assert!(m.require(Scope::CallsCreate).is_err());
    }

    #[test]
    fn new_keys_are_long_and_distinct() {
        let (k1, k2) = (new_key().expect("rng"), new_key().expect("rng"));
        assert_eq!(k1.len(), 68);
        assert!(k1.len() >= MIN_KEY_LEN);
        assert_ne!(k1, k2);
    }
}
