//! The admin API and the operator's configuration in flash.
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/config` | `200`, the running configuration without secrets (no `ami.secret`) |
//! | `PUT /admin/config` | `200` once stored (effective from the next boot); `422 invalid_config` naming the key, `400`, `413` (over [`MAX_SETTINGS_LEN`]), `415` — nothing stored |
//! | `POST /admin/reboot` | `202`, then the device resets once the answer is sent |
//! | `POST /admin/factory-reset` | `200` once the stored configuration is erased (the compiled one from the next boot) |
//!
//! Every admin route needs `Authorization: Bearer <admin key>`: the key whose SHA-256 was
//! provisioned with the device, or the one a stored configuration rotated it to
//! (`auth.admin_key_hash`, from the boot after the `PUT`; never the call API key). A
//! missing or wrong key is `401` with the API's JSON error body, checked before any body
//! is read, so a client without the key never holds the body buffer.
//!
//! The configuration is stored by [`Store`] (two pages of the board's `embedded-storage-async`
//! NorFlash, one CRC-checked record, power-loss safe): the body of the last accepted `PUT` as
//! sent. At boot [`boot_config`] reads it back and runs the same parse and check; a stored
//! configuration that fails them (corrupt flash, or a firmware whose rules changed) is not
//! used: the factory configuration runs and the log says why.

use click2dial_core::decimal::Decimal;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::mutex::Mutex;
use embedded_io_async::Read;
use embedded_storage::nor_flash::NorFlash as BlockingNorFlash;
use embedded_storage_async::nor_flash::NorFlash;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, Network};
use crate::fmt::{info, warn};
use crate::pbx::{Pbx, State};
pub use crate::settings::MAX_SETTINGS_LEN;
use crate::settings::{Refusal, Settings};
pub use crate::store::{Store, StoreError};
pub use crate::update::{Update, UpdateError};

/// Room the store needs to read the stored configuration: the longest, rounded up to a flash
/// read (at most 32 bytes).
pub const STORE_BUF_LEN: usize = MAX_SETTINGS_LEN + 32;

/// Where the running configuration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The image's compiled-in configuration; nothing was stored.
    Factory,
    /// The stored configuration over the factory one.
    Stored,
    /// The factory configuration, because the stored one failed its check.
    FactoryAfterRefusal,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Factory => "factory",
            Self::Stored => "stored",
            Self::FactoryAfterRefusal => "factory_stored_refused",
        }
    }
}

/// The SHA-256 of a presented key.
pub fn key_hash(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Whether a presented key's hash is `expected` (constant time).
pub(crate) fn hash_matches(presented: &[u8; 32], expected: &[u8; 32]) -> bool {
    presented.ct_eq(expected).into()
}

/// What flash holds, read at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Nothing: the factory configuration.
    Nothing,
    /// The operator's configuration, as it was `PUT`.
    Found(&'static [u8]),
    /// A record whose CRC does not check.
    Corrupt,
}

/// Reads the stored configuration into `buf`.
pub async fn fetch_stored<F: NorFlash>(store: &mut Store<F>, buf: &'static mut [u8]) -> Stored {
    match store.load(buf).await {
        Ok(Some(bytes)) => Stored::Found(bytes),
        Ok(None) => Stored::Nothing,
        Err(_) => Stored::Corrupt,
    }
}

/// The configuration to run: `factory` with the stored settings (`stored`, read by
/// [`fetch_stored`]) applied when they pass the same check as a `PUT`. `keep` puts the
/// settings somewhere `'static` (the board's static cell).
pub fn boot_config(
    factory: Config,
    stored: Stored,
    keep: impl FnOnce(Settings<'static>) -> &'static Settings<'static>,
) -> (Config, Source) {
    let bytes = match stored {
        Stored::Found(bytes) => bytes,
        Stored::Nothing => {
            info!("factory configuration");
            return (factory, Source::Factory);
        }
        Stored::Corrupt => {
            warn!("the stored configuration is corrupt (CRC); factory configuration instead");
            return (factory, Source::FactoryAfterRefusal);
        }
    };
    match Settings::parse_checked(bytes, &factory) {
        Ok(settings) => {
            info!("stored configuration");
            (keep(settings).apply(factory), Source::Stored)
        }
        Err(Refusal::Json) => {
            warn!("the stored configuration is not JSON; factory configuration instead");
            (factory, Source::FactoryAfterRefusal)
        }
        Err(Refusal::Config(e)) => {
            warn!(
                "the stored configuration is refused ({=str}); factory configuration instead",
                e.key()
            );
            (factory, Source::FactoryAfterRefusal)
        }
    }
}

/// What the HTTP listeners need of the admin side. [`Admin`] is the real one; a board built
/// without it passes [`NoAdmin`], whose routes all answer `401` and whose code (the
/// configuration parser and check, the store, the JSON writer) is then not in the image.
#[allow(async_fn_in_trait)]
pub trait AdminApi {
    /// Whether the image has an admin API at all: without it ([`NoAdmin`]) the code of the
    /// update routes and of their longer deadline is left out at compile time.
    const ENABLED: bool = true;
    /// Whether `presented` (the SHA-256 of a Bearer key) is the admin key.
    fn authorized(&self, presented: &[u8; 32]) -> bool;
    /// Checks a configuration body and stores it; `scratch` is the store's work buffer.
    async fn put(&self, body: &[u8], scratch: &mut [u8]) -> Result<(), PutError>;
    /// Erases the stored configuration.
    async fn factory_reset(&self) -> Result<(), StoreError>;
    /// Resets the device.
    fn reboot(&self) -> !;
    /// Writes the running configuration `c` as JSON without secrets; its length, or `None`
    /// when `out` is too small.
    fn write_config(&self, c: &Config, out: &mut [u8]) -> Option<usize>;
    /// Whether an update body of `body_len` bytes can be taken now ([`Update::check`]).
    async fn update_check(&self, body_len: u64) -> Result<(), UpdateError>;
    /// Takes an update ([`Update::receive`]).
    async fn update<R: Read>(
        &self,
        body: &mut R,
        body_len: u64,
        early: &[u8],
        buf: &mut [u8],
    ) -> Result<(), UpdateError>;
    /// `GET /admin/update`'s JSON ([`Update::write_status`]).
    async fn write_update_status(&self, out: &mut [u8]) -> Option<usize>;
}

/// `GET /admin/status`'s JSON: whether the PBX takes the device's calls, and if it refused
/// the device, the problems of its last check by the codes of the host's `/readyz`:
/// `{"pbx":"refused","problems":["ami_login_failed"]}`. Its length, or `None` when `out` is
/// too small.
pub fn write_status(pbx: &Pbx, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer { out, len: 0 };
    w.put("{\"pbx\":\"");
    w.put(match pbx.state() {
        State::Ready => "ready",
        State::Refused => "refused",
        State::Unreachable => "unreachable",
    });
    w.put("\",\"problems\":");
    let mut codes = [""; click2dial_core::ami::ProblemCode::ALL.len()];
    let mut n = 0;
    for (slot, code) in codes.iter_mut().zip(pbx.problems()) {
        *slot = code.as_str();
        n += 1;
    }
    w.list(codes.get(..n).unwrap_or_default());
    w.put("}");
    (w.len <= w.out.len()).then_some(w.len)
}

/// No admin API: every admin request is refused with `401`.
pub struct NoAdmin;

impl AdminApi for NoAdmin {
    const ENABLED: bool = false;
    fn authorized(&self, _: &[u8; 32]) -> bool {
        false
    }
    async fn put(&self, _: &[u8], _: &mut [u8]) -> Result<(), PutError> {
        Err(PutError::Store(StoreError))
    }
    async fn factory_reset(&self) -> Result<(), StoreError> {
        Err(StoreError)
    }
    fn reboot(&self) -> ! {
        loop {
            core::hint::spin_loop();
        }
    }
    fn write_config(&self, _: &Config, _: &mut [u8]) -> Option<usize> {
        None
    }
    async fn update_check(&self, _: u64) -> Result<(), UpdateError> {
        Err(UpdateError::NoKey)
    }
    async fn update<R: Read>(
        &self,
        _: &mut R,
        _: u64,
        _: &[u8],
        _: &mut [u8],
    ) -> Result<(), UpdateError> {
        Err(UpdateError::NoKey)
    }
    async fn write_update_status(&self, _: &mut [u8]) -> Option<usize> {
        None
    }
}

/// The admin side of the device: its key, its configuration store, its firmware updates,
/// its reset.
pub struct Admin<F: NorFlash, D: BlockingNorFlash, S: BlockingNorFlash> {
    storage: Mutex<CriticalSectionRawMutex, Store<F>>,
    update: Mutex<CriticalSectionRawMutex, Update<D, S>>,
    factory: Config,
    admin_key_hash: Option<[u8; 32]>,
    source: Source,
    reboot: fn() -> !,
}

impl<F: NorFlash, D: BlockingNorFlash, S: BlockingNorFlash> Admin<F, D, S> {
    /// `factory`: the compiled configuration (with the board's provisioning: its
    /// `auth.admin_key_hash` is the admin key) a `PUT` is applied to. `source`: what
    /// [`boot_config`] said; `running`: the configuration it made, whose
    /// `auth.admin_key_hash` (a stored one over the provisioned one) the admin routes
    /// require until the next boot. `update`: the bootloader's partitions and the fleet
    /// key. `reboot` resets the device.
    pub fn new(
        storage: Store<F>,
        update: Update<D, S>,
        factory: Config,
        (running, source): (&Config, Source),
        reboot: fn() -> !,
    ) -> Self {
        Self {
            storage: Mutex::new(storage),
            update: Mutex::new(update),
            factory,
            admin_key_hash: running.auth.admin_key_hash,
            source,
            reboot,
        }
    }

    /// Once the image works: notes the boot state and, if `mark`, marks the image booted
    /// ([`Update::booted`]).
    pub async fn booted(&self, mark: bool) {
        self.update.lock().await.booted(mark);
    }
}

impl<F: NorFlash, D: BlockingNorFlash, S: BlockingNorFlash> AdminApi for Admin<F, D, S> {
    fn authorized(&self, presented: &[u8; 32]) -> bool {
        match &self.admin_key_hash {
            Some(expected) => hash_matches(presented, expected),
            None => false,
        }
    }

    async fn put(&self, body: &[u8], scratch: &mut [u8]) -> Result<(), PutError> {
        Settings::parse_checked(body, &self.factory).map_err(PutError::Refused)?;
        let mut storage = self.storage.lock().await;
        match storage.save(body, scratch).await {
            Ok(()) => {
                info!("configuration stored; effective after a reboot");
                Ok(())
            }
            Err(e) => Err(PutError::Store(e)),
        }
    }

    async fn factory_reset(&self) -> Result<(), StoreError> {
        let mut storage = self.storage.lock().await;
        storage.erase().await?;
        info!("stored configuration erased; factory configuration after a reboot");
        Ok(())
    }

    fn reboot(&self) -> ! {
        info!("rebooting");
        (self.reboot)()
    }

    async fn update_check(&self, body_len: u64) -> Result<(), UpdateError> {
        self.update.lock().await.check(body_len)
    }

    async fn update<R: Read>(
        &self,
        body: &mut R,
        body_len: u64,
        early: &[u8],
        buf: &mut [u8],
    ) -> Result<(), UpdateError> {
        let mut update = self.update.lock().await;
        update.receive(body, body_len, early, buf).await
    }

    async fn write_update_status(&self, out: &mut [u8]) -> Option<usize> {
        self.update.lock().await.write_status(out)
    }

    #[inline(never)]
    fn write_config(&self, c: &Config, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer { out, len: 0 };
        w.put("{\"source\":\"");
        w.put(self.source.as_str());
        w.put("\",\"network\":{\"mode\":\"");
        w.put(match c.network {
            Network::Dhcp => "dhcp",
            Network::Static { .. } => "static",
        });
        w.put("\"},\"http\":{\"http_port\":");
        w.number(c.http.http_port.into());
        w.put(",\"request_timeout_ms\":");
        w.number(c.http.request_timeout_ms);
        w.put("},\"ami\":{\"address\":\"");
        for (i, octet) in c.ami.address.iter().enumerate() {
            if i > 0 {
                w.put(".");
            }
            w.number((*octet).into());
        }
        w.put(":");
        w.number(c.ami.port.into());
        w.put("\"");
        w.string_member("username", c.ami.username);
        w.put(",\"ping_interval_secs\":");
        w.number(c.ami.ping_interval_secs);
        w.put(",\"max_backoff_secs\":");
        w.number(c.ami.max_backoff_secs);
        let d = &c.dialplan;
        w.put("},\"dialplan\":{\"agent_tech\":\"");
        w.put(d.agent_tech);
        w.put("\"");
        w.string_member("outbound_context", d.outbound_context);
        w.string_member("direct_context", d.direct_context);
        w.string_member("direct_channel", d.direct_channel);
        w.put(",\"agent_ring_timeout_ms\":");
        w.number(d.ring_timeout_ms);
        w.string_member(
            "callee_digits",
            match d.callee_digits {
                click2dial_core::originate::CalleeDigits::AsGiven => "as_given",
                click2dial_core::originate::CalleeDigits::E164 => "e164",
            },
        );
        w.put("},\"policy\":{\"allowed_country_codes\":");
        w.list(c.policy.allowed_country_codes);
        w.put(",\"refuse_premium_rate\":");
        w.put(if c.policy.refuse_premium_rate {
            "true"
        } else {
            "false"
        });
        w.put(",\"denied_prefixes\":");
        w.list(c.policy.denied_prefixes);
        w.put("},\"idempotency\":{\"ttl_secs\":");
        w.number(c.idempotency.ttl_secs);
        w.put("},\"auth\":{\"api_key_hash\":");
        w.hash(c.auth.api_key_hash.as_ref());
        w.put(",\"admin_key_hash\":");
        w.hash(c.auth.admin_key_hash.as_ref());
        w.put("}}");
        (w.len <= w.out.len()).then_some(w.len)
    }
}

/// Why a `PUT` stored nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutError {
    /// The body: `400` or `422`.
    Refused(Refusal),
    /// The flash: `500`.
    Store(StoreError),
}

