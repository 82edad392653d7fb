//! What an `[[auth.keys]]` entry's values mean: its hash (`sha256:<64 hex>`) and its scopes.
//! Here, below both, so that the configuration check and the request-time key lookup
//! ([`crate::auth`]) read them the same way.

/// What a key may do. A call, its events, its recording and its idempotency record belong
/// to the key that created it whatever the scopes: a scope opens a kind of route, never
/// another key's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `POST /click2dial/calls`.
    CallsCreate,
    /// `GET /click2dial/calls/{contact_ref}/events` (its own calls).
    CallsRead,
    /// `GET`/`HEAD /click2dial/recordings/{recording_ref}` (its own calls' recordings).
    RecordingsRead,
    /// `GET /metrics` (the whole service's figures, every key's id among them).
    MetricsRead,
}

/// The scopes of a key that names none.
pub const DEFAULT_SCOPES: [Scope; 3] =
    [Scope::CallsCreate, Scope::CallsRead, Scope::RecordingsRead];

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::CallsCreate,
        Scope::CallsRead,
        Scope::RecordingsRead,
        Scope::MetricsRead,
    ];

    /// The name in the configuration and in `/openapi.json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CallsCreate => "calls:create",
            Self::CallsRead => "calls:read",
            Self::RecordingsRead => "recordings:read",
            Self::MetricsRead => "metrics:read",
        }
    }

    /// The scope called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The scope's bit in a key's set of scopes.
    pub const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// `sha256:<64 hex>` → the 32 bytes.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        *out.get_mut(i)? = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}
