//! The validators' DFAs as compact tables, and their walk.
//!
//! `build.rs` compiles each field's patterns with regex-automata, minimises the DFA and
//! writes it out as a [`Table`] constant: nothing is deserialised or checked at run time,
//! and the tables cost a few kilobytes of read-only data (the appliance's flash budget is
//! why). Every table is checked when core is compiled ([`Table::is_valid`] in a `const`
//! assertion), which is what makes the unchecked walk sound.

use core::fmt;

/// A DFA: byte classes, transitions and, per state, the pattern a value ending there matches.
///
/// States are numbered from 0 (the dead state, which loops to itself) and 1 (the start), and
/// referred to by their offset in [`Table::next`]: state × [`Table::stride`].
pub(crate) struct Table {
    /// The class of each byte: bytes every state treats alike share one.
    classes: [u8; 256],
    /// The number of classes, the length of a state's row.
    stride: usize,
    /// The offset of the first state where a value may end; every later state is one too
    /// (`build.rs` orders them so), which makes a walk's verdict one comparison.
    first_match: usize,
    /// Row after row, the offset of the next state for each class.
    next: &'static [u16],
    /// Per state: 0, or 1 + the index of the pattern a value that ends in that state matches.
    accept: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/validators.rs"));

const _: () = assert!(AGENT.is_valid());
const _: () = assert!(CALLEE.is_valid());
const _: () = assert!(OUTBOUND_ID.is_valid());
const _: () = assert!(CONTACT_REF.is_valid());
const _: () = assert!(RECORDING_REF.is_valid());

impl Table {
    /// Whether every lookup of a walk stays inside the table (each class is below the stride,
    /// each offset starts a row, each state has an `accept` entry), and `first_match` splits
    /// the states where a value may end from the others.
    #[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
    const fn is_valid(&self) -> bool {
        let rows = self.accept.len();
        if self.stride == 0 || rows < 2 || self.next.len() != rows * self.stride {
            return false;
        }
        let mut b = 0;
        while b < self.classes.len() {
            if self.classes[b] as usize >= self.stride {
                return false;
            }
            b += 1;
        }
        let mut s = 0;
        while s < rows {
            if (self.accept[s] != 0) != (s * self.stride >= self.first_match) {
                return false;
            }
            s += 1;
        }
        let mut i = 0;
        while i < self.next.len() {
            let to = self.next[i] as usize;
            if !to.is_multiple_of(self.stride) || to >= self.next.len() {
                return false;
            }
            i += 1;
        }
        true
    }

    /// One transition from the state at `offset`.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn step(&self, offset: usize, byte: u8) -> usize {
        // SAFETY: `offset` is the start's (state 1: `stride`, inside the table since it has at
        // least two rows) or came out of `next`, so it starts a row; every class is below the
        // stride, so the sum indexes that row. `is_valid` checked both for every table when
        // core was compiled (the `const` assertions above), and the tables are `const`.
        unsafe {
            let class = *self.classes.get_unchecked(usize::from(byte));
            usize::from(
                *self
                    .next
                    .get_unchecked(offset.wrapping_add(usize::from(class))),
            )
        }
    }

    /// Walks all of `input`; the offset of the state it ends in.
    #[inline]
    fn walk(&self, input: &[u8]) -> usize {
        // The dead state loops to itself, so the walk needs no per-byte exit; inputs are
        // bounded by the 4 KiB body limit. Four bytes per round: the loop's own bookkeeping
        // is paid once per four transitions.
        let mut state = self.stride; // START's offset
        let mut quads = input.chunks_exact(4);
        for quad in &mut quads {
            if let [a, b, c, d] = *quad {
                state = self.step(state, a);
                state = self.step(state, b);
                state = self.step(state, c);
                state = self.step(state, d);
            }
        }
        for &byte in quads.remainder() {
            state = self.step(state, byte);
        }
        state
    }

    /// The index of the pattern that matches all of `input`, if one does (debug builds check
    /// the forms the validators read from leading bytes against it).
    #[cfg(any(debug_assertions, test))]
    pub(crate) fn full_match(&self, input: &[u8]) -> Option<usize> {
        let state = self.walk(input).checked_div(self.stride)?;
        let pattern = self.accept.get(state)?.checked_sub(1)?;
        Some(usize::from(pattern))
    }

    /// Whether one of the patterns matches all of `input`.
    #[inline]
    pub(crate) fn is_full_match(&self, input: &[u8]) -> bool {
        self.walk(input) >= self.first_match
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("states", &self.accept.len())
            .field("classes", &self.stride)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_small_and_walk_as_the_patterns_say() {
        for table in [&AGENT, &CALLEE, &OUTBOUND_ID, &CONTACT_REF, &RECORDING_REF] {
            assert!(table.next.len() <= 4096, "{table:?}");
            assert_eq!(table.full_match(b""), None, "{table:?}");
            assert_eq!(table.full_match(b"\0"), None, "{table:?}");
        }
        assert_eq!(AGENT.full_match(b"1001"), Some(0));
        assert_eq!(AGENT.full_match(b"10011"), None);
        assert_eq!(CALLEE.full_match(b"0027820001234"), Some(2));
        assert_eq!(OUTBOUND_ID.full_match(b"tvc_spring-sale"), Some(0));
        assert_eq!(OUTBOUND_ID.full_match(b"27820001234"), Some(2));
        for input in [
            &b"1001"[..],
            b"100",
            b"12",
            b"0820001234",
            b"tvc_x",
            b"tvc_",
            b"a.b~c",
        ] {
            for table in [&AGENT, &CALLEE, &OUTBOUND_ID, &CONTACT_REF, &RECORDING_REF] {
                assert_eq!(
                    table.is_full_match(input),
                    table.full_match(input).is_some(),
                    "{table:?} {input:?}"
                );
            }
        }
    }
}