/// JSON into a buffer. The values written are checked configuration values (printable ASCII
/// without `"` or `\`), digits and fixed names, so nothing needs escaping.
pub(crate) struct Writer<'o> {
    pub(crate) out: &'o mut [u8],
    pub(crate) len: usize,
}

impl Writer<'_> {
    /// Not inlined: the configuration is written in some sixty pieces, and one call each is
    /// much smaller than sixty bounds-checked copies.
    #[inline(never)]
    pub(crate) fn put(&mut self, s: &str) {
        self.put_bytes(s.as_bytes());
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dest) = self.out.get_mut(self.len..end) {
            dest.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// `,"name":"value"`
    fn string_member(&mut self, name: &str, value: &str) {
        self.put(",\"");
        self.put(name);
        self.put("\":\"");
        self.put(value);
        self.put("\"");
    }

    fn list(&mut self, items: &[&str]) {
        self.put("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.put(",");
            }
            self.put("\"");
            self.put(item);
            self.put("\"");
        }
        self.put("]");
    }

    pub(crate) fn number(&mut self, n: u32) {
        self.put(Decimal::new(n.into()).as_str());
    }

    /// A key's hash as `"sha256:<64 hex digits>"`, or `null`.
    fn hash(&mut self, hash: Option<&[u8; 32]>) {
        let Some(hash) = hash else {
            self.put("null");
            return;
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (pair, byte) in text.chunks_exact_mut(2).zip(hash) {
            for (digit, nibble) in pair.iter_mut().zip([byte >> 4, byte & 0xf]) {
                *digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
            }
        }
        self.put("\"sha256:");
        self.put_bytes(&text);
        self.put("\"");
    }
}
