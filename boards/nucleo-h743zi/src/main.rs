//! The click2dial appliance on a NUCLEO-H743ZI: STM32H743ZI at 400 MHz, the on-chip Ethernet
//! MAC with the board's LAN8742A PHY (RMII), the hardware RNG for references, defmt over RTT.
//! `cargo run` flashes it with probe-rs. Pins and memory map: README.md.
#![no_std]
#![no_main]

use core::cell::RefCell;

use click2dial_appliance::admin::{self, Admin, Store, Update, STORE_BUF_LEN};
use click2dial_appliance::http::{self, HttpBuffers, SharedBody};
use click2dial_appliance::idempotency::Table;
use click2dial_appliance::pbx::{AmiBuffers, Pbx};
use click2dial_appliance::settings::Settings;
use click2dial_appliance::watchdog as keeper;
use click2dial_appliance::{config, App, Config, Entropy};
use click2dial_core::Validators;
use defmt::{info, unwrap};
use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_embedded_hal::flash::partition::BlockingPartition;
use embassy_executor::Spawner;
use embassy_net::{Runner, Stack, StackResources};
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::flash::{Blocking, Flash};
use embassy_stm32::peripherals::{ETH, ETH_SMA, IWDG1, RNG};
use embassy_stm32::rng::{self, Rng};
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_stm32::{bind_interrupts, rcc};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::Duration;
use static_cell::{ConstStaticCell, StaticCell};
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

/// The on-chip flash, shared by its users, each through a partition of its own.
type SharedFlash = Mutex<CriticalSectionRawMutex, RefCell<Flash<'static, Blocking>>>;

/// A user's part of the flash (offsets from the partition's start).
type FlashPart = BlockingPartition<'static, CriticalSectionRawMutex, Flash<'static, Blocking>>;

/// The configuration store's flash.
type ConfigFlash = BlockingAsync<FlashPart>;

/// The admin API over the configuration store and the bootloader's partitions.
type AdminSide = Admin<ConfigFlash, FlashPart, FlashPart>;

/// The configuration store: the last two 128 KiB sectors of bank 2 (`0x081C_0000` to the end
/// of flash), past the bootloader's partitions (`memory.x`). A sector erase stalls the device
/// for about a second; that happens only on `PUT /admin/config` and factory reset.
const CONFIG_PART: (u32, u32) = (0x001C_0000, 0x0004_0000);

/// The bootloader's state partition, `BOOTLOADER_STATE` in `memory.x` (offset, size).
const BOOT_STATE_PART: (u32, u32) = (0x0002_0000, 0x0002_0000);

/// The bootloader's DFU partition, `DFU` in `memory.x` (offset, size).
const DFU_PART: (u32, u32) = (0x0010_0000, 0x000A_0000);

/// The fleet's Ed25519 update key, compiled in from the file `C2D_UPDATE_PUBLIC_KEY` names
/// (32 raw bytes, `boards/sign-update.sh public`); without it the image takes no update.
const UPDATE_KEY: Option<[u8; 32]> = include!(concat!(env!("OUT_DIR"), "/update_key.rs"));

