//! The click2dial appliance on QEMU's `mps2-an385` (Cortex-M3, SMSC LAN9118): the image the
//! hardware-in-the-loop tests boot. `cargo run` starts it in `qemu-system-arm` with the
//! firmware's HTTP port forwarded to the host.
#![no_std]
#![no_main]

mod entropy;
mod executor;
mod lan9118;
mod mem;
mod overrides;
mod stack_usage;
mod storage;
mod time_driver;
mod vectors;
mod watchdog;

#[cfg(feature = "admin")]
use click2dial_appliance::admin::{self, Admin, Store, Update, STORE_BUF_LEN};
use click2dial_appliance::http::{self, HttpBuffers, SharedBody};
use click2dial_appliance::idempotency::Table;
use click2dial_appliance::keyed::KeyedEntropy;
use click2dial_appliance::pbx::{AmiBuffers, Pbx};
#[cfg(feature = "admin")]
use click2dial_appliance::settings::Settings;
use click2dial_appliance::watchdog as keeper;
use click2dial_appliance::{config, App, Config};
use click2dial_core::Validators;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::{entry, exception};
use defmt::{error, info, unwrap};
use defmt_semihosting as _;
use embassy_executor::Spawner;
use embassy_net::{Runner, Stack, StackResources};
use embassy_time::{Duration, Timer};
use static_cell::{ConstStaticCell, StaticCell};

use crate::lan9118::{Lan9118, FRAME_BUF_LEN};
use crate::watchdog::Watchdog;

/// The LAN9118's register block on mps2-an385.
const NIC_BASE: usize = 0x4020_0000;
/// Its interrupt line.
const NIC_IRQ: u16 = 13;
/// HTTP listener tasks: one connection each.
const LISTENERS: usize = 3;
/// Sockets: the listeners, the AMI connection and DHCP.
const SOCKETS: usize = LISTENERS + 2;
/// The watchdog's period: a reset 2 × 4 s after the last pet.
const WATCHDOG_PERIOD_MS: u32 = 4_000;
/// How long an image may take to come up (its network configured; a fleet image: marked
/// booted) before the watchdog is no longer petted. QEMU's user network answers DHCP at once.
const BOOT_DEADLINE: Duration = Duration::from_secs(15);

/// Initialised at start-up rather than `static PBX: Pbx = Pbx::new()`: its initial value is
/// not all zeroes, so a plain static would cost 436 bytes of flash for `.data`.
static PBX: StaticCell<Pbx> = StaticCell::new();
static TABLE: Table = Table::new();
static ENTROPY: StaticCell<KeyedEntropy> = StaticCell::new();
static CONFIG: StaticCell<Config> = StaticCell::new();
#[cfg(feature = "admin")]
static SETTINGS: StaticCell<Settings<'static>> = StaticCell::new();
#[cfg(feature = "admin")]
static STORED: ConstStaticCell<[u8; STORE_BUF_LEN]> = ConstStaticCell::new([0; STORE_BUF_LEN]);
#[cfg(feature = "admin")]
static ADMIN: StaticCell<AdminSide> = StaticCell::new();

/// The admin side the listeners get.
#[cfg(feature = "admin")]
type AdminSide = Admin<storage::Flash, storage::Flash, storage::Flash>;
#[cfg(not(feature = "admin"))]
type AdminSide = click2dial_appliance::admin::NoAdmin;
static APP: StaticCell<App<'static>> = StaticCell::new();
static VALIDATORS: StaticCell<Validators> = StaticCell::new();
static NET: ConstStaticCell<StackResources<SOCKETS>> = ConstStaticCell::new(StackResources::new());
static RX_FRAME: ConstStaticCell<[u8; FRAME_BUF_LEN]> = ConstStaticCell::new([0; FRAME_BUF_LEN]);
static TX_FRAME: ConstStaticCell<[u8; FRAME_BUF_LEN]> = ConstStaticCell::new([0; FRAME_BUF_LEN]);
static AMI_BUFFERS: ConstStaticCell<AmiBuffers> = ConstStaticCell::new(AmiBuffers::new());
static HTTP_BODY: SharedBody = SharedBody::new();
static HTTP_BUFFERS: [ConstStaticCell<HttpBuffers>; LISTENERS] =
    [const { ConstStaticCell::new(HttpBuffers::new()) }; LISTENERS];

