//! The operator's configuration in flash: one record in one of two erase pages, over the
//! board's `embedded-storage-async` [`NorFlash`].
//!
//! Hand-written rather than `sequential-storage` (the crate this was first built on): the
//! map's fetch, store and repair paths measured about 7 KB of flash in the QEMU image, which
//! does not fit the 96 KiB budget beside the admin API; this store is well under 1 KB and does
//! the one thing needed, keeping one small document across reboots and power loss.
//!
//! A record is a 32-byte header (`magic`, sequence number, length, CRC-32 of the data, the
//! rest ones) at the start of a page, and the data after it. A save erases the page that does
//! not hold the newest valid record, writes the data, and writes the header last: until then
//! the page has no valid header, so a save cut by a reset or power loss leaves the previous
//! record in force. A load takes the valid record with the highest sequence number; a page
//! whose header or CRC does not check (erased, zeroed, torn, corrupted) holds nothing.

use core::ops::Range;

use embedded_storage_async::nor_flash::NorFlash;

use crate::settings::MAX_SETTINGS_LEN;

/// The header's first word.
const MAGIC: u32 = 0xC2D0_C0F1;
/// The header's length: one write of up to 32 bytes (the STM32H7's flash word).
const HEADER: usize = 32;

/// The flash failed, or the data does not fit a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreError;

/// Two pages of the board's flash holding the configuration.
pub struct Store<F> {
    flash: F,
    pages: [u32; 2],
}

/// A page's record, as its header says.
#[derive(Clone, Copy)]
struct Header {
    seq: u32,
    len: usize,
    crc: u32,
}

impl<F: NorFlash> Store<F> {
    /// The store in `range`, which must be two erase pages (each half of `range` starts on
    /// an erase boundary and holds a header and [`MAX_SETTINGS_LEN`] bytes).
    pub const fn new(flash: F, range: Range<u32>) -> Self {
        let half = (range.end - range.start) / 2;
        assert!(
            (half as usize).is_multiple_of(F::ERASE_SIZE)
                && (range.start as usize).is_multiple_of(F::ERASE_SIZE)
        );
        assert!(half as usize >= HEADER + MAX_SETTINGS_LEN);
        assert!(F::WRITE_SIZE <= HEADER && HEADER.is_multiple_of(F::WRITE_SIZE));
        assert!(F::READ_SIZE <= HEADER && HEADER.is_multiple_of(F::READ_SIZE));
        Self {
            flash,
            pages: [range.start, range.start + half],
        }
    }

    async fn header(&mut self, page: u32) -> Option<Header> {
        let mut raw = [0u8; HEADER];
        self.flash.read(page, &mut raw).await.ok()?;
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(raw.get(4 * i..4 * i + 4)?);
            Some(u32::from_le_bytes(w))
        };
        if word(0)? != MAGIC {
            return None;
        }
        let len = usize::try_from(word(2)?).ok()?;
        (len <= MAX_SETTINGS_LEN).then_some(Header {
            seq: word(1)?,
            len,
            crc: word(3)?,
        })
    }

    /// The pages' valid headers, the newest first.
    async fn records(&mut self) -> [Option<(u32, Header)>; 2] {
        let [a, b] = self.pages;
        let (ha, hb) = (self.header(a).await, self.header(b).await);
        let (ra, rb) = (ha.map(|h| (a, h)), hb.map(|h| (b, h)));
        match (ha, hb) {
            (Some(x), Some(y)) if y.seq > x.seq => [rb, ra],
            _ => [ra, rb],
        }
    }

    /// Reads the data of the page's record into `buf` and checks its CRC.
    async fn data<'b>(&mut self, page: u32, h: Header, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let room = h.len.next_multiple_of(F::READ_SIZE);
        let dest = buf.get_mut(..room)?;
        self.flash.read(page + HEADER as u32, dest).await.ok()?;
        let data = buf.get(..h.len)?;
        (crc32(data) == h.crc).then_some(data)
    }

    /// The newest record whose data checks, read into `buf`, and whether any page had a
    /// header at all.
    async fn newest(&mut self, buf: &mut [u8]) -> (Option<(u32, Header)>, bool) {
        let mut headers = false;
        for (page, h) in self.records().await.into_iter().flatten() {
            headers = true;
            if self.data(page, h, buf).await.is_some() {
                return (Some((page, h)), true);
            }
        }
        (None, headers)
    }

    /// The newest valid record, read into `buf` (at least [`MAX_SETTINGS_LEN`] + 32 bytes):
    /// `Ok(None)` when nothing is stored, `Err` when a record's header is there but no record
    /// checks (corrupt flash).
    pub async fn load<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, StoreError> {
        match self.newest(buf).await {
            (Some((_, h)), _) => Ok(buf.get(..h.len)),
            (None, true) => Err(StoreError),
            (None, false) => Ok(None),
        }
    }

    /// Stores `data` as the new record; `scratch` (at least [`MAX_SETTINGS_LEN`] + 32 bytes)
    /// is used to check the previous records.
    pub async fn save(&mut self, data: &[u8], scratch: &mut [u8]) -> Result<(), StoreError> {
        if data.len() > MAX_SETTINGS_LEN {
            return Err(StoreError);
        }
        let (newest, _) = self.newest(scratch).await;
        let [a, b] = self.pages;
        let (page, seq) = match newest {
            Some((p, h)) if p == a => (b, h.seq.wrapping_add(1)),
            Some((_, h)) => (a, h.seq.wrapping_add(1)),
            None => (a, 0),
        };
        let end = page + (b - a);
        self.flash.erase(page, end).await.map_err(|_| StoreError)?;
        // The data in whole flash words, its tail padded with ones.
        let whole = data.len() - data.len() % F::WRITE_SIZE;
        let (body, tail) = data.split_at(whole);
        let at = page + HEADER as u32;
        if !body.is_empty() {
            self.flash.write(at, body).await.map_err(|_| StoreError)?;
        }
        if !tail.is_empty() {
            let mut last = [0xFFu8; HEADER];
            let word = last.get_mut(..F::WRITE_SIZE).ok_or(StoreError)?;
            for (d, b) in word.iter_mut().zip(tail) {
                *d = *b;
            }
            self.flash
                .write(at + whole as u32, word)
                .await
                .map_err(|_| StoreError)?;
        }
        let mut header = [0xFFu8; HEADER];
        let len = u32::try_from(data.len()).map_err(|_| StoreError)?;
        for (i, w) in [MAGIC, seq, len, crc32(data)].into_iter().enumerate() {
            if let Some(dest) = header.get_mut(4 * i..4 * i + 4) {
                dest.copy_from_slice(&w.to_le_bytes());
            }
        }
        self.flash
            .write(page, &header)
            .await
            .map_err(|_| StoreError)
    }

    /// Erases both pages: nothing is stored.
    pub async fn erase(&mut self) -> Result<(), StoreError> {
        let [a, b] = self.pages;
        self.flash
            .erase(a, b + (b - a))
            .await
            .map_err(|_| StoreError)
    }
}