/// The image's version, as `GET /admin/update` shows it.
const VERSION: &str = match option_env!("C2D_FIRMWARE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// The independent watchdog's period: a reset if nothing pets it for this long.
const WATCHDOG_US: u32 = 8_000_000;
/// How long an image may take to mark itself booted (its network up) before the watchdog is
/// no longer petted: the reset that follows rolls a swapped-in update back.
const BOOT_DEADLINE: Duration = Duration::from_secs(120);

/// HTTP listener tasks: one connection each.
const LISTENERS: usize = 3;
/// Sockets: the listeners, the AMI connection and DHCP.
const SOCKETS: usize = LISTENERS + 2;

/// The hardware RNG, shared by the listeners.
struct HardwareRng(Mutex<CriticalSectionRawMutex, RefCell<Option<Rng<'static, RNG>>>>);

impl Entropy for HardwareRng {
    fn fill(&self, buf: &mut [u8]) {
        self.0.lock(|rng| {
            if let Some(rng) = rng.borrow_mut().as_mut() {
                rng.fill_bytes(buf);
            }
        });
    }
}

static PBX: Pbx = Pbx::new();
static TABLE: Table = Table::new();
static ENTROPY: HardwareRng = HardwareRng(Mutex::new(RefCell::new(None)));
static VALIDATORS: StaticCell<Validators> = StaticCell::new();
static APP: StaticCell<App<'static>> = StaticCell::new();
static CONFIG: StaticCell<Config> = StaticCell::new();
static SETTINGS: StaticCell<Settings<'static>> = StaticCell::new();
static STORED: ConstStaticCell<[u8; STORE_BUF_LEN]> = ConstStaticCell::new([0; STORE_BUF_LEN]);
static ADMIN: StaticCell<AdminSide> = StaticCell::new();
static FLASH: StaticCell<SharedFlash> = StaticCell::new();
static NET: ConstStaticCell<StackResources<SOCKETS>> = ConstStaticCell::new(StackResources::new());
static PACKETS: ConstStaticCell<PacketQueue<4, 4>> = ConstStaticCell::new(PacketQueue::new());
static AMI_BUFFERS: ConstStaticCell<AmiBuffers> = ConstStaticCell::new(AmiBuffers::new());
static HTTP_BODY: SharedBody = SharedBody::new();
static HTTP_BUFFERS: [ConstStaticCell<HttpBuffers>; LISTENERS] =
    [const { ConstStaticCell::new(HttpBuffers::new()) }; LISTENERS];

/// 400 MHz from the internal 64 MHz oscillator (no crystal needed on the Nucleo); the RNG
/// runs on HSI48 (the reset mux).
fn clocks() -> embassy_stm32::Config {
    let mut config = embassy_stm32::Config::default();
    config.rcc.hsi = Some(rcc::HSIPrescaler::DIV1);
    config.rcc.csi = true;
    config.rcc.pll1 = Some(rcc::Pll {
        source: rcc::PllSource::HSI,
        prediv: rcc::PllPreDiv::DIV4,
        mul: rcc::PllMul::MUL50,
        fracn: None,
        divp: Some(rcc::PllDiv::DIV2),
        divq: Some(rcc::PllDiv::DIV8),
        divr: None,
    });
    config.rcc.sys = rcc::Sysclk::PLL1_P;
    config.rcc.ahb_pre = rcc::AHBPrescaler::DIV2;
    config.rcc.apb1_pre = rcc::APBPrescaler::DIV2;
    config.rcc.apb2_pre = rcc::APBPrescaler::DIV2;
    config.rcc.apb3_pre = rcc::APBPrescaler::DIV2;
    config.rcc.apb4_pre = rcc::APBPrescaler::DIV2;
    config.rcc.voltage_scale = rcc::VoltageScale::Scale1;
    config
}

/// A locally administered unicast MAC address derived from the chip's unique ID.
fn mac_address() -> [u8; 6] {
    let uid = embassy_stm32::uid::uid();
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (i, b) in uid.iter().enumerate() {
        mac[1 + i % 5] ^= *b;
    }
    mac
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(clocks());
    info!("click2dial appliance, NUCLEO-H743ZI");
    let mut watchdog = IndependentWatchdog::new(p.IWDG1, WATCHDOG_US);
    watchdog.unleash();
    spawner.spawn(unwrap!(watchdog_task(watchdog)));
    let rng = Rng::new(p.RNG, Irqs);
    ENTROPY.0.lock(|cell| *cell.borrow_mut() = Some(rng));
    let mut seed = [0u8; 8];
    ENTROPY.fill(&mut seed);

    let factory = config::BUILD;
    let flash: &'static SharedFlash =
        FLASH.init(Mutex::new(RefCell::new(Flash::new_blocking(p.FLASH))));
    let (at, size) = CONFIG_PART;
    let mut store = Store::new(
        BlockingAsync::new(BlockingPartition::new(flash, at, size)),
        0..size,
    );
    let stored = admin::fetch_stored(&mut store, STORED.take()).await;
    let (config, source) = admin::boot_config(factory, stored, |s| SETTINGS.init(s));
    let config: &'static Config = CONFIG.init(config);
    let update = Update::new(
        BlockingPartition::new(flash, DFU_PART.0, DFU_PART.1),
        BlockingPartition::new(flash, BOOT_STATE_PART.0, BOOT_STATE_PART.1),
        UPDATE_KEY,
        VERSION,
    );
    let admin: &'static AdminSide =
        ADMIN.init(Admin::new(store, update, factory, (config, source), reboot));
    let mac = mac_address();
    info!("MAC {=[u8]:02x}", mac);
    let device: Device = Ethernet::new(
        PACKETS.take(),
        p.ETH,
        Irqs,
        p.PA1,  // REF_CLK
        p.PA7,  // CRS_DV
        p.PC4,  // RXD0
        p.PC5,  // RXD1
        p.PG13, // TXD0
        p.PB13, // TXD1
        p.PG11, // TX_EN
        mac,
        p.ETH_SMA,
        p.PA2, // MDIO
        p.PC1, // MDC
    );
    let (stack, runner) = embassy_net::new(
        device,
        config.net_config(),
        NET.take(),
        u64::from_le_bytes(seed),
    );
    let validators = match Validators::new() {
        Ok(v) => VALIDATORS.init(v),
        Err(_) => defmt::panic!("validator tables do not load"),
    };
    let app = APP.init(App::new(config, validators, &PBX, &TABLE, &ENTROPY));

    spawner.spawn(unwrap!(net_task(runner)));
    spawner.spawn(unwrap!(ami_task(stack, config, AMI_BUFFERS.take())));
    for buffers in &HTTP_BUFFERS {
        spawner.spawn(unwrap!(http_task(stack, app, admin, buffers.take())));
    }
    stack.wait_config_up().await;
    // Tells the bootloader this image works: it brought up its clocks, Ethernet and an
    // address. An update swapped in that never gets here is swapped back at the next reset.
    admin.booted(true).await;
    keeper::mark_up();
    if let Some(v4) = stack.config_v4() {
        info!("listening on {}:{=u16}", v4.address, config.http.http_port);
    }
}

/// Pets the watchdog by the appliance's rule ([`keeper::keep`]): a hung image, or one that
/// never gets its network up, is reset (and a swapped-in update then rolled back by the
/// bootloader).
#[embassy_executor::task]
async fn watchdog_task(mut watchdog: IndependentWatchdog<'static, IWDG1>) -> ! {
    keeper::keep(|| watchdog.pet(), BOOT_DEADLINE).await
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Device>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn ami_task(
    stack: Stack<'static>,
    config: &'static Config,
    buffers: &'static mut AmiBuffers,
) -> ! {
    PBX.run(stack, &config.ami, &config.dialplan, buffers).await
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

/// `POST /admin/reboot`: a system reset.
fn reboot() -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}