/// An interrupt number for `NVIC`, without a device crate.
#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: 13 is the LAN9118's line on mps2-an385, a valid external interrupt.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

#[entry]
fn main() -> ! {
    info!("click2dial appliance, mps2-an385");
    let core = unwrap!(cortex_m::Peripherals::take());
    time_driver::init(core.SYST);
    let watchdog = Watchdog::start(WATCHDOG_PERIOD_MS);
    let (config, admin) = configuration();
    let entropy = entropy();
    let (stack, runner) = network(config, entropy);
    let (app, pbx) = app(config, entropy);
    // SAFETY: the handler only touches the NIC's INT_STS and a waker.
    unsafe { NVIC::unmask(Irq(NIC_IRQ)) };
    executor::run(|spawner: Spawner| {
        spawner.spawn(unwrap!(watchdog_task(watchdog)));
        spawner.spawn(unwrap!(net_task(runner)));
        spawner.spawn(unwrap!(ami_task(pbx, stack, config, AMI_BUFFERS.take())));
        for buffers in &HTTP_BUFFERS {
            spawner.spawn(unwrap!(http_task(stack, app, admin, buffers.take())));
        }
        spawner.spawn(unwrap!(monitor_task(stack, config)));
        #[cfg(feature = "admin")]
        spawner.spawn(unwrap!(booted_task(stack, admin)));
    })
}

/// The configuration to run (the compiled one with the stored one over it, if any passes its
/// check) and the admin API over the configuration store.
#[cfg(feature = "admin")]
#[inline(never)]
fn configuration() -> (&'static Config, &'static AdminSide) {
    let mut factory = overrides::apply(config::BUILD);
    if let Some(hash) = storage::admin_key_hash() {
        factory.auth.admin_key_hash = Some(hash);
    }
    let config_len = storage::CONFIG_RANGE.end - storage::CONFIG_RANGE.start;
    let mut store = Store::new(storage::Flash::new(storage::CONFIG_RANGE), 0..config_len);
    let stored = embassy_futures::block_on(admin::fetch_stored(&mut store, STORED.take()));
    let (config, source) = admin::boot_config(factory, stored, |s| SETTINGS.init(s));
    if factory.auth.admin_key_hash.is_none() {
        defmt::warn!("no admin key provisioned: the admin API refuses every request");
    }
    let update = Update::new(
        storage::Flash::new(storage::DFU_RANGE),
        storage::Flash::new(storage::STATE_RANGE),
        storage::update_key(),
        VERSION,
    );
    if storage::update_key().is_none() {
        defmt::warn!("no update key provisioned: updates are refused");
    }
    let admin = Admin::new(store, update, factory, (&config, source), reboot);
    (CONFIG.init(config), ADMIN.init(admin))
}

/// The compiled configuration (with QEMU's per-boot overrides); no admin API.
#[cfg(not(feature = "admin"))]
fn configuration() -> (&'static Config, &'static AdminSide) {
    static NO_ADMIN: AdminSide = click2dial_appliance::admin::NoAdmin;
    (CONFIG.init(overrides::apply(config::BUILD)), &NO_ADMIN)
}

/// The image's version, as `GET /admin/update` shows it: `C2D_FIRMWARE_VERSION` at build
/// time, else the crate's.
#[cfg(feature = "admin")]
const VERSION: &str = match option_env!("C2D_FIRMWARE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// `POST /admin/reboot`: a system reset, as the reset line would do.
#[cfg(feature = "admin")]
fn reboot() -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}

/// The boot's keystream under the device secret; a device that was never provisioned does
/// not start, since its references could be predicted.
#[inline(never)]
fn entropy() -> &'static KeyedEntropy {
    match entropy::init(NIC_BASE) {
        Some((keyed, boot)) => {
            info!("boot {=u32}", boot);
            ENTROPY.init(keyed)
        }
        None => defmt::panic!(
            "not provisioned: no device secret at {=usize:#x} (see README.md)",
            storage::PROVISIONING
        ),
    }
}

