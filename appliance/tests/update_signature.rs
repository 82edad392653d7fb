//! A firmware update signed by `boards/sign-update.sh` (OpenSSL), run as the README shows it,
//! is accepted by embassy-boot's check — the one the device runs before it marks an update for
//! the swap (`FirmwareUpdater::verify_and_mark_updated`, ed25519-salty) — and a changed,
//! truncated, extended or foreign-signed image is refused with the update left unmarked.

use std::path::Path;

use embassy_boot::{FirmwareUpdater, FirmwareUpdaterConfig, FirmwareUpdaterError, State};
use embassy_futures::block_on;
use embedded_storage_async::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

#[path = "support/sign_update.rs"]
mod sign_update;
use sign_update::{run_sign_update, sign_update};

/// Flash in RAM with the geometry of a small chip: 4-byte writes, 4 KiB erases.
struct RamFlash(Vec<u8>);

impl ErrorType for RamFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = offset as usize;
        let from = self
            .0
            .get(at..at + bytes.len())
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        bytes.copy_from_slice(from);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let range = self
            .0
            .get_mut(from as usize..to as usize)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        range.fill(0xFF);
        Ok(())
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = offset as usize;
        let to = self
            .0
            .get_mut(at..at + bytes.len())
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        // NOR flash only clears bits: writing over data that was not erased is a bug.
        if to.iter().any(|&b| b != 0xFF) {
            return Err(NorFlashErrorKind::Other);
        }
        to.copy_from_slice(bytes);
        Ok(())
    }
}

/// Writes `image` to a fresh DFU partition and asks embassy-boot to verify `signed_len` bytes
/// of it against `public_key`/`signature`; answers the result and the boot state after.
fn verify(
    image: &[u8],
    signed_len: usize,
    public_key: &[u8],
    signature: &[u8],
) -> (Result<(), FirmwareUpdaterError>, State) {
    block_on(async {
        let config = FirmwareUpdaterConfig {
            dfu: RamFlash(vec![0xFF; 64 * 1024]),
            state: RamFlash(vec![0xFF; 4096]),
        };
        let mut aligned = [0u8; 4];
        let mut updater = FirmwareUpdater::new(config, &mut aligned);
        updater.mark_booted().await.expect("mark booted");
        // As the upload endpoint will: the image in chunks of the HTTP body buffer's size.
        for (i, chunk) in image.chunks(1024).enumerate() {
            updater
                .write_firmware(i * 1024, chunk)
                .await
                .expect("write DFU");
        }
        let key: [u8; 32] = public_key.try_into().expect("a 32-byte public key");
        let sig: [u8; 64] = signature.try_into().expect("a 64-byte signature");
        let result = updater
            .verify_and_mark_updated(&key, &sig, signed_len as u32)
            .await;
        let state = updater.get_state().await.expect("state");
        (result, state)
    })
}

#[test]
fn signatures_from_sign_update_sh_pass_embassy_boot_and_tampering_does_not() {
    let dir = std::env::temp_dir().join(format!("c2d-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("update-key.pem");
    let _ = std::fs::remove_file(&key);
    let other = dir.join("other-key.pem");
    let _ = std::fs::remove_file(&other);
    sign_update(&[Path::new("new-key"), &key]);
    sign_update(&[Path::new("new-key"), &other]);
    let public = sign_update(&[Path::new("public"), &key]);
    assert_eq!(public.len(), 32);

    // An image-sized blob, its length a multiple of the flash's 4-byte writes.
    let image: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let image_path = dir.join("app.bin");
    std::fs::write(&image_path, &image).unwrap();
    let signature = sign_update(&[Path::new("sign"), &key, &image_path]);
    assert_eq!(signature.len(), 64);

    let (ok, state) = verify(&image, image.len(), &public, &signature);
    assert!(ok.is_ok(), "the signed image is refused: {ok:?}");
    assert_eq!(
        state,
        State::Swap,
        "a verified update is marked for the swap"
    );

    let refused = |what: &str, image: &[u8], len: usize, public: &[u8], signature: &[u8]| {
        let (result, state) = verify(image, len, public, signature);
        assert!(
            matches!(result, Err(FirmwareUpdaterError::Signature(_))),
            "{what}: {result:?}"
        );
        assert_eq!(state, State::Boot, "{what}: the update must stay unmarked");
    };
    let mut changed = image.clone();
    changed[12_345] ^= 0x01;
    refused(
        "one bit changed",
        &changed,
        image.len(),
        &public,
        &signature,
    );
    let truncated = &image[..image.len() - 4_000];
    refused("truncated", truncated, truncated.len(), &public, &signature);
    let mut extended = image.clone();
    extended.extend_from_slice(&[0u8; 4]);
    refused("extended", &extended, extended.len(), &public, &signature);
    let other_public = sign_update(&[Path::new("public"), &other]);
    refused(
        "another key's public half",
        &image,
        image.len(),
        &other_public,
        &signature,
    );
    let other_signature = sign_update(&[Path::new("sign"), &other, &image_path]);
    refused(
        "signed by another key",
        &image,
        image.len(),
        &public,
        &other_signature,
    );

    // The key file is the operator's secret: readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "update-key.pem mode {mode:o}");
    // And the script never overwrites one.
    let again = run_sign_update(&[Path::new("new-key"), &key]);
    assert!(!again.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
