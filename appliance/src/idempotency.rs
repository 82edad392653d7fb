//! A small fixed-size table of the `contact_ref`s answered recently, so a retried request
//! gets its first answer again and never dials twice.
//!
//! The table holds [`CAPACITY`] entries for `ttl` each; when it is full the oldest entry makes
//! room. A retry that comes after its entry is gone is still guarded by the PBX: the
//! Originate's `ChannelId` is derived from the `contact_ref`, and Asterisk refuses a second
//! live channel with the same id.

use core::cell::RefCell;

use click2dial_core::reference::Reference;
use click2dial_core::validate::CONTACT_REF_MAX_LEN;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::{Duration, Instant};

/// How many `contact_ref`s are remembered.
pub const CAPACITY: usize = 8;

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not seen (or forgotten): the caller owns the entry now and dials.
    New,
    /// Seen with the same payload: answer again with this recording reference.
    Repeat(Reference),
    /// Seen with a different payload: `409`.
    Conflict,
}

#[derive(Clone, Copy)]
struct Entry {
    key: [u8; CONTACT_REF_MAX_LEN],
    key_len: usize,
    fingerprint: u64,
    recording_ref: Reference,
    at: Instant,
}

impl Entry {
    fn key(&self) -> &[u8] {
        self.key.get(..self.key_len).unwrap_or_default()
    }
}

/// The table, shared by every listener. All zeroes when empty, so a `static` of it costs no
/// flash.
pub struct Table {
    entries: Mutex<CriticalSectionRawMutex, RefCell<[Option<Entry>; CAPACITY]>>,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            entries: Mutex::new(RefCell::new([None; CAPACITY])),
        }
    }

    /// Looks `contact_ref` up among the entries younger than `ttl` and, when it is new,
    /// records it with `fingerprint` (a hash of the rest of the payload) and the
    /// `recording_ref` the first answer carries.
    pub fn claim(
        &self,
        contact_ref: &str,
        fingerprint: u64,
        recording_ref: Reference,
        now: Instant,
        ttl: Duration,
    ) -> Claim {
        let key = contact_ref.as_bytes();
        let Some(stored) = key.get(..CONTACT_REF_MAX_LEN.min(key.len())) else {
            return Claim::New;
        };
        self.entries.lock(|cell| {
            let mut entries = cell.borrow_mut();
            for slot in entries.iter_mut() {
                if slot.is_some_and(|e| now.saturating_duration_since(e.at) >= ttl) {
                    *slot = None;
                }
            }
            if let Some(entry) = entries.iter().flatten().find(|e| e.key() == stored) {
                return if entry.fingerprint == fingerprint {
                    Claim::Repeat(entry.recording_ref)
                } else {
                    Claim::Conflict
                };
            }
            let mut entry = Entry {
                key: [0; CONTACT_REF_MAX_LEN],
                key_len: stored.len(),
                fingerprint,
                recording_ref,
                at: now,
            };
            if let Some(dest) = entry.key.get_mut(..stored.len()) {
                dest.copy_from_slice(stored);
            }
            let slot = match entries.iter().position(Option::is_none) {
                Some(free) => free,
                None => oldest(&entries[..]),
            };
            if let Some(s) = entries.get_mut(slot) {
                *s = Some(entry);
            }
            Claim::New
        })
    }

    /// Forgets `contact_ref` (its call was not placed, so a retry must dial).
    pub fn release(&self, contact_ref: &str) {
        self.entries.lock(|cell| {
            for slot in cell.borrow_mut().iter_mut() {
                if slot.is_some_and(|e| e.key() == contact_ref.as_bytes()) {
                    *slot = None;
                }
            }
        });
    }
}

fn oldest(entries: &[Option<Entry>]) -> usize {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|e| (i, e.at)))
        .min_by_key(|&(_, at)| at)
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(n: u8) -> Reference {
        Reference::from_entropy(&[n; 16])
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn new_repeat_conflict_release() {
        let table = Table::new();
        let t0 = Instant::from_secs(1);
        assert_eq!(table.claim("a", 1, reference(1), t0, TTL), Claim::New);
        assert_eq!(
            table.claim("a", 1, reference(2), t0, TTL),
            Claim::Repeat(reference(1))
        );
        assert_eq!(table.claim("a", 2, reference(2), t0, TTL), Claim::Conflict);
        table.release("a");
        assert_eq!(table.claim("a", 2, reference(3), t0, TTL), Claim::New);
    }

    #[test]
    fn entries_expire_and_the_oldest_makes_room() {
        let table = Table::new();
        let t0 = Instant::from_secs(1);
        assert_eq!(table.claim("old", 1, reference(1), t0, TTL), Claim::New);
        assert_eq!(
            table.claim("old", 1, reference(2), t0 + TTL, TTL),
            Claim::New,
            "expired"
        );
        for i in 0..CAPACITY as u64 {
            let key = std::format!("k{i}");
            let at = t0 + TTL + Duration::from_secs(i + 1);
            assert_eq!(table.claim(&key, 1, reference(1), at, TTL), Claim::New);
        }
        let later = t0 + TTL + Duration::from_secs(30);
        // "old" (re-claimed first) was evicted for the last key; k0 is still there.
        assert_eq!(
            table.claim("k0", 1, reference(9), later, TTL),
            Claim::Repeat(reference(1))
        );
        assert_eq!(table.claim("old", 1, reference(9), later, TTL), Claim::New);
    }
}