/// Brings up the NIC and the network stack. Kept out of `main` (as is [`app`]) so the
/// temporaries of start-up do not stay on the stack while the executor runs.
#[inline(never)]
fn network(config: &Config, entropy: &KeyedEntropy) -> (Stack<'static>, Runner<'static, Lan9118>) {
    // SAFETY: NIC_BASE is the LAN9118 of mps2-an385, owned by this driver alone.
    let nic = match unsafe { Lan9118::new(NIC_BASE, RX_FRAME.take(), TX_FRAME.take()) } {
        Ok(nic) => nic,
        Err(e) => defmt::panic!("LAN9118: {}", e),
    };
    info!(
        "LAN9118 ID_REV {=u32:#x}, MAC {=[u8]:02x}",
        nic.id_rev(),
        nic.mac()
    );
    embassy_net::new(nic, config.net_config(), NET.take(), entropy.next_u64())
}

/// Loads the validators and builds the create-call service and its PBX handle.
#[inline(never)]
fn app(
    config: &'static Config,
    entropy: &'static KeyedEntropy,
) -> (&'static App<'static>, &'static Pbx) {
    let validators = match Validators::new() {
        Ok(v) => VALIDATORS.init(v),
        Err(_) => defmt::panic!("validator tables do not load"),
    };
    let pbx = PBX.init(Pbx::new());
    (
        APP.init(App::new(config, validators, pbx, &TABLE, entropy)),
        pbx,
    )
}

/// Pets the watchdog by the appliance's rule ([`keeper::keep`]).
#[embassy_executor::task]
async fn watchdog_task(mut watchdog: Watchdog) -> ! {
    keeper::keep(|| watchdog.pet(), BOOT_DEADLINE).await
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Lan9118>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn ami_task(
    pbx: &'static Pbx,
    stack: Stack<'static>,
    config: &'static Config,
    buffers: &'static mut AmiBuffers,
) -> ! {
    pbx.run(stack, &config.ami, &config.dialplan, buffers).await
}

#[embassy_executor::task(pool_size = LISTENERS)]
async fn http_task(
    stack: Stack<'static>,
    app: &'static App<'static>,
    admin: &'static AdminSide,
    buffers: &'static mut HttpBuffers,
) -> ! {
    http::serve(stack, app, admin, buffers, &HTTP_BODY).await
}

/// Tells the bootloader this image works once its network is up; an update that never gets
/// here is swapped back at the next reset. The `never-mark-booted` test image does not.
#[cfg(feature = "admin")]
#[embassy_executor::task]
async fn booted_task(stack: Stack<'static>, admin: &'static AdminSide) {
    stack.wait_config_up().await;
    let works = !cfg!(feature = "never-mark-booted");
    admin.booted(works).await;
    if works {
        keeper::mark_up();
    }
}

/// Logs the address once configured, then the stack high-water mark whenever it grows.
#[embassy_executor::task]
async fn monitor_task(stack: Stack<'static>, config: &'static Config) -> ! {
    stack.wait_config_up().await;
    // A fleet image is up once it marked itself booted (`booted_task`).
    #[cfg(not(feature = "admin"))]
    keeper::mark_up();
    if let Some(v4) = stack.config_v4() {
        info!(
            "listening on {}:{=u16}, PBX {=[u8]}:{=u16}",
            v4.address, config.http.http_port, config.ami.address, config.ami.port
        );
    }
    info!(
        "started; stack high-water at start-up: {=usize} bytes",
        stack_usage::high_water()
    );
    let mut reported = 0;
    loop {
        let used = stack_usage::high_water();
        if used > reported {
            reported = used;
            info!(
                "stack high-water: {=usize} bytes of {=usize}",
                used,
                stack_usage::size()
            );
        }
        Timer::after(Duration::from_millis(500)).await;
    }
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == NIC_IRQ as i16 {
        lan9118::on_interrupt(NIC_BASE);
    }
}

#[exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    error!("hard fault at pc {=u32:#x}", frame.pc());
    exit_failure()
}

/// Logs where the panic happened, not its message: formatting the message would link
/// `core::fmt` (about 464 B of flash, measured) for a path that should never run.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => error!("panicked at {=str}:{=u32}", at.file(), at.line()),
        None => error!("panicked"),
    }
    exit_failure()
}

fn exit_failure() -> ! {
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
