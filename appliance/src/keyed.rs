//! Entropy for boards without a random number generator: the ChaCha20 keystream (RFC 8439)
//! under a per-device secret.
//!
//! The board provisions a 32-byte secret at flashing time and keeps a boot counter in flash;
//! each boot takes a nonce no earlier boot used (the counter, plus whatever the board measures
//! that varies from boot to boot), and each [`Entropy::fill`] takes fresh keystream blocks.
//! Without the secret the output cannot be predicted, whatever an observer knows of the
//! counter, the timing or earlier references; with the counter, no two boots share a
//! keystream.

use core::cell::Cell;

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;

use crate::Entropy;

/// The bytes of one ChaCha20 block.
pub const BLOCK_LEN: usize = 64;

/// ChaCha20's block function: 64 bytes of keystream for `key`, block `counter` and `nonce`.
pub fn chacha20_block(key: &[u8; 32], counter: u32, nonce: &[u8; 12]) -> [u8; BLOCK_LEN] {
    let word = |bytes: &[u8]| <[u8; 4]>::try_from(bytes).map_or(0, u32::from_le_bytes);
    let mut input = [
        0x6170_7865,
        0x3320_646e,
        0x7962_2d32,
        0x6b20_6574,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        counter,
        0,
        0,
        0,
    ];
    for (w, bytes) in input.iter_mut().skip(4).zip(key.chunks_exact(4)) {
        *w = word(bytes);
    }
    for (w, bytes) in input.iter_mut().skip(13).zip(nonce.chunks_exact(4)) {
        *w = word(bytes);
    }
    let mut x = input;
    for _ in 0..10 {
        for i in 0..4 {
            quarter_round(&mut x, i, 4 + i, 8 + i, 12 + i);
        }
        for i in 0..4 {
            quarter_round(
                &mut x,
                i,
                4 + (i + 1) % 4,
                8 + (i + 2) % 4,
                12 + (i + 3) % 4,
            );
        }
    }
    let mut out = [0u8; BLOCK_LEN];
    for ((chunk, word), start) in out.chunks_exact_mut(4).zip(x).zip(input) {
        chunk.copy_from_slice(&word.wrapping_add(start).to_le_bytes());
    }
    out
}

/// ChaCha20's quarter round on words `a`, `b`, `c`, `d` of the state (each below 16; the
/// masks only spare the bounds checks).
fn quarter_round(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    let (a, b, c, d) = (a & 15, b & 15, c & 15, d & 15);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

/// The keystream of one boot, handed out block by block.
pub struct KeyedEntropy {
    key: [u8; 32],
    nonce: [u8; 12],
    /// The next block; after 2^32 blocks (256 GiB) the source stops giving bytes.
    block: Mutex<CriticalSectionRawMutex, Cell<Option<u32>>>,
}

impl KeyedEntropy {
    /// The keystream for `secret` and this boot's `nonce`, which no other boot of the device
    /// may use (the board's boot counter goes into it).
    pub const fn new(secret: [u8; 32], nonce: [u8; 12]) -> Self {
        Self {
            key: secret,
            nonce,
            block: Mutex::new(Cell::new(Some(0))),
        }
    }

    /// 64 bits, for the network stack's seed.
    pub fn next_u64(&self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn next_block(&self) -> Option<[u8; BLOCK_LEN]> {
        let counter = self.block.lock(|cell| {
            let counter = cell.get()?;
            cell.set(counter.checked_add(1));
            Some(counter)
        })?;
        Some(chacha20_block(&self.key, counter, &self.nonce))
    }
}

impl Entropy for KeyedEntropy {
    /// Each call takes fresh blocks (the unused rest of a block is dropped, never handed out
    /// twice). Once the keystream is spent, `buf` is left zeroed; at one block per call that
    /// takes longer than the device lives.
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(BLOCK_LEN) {
            match self.next_block() {
                Some(block) => chunk.iter_mut().zip(block).for_each(|(d, s)| *d = s),
                None => chunk.fill(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439, section 2.3.2.
    #[test]
    fn block_function_test_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let nonce = [0, 0, 0, 0x09, 0, 0, 0, 0x4a, 0, 0, 0, 0];
        let block = chacha20_block(&key, 1, &nonce);
        assert_eq!(
            block[..16],
            [
                0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15, 0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20,
                0x71, 0xc4
            ]
        );
        assert_eq!(block[60..], [0xa2, 0x50, 0x3c, 0x4e]);
    }

    #[test]
    fn calls_take_fresh_blocks_and_nonces_separate_boots() {
        let a = KeyedEntropy::new([7; 32], [1; 12]);
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut x);
        a.fill(&mut y);
        assert_ne!(x, y);
        assert_eq!(x[..], chacha20_block(&[7; 32], 0, &[1; 12])[..32]);
        assert_eq!(y[..], chacha20_block(&[7; 32], 1, &[1; 12])[..32]);
        let b = KeyedEntropy::new([7; 32], [2; 12]);
        let mut z = [0u8; 32];
        b.fill(&mut z);
        assert_ne!(x, z);
    }
}