/// CRC-32 (IEEE 802.3, as zlib), bit by bit: a table would cost 1 KiB of flash for a checksum
/// computed once per boot and per save.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_storage_async::nor_flash::{ErrorType, NorFlashErrorKind, ReadNorFlash};
    use std::vec::Vec;

    /// NOR flash in RAM: erase sets ones, a write clears bits; `writes_left` cuts power.
    struct Ram {
        bytes: Vec<u8>,
        writes_left: usize,
    }

    impl ErrorType for Ram {
        type Error = NorFlashErrorKind;
    }

    impl ReadNorFlash for Ram {
        const READ_SIZE: usize = 1;
        async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            let at = offset as usize;
            bytes.copy_from_slice(&self.bytes[at..at + bytes.len()]);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.bytes.len()
        }
    }

    impl NorFlash for Ram {
        const WRITE_SIZE: usize = 32;
        const ERASE_SIZE: usize = 4096;
        async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            assert_eq!(from % 4096, 0);
            assert_eq!(to % 4096, 0);
            self.bytes[from as usize..to as usize].fill(0xFF);
            Ok(())
        }
        async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            assert_eq!(offset % 32, 0);
            assert_eq!(bytes.len() % 32, 0);
            if self.writes_left == 0 {
                return Err(NorFlashErrorKind::Other);
            }
            self.writes_left -= 1;
            for (d, s) in self.bytes[offset as usize..].iter_mut().zip(bytes) {
                *d &= *s;
            }
            Ok(())
        }
    }

    fn store(bytes: Vec<u8>) -> Store<Ram> {
        Store::new(
            Ram {
                bytes,
                writes_left: usize::MAX,
            },
            0..8192,
        )
    }

    fn load(s: &mut Store<Ram>) -> Option<Vec<u8>> {
        let mut buf = [0u8; MAX_SETTINGS_LEN + 32];
        embassy_futures::block_on(s.load(&mut buf))
            .expect("not corrupt")
            .map(<[u8]>::to_vec)
    }

    fn save(s: &mut Store<Ram>, data: &[u8]) -> Result<(), StoreError> {
        let mut scratch = [0u8; MAX_SETTINGS_LEN + 32];
        embassy_futures::block_on(s.save(data, &mut scratch))
    }

    #[test]
    fn the_newest_record_survives_and_erase_clears() {
        for fresh in [0x00, 0xFF] {
            let mut s = store(std::vec![fresh; 8192]);
            assert_eq!(load(&mut s), None);
            for (i, len) in [0usize, 1, 31, 32, 33, 1000, MAX_SETTINGS_LEN]
                .into_iter()
                .enumerate()
            {
                let data: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
                save(&mut s, &data).unwrap();
                assert_eq!(load(&mut s), Some(data));
            }
            assert_eq!(save(&mut s, &[0; MAX_SETTINGS_LEN + 1]), Err(StoreError));
            embassy_futures::block_on(s.erase()).unwrap();
            assert_eq!(load(&mut s), None);
        }
    }

    #[test]
    fn a_cut_save_or_a_corrupt_page_leaves_the_previous_record() {
        let mut s = store(std::vec![0xFF; 8192]);
        save(&mut s, b"first").unwrap(); // page 0, sequence 0
        save(&mut s, b"second").unwrap(); // page 4096, sequence 1
                                          // A bit flip in the newest record's data: the one before it is used.
        s.flash.bytes[4096 + HEADER] ^= 1;
        assert_eq!(load(&mut s), Some(b"first".to_vec()));
        // Both corrupt: reported, not taken for an empty store.
        s.flash.bytes[HEADER] ^= 1;
        let mut buf = [0u8; MAX_SETTINGS_LEN + 32];
        assert_eq!(embassy_futures::block_on(s.load(&mut buf)), Err(StoreError));
        s.flash.bytes[HEADER] ^= 1;
        s.flash.bytes[4096 + HEADER] ^= 1;
        assert_eq!(load(&mut s), Some(b"second".to_vec()));
        // Power lost after the data, before the header: page 0 was erased, page 4096 stays.
        s.flash.writes_left = 1;
        assert_eq!(save(&mut s, &[b'x'; 100]), Err(StoreError));
        s.flash.writes_left = usize::MAX;
        assert_eq!(load(&mut s), Some(b"second".to_vec()));
        save(&mut s, b"third").unwrap();
        assert_eq!(load(&mut s), Some(b"third".to_vec()));
    }

    #[test]
    fn crc_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
