//! Server-generated references: unguessable, URL-safe, fixed length.
//!
//! 16 bytes (128 bits) of caller-supplied entropy written as 26 characters of lowercase
//! RFC 4648 base32 (`a-z`, `2-7`, no padding). Lowercase base32 survives case-insensitive
//! file systems (recordings are files named after the reference), needs no URL escaping and
//! is inside the `contact_ref` charset.

use core::fmt;

/// Bytes of entropy per reference.
pub const REFERENCE_ENTROPY_LEN: usize = 16;

/// Characters per reference.
pub const REFERENCE_LEN: usize = 26;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A generated reference.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reference([u8; REFERENCE_LEN]);

impl Reference {
    /// Encodes the first [`REFERENCE_ENTROPY_LEN`] bytes of `entropy` (missing bytes count
    /// as zero, so pass a full slice from a CSPRNG).
    pub fn from_entropy(entropy: &[u8]) -> Self {
        let mut value: u128 = 0;
        for i in 0..REFERENCE_ENTROPY_LEN {
            value = (value << 8) | u128::from(entropy.get(i).copied().unwrap_or(0));
        }
        // 26 characters × 5 bits = 130 bits: the last character carries the lowest 3 bits
        // followed by two zero bits, as RFC 4648 pads.
        // Character i holds stream bits 5i..5i+5: `value >> (123 - 5i)` for the first 25,
        // and `value << 2` for the last.
        let mut out = [0u8; REFERENCE_LEN];
        let mut shift: u32 = 123;
        for (i, slot) in out.iter_mut().enumerate() {
            let bits = if i == REFERENCE_LEN - 1 {
                value.wrapping_shl(2)
            } else {
                value.wrapping_shr(shift)
            };
            *slot = ALPHABET
                .get((bits & 0x1f) as usize)
                .copied()
                .unwrap_or(b'a');
            shift = shift.saturating_sub(5);
        }
        Self(out)
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        // Only ALPHABET bytes are ever stored, so this is always ASCII.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// `text` as a reference: 26 characters of `a-z` and `2-7`; `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; REFERENCE_LEN] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| ALPHABET.contains(b))
            .then_some(Self(bytes))
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Reference;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("26 characters of a-z and 2-7")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Reference, E> {
                Reference::parse(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({})", self.as_str())
    }
}

/// The contact reference of a call: the client's (possibly truncated) or a generated one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactRef<'a> {
    /// Sent by the client.
    Given(&'a str),
    /// Generated because the client sent none.
    Generated(Reference),
}

impl ContactRef<'_> {
    /// The reference as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Given(s) => s,
            Self::Generated(r) => r.as_str(),
        }
    }

    /// Whether the server generated it.
    pub const fn is_generated(&self) -> bool {
        matches!(self, Self::Generated(_))
    }
}

/// Prefix of every `ChannelId` this product originates with.
pub const CHANNEL_ID_PREFIX: &str = "c2d-";

/// The Asterisk `ChannelId` (and `ActionID`) of the call with this contact reference:
/// `c2d-` and the base32 of a 128-bit FNV-1a hash of the reference.
///
/// Derived, not random, so a duplicate originate of the same call is refused by Asterisk
/// itself while the first is live (Asterisk rejects a `ChannelId` already in use).
/// FNV-1a is not a cryptographic hash; it only needs to spread distinct references, which
/// are unguessable or client-chosen anyway.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId([u8; CHANNEL_ID_PREFIX.len() + REFERENCE_LEN]);

impl ChannelId {
    /// Derives the id from a contact reference.
    pub fn for_contact_ref(contact_ref: &str) -> Self {
        Self::from_parts(&[contact_ref])
    }

    /// The id of one attempt at a call: the owner's name (an API key's id), the contact
    /// reference and the attempt's recording reference, so two owners may use the same
    /// `contact_ref` and a `contact_ref` reused after its idempotency window is a new call
    /// (with its own exactly-once marks). A repeat of the same attempt still derives the
    /// same id, so Asterisk refuses it while the first is live.
    pub fn for_attempt(owner: &str, contact_ref: &str, recording_ref: &str) -> Self {
        Self::from_parts(&[owner, contact_ref, recording_ref])
    }

    /// FNV-1a-128 of the parts, each followed by a 0 byte (no part holds one).
    fn from_parts(parts: &[&str]) -> Self {
        const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
        let step = |h: u128, b: u8| (h ^ u128::from(b)).wrapping_mul(PRIME);
        let mut hash = OFFSET;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                hash = step(hash, 0);
            }
            hash = part.bytes().fold(hash, step);
        }
        let encoded = Reference::from_entropy(&hash.to_be_bytes());
        let mut id = [0u8; CHANNEL_ID_PREFIX.len() + REFERENCE_LEN];
        let (prefix, rest) = id.split_at_mut(CHANNEL_ID_PREFIX.len());
        prefix.copy_from_slice(CHANNEL_ID_PREFIX.as_bytes());
        rest.copy_from_slice(encoded.as_str().as_bytes());
        Self(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Prefix and base32 alphabet are ASCII.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId({})", self.as_str())
    }
}
