//! A minimal `embassy-net-driver` for the SMSC LAN9118 as QEMU emulates it on the MPS2
//! boards: 32-bit PIO through the RX/TX data FIFOs, one interrupt line.
//!
//! The driver knows nothing of the network stack. Frames are copied between the FIFOs and two
//! frame buffers the board lends it. Receive is interrupt-driven (RX status FIFO level);
//! QEMU's transmit path completes synchronously, so transmit only checks FIFO room.
//!
//! Real LAN9220 silicon also needs a PHY reset and autonegotiation before the link is up;
//! QEMU's PHY reports the link up from reset, so this driver does not do that.

use core::ptr::{read_volatile, write_volatile};
use core::task::Context;

use embassy_net_driver::{Capabilities, HardwareAddress, LinkState};
use embassy_sync::waitqueue::AtomicWaker;

/// Ethernet frame without FCS: the MTU embassy-net sees.
pub const MTU: usize = 1514;
/// Frame buffer size: the largest frame plus FCS, rounded up to whole FIFO words.
pub const FRAME_BUF_LEN: usize = 1536;

mod reg {
    pub const RX_DATA_FIFO: usize = 0x00;
    pub const TX_DATA_FIFO: usize = 0x20;
    pub const RX_STATUS_FIFO: usize = 0x40;
    pub const ID_REV: usize = 0x50;
    pub const IRQ_CFG: usize = 0x54;
    pub const INT_STS: usize = 0x58;
    pub const INT_EN: usize = 0x5C;
    pub const BYTE_TEST: usize = 0x64;
    pub const FIFO_INT: usize = 0x68;
    pub const RX_CFG: usize = 0x6C;
    pub const TX_CFG: usize = 0x70;
    pub const HW_CFG: usize = 0x74;
    pub const RX_FIFO_INF: usize = 0x7C;
    pub const TX_FIFO_INF: usize = 0x80;
    pub const MAC_CSR_CMD: usize = 0xA4;
    pub const MAC_CSR_DATA: usize = 0xA8;
}

/// Indirect MAC registers (through `MAC_CSR_CMD`/`MAC_CSR_DATA`).
mod mac {
    pub const CR: u32 = 1;
    pub const ADDRH: u32 = 2;
    pub const ADDRL: u32 = 3;
    pub const CR_RXEN: u32 = 1 << 2;
    pub const CR_TXEN: u32 = 1 << 3;
    pub const CSR_BUSY: u32 = 1 << 31;
    pub const CSR_READ: u32 = 1 << 30;
}

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
/// `IRQ_EN`, `IRQ_POL` (active high) and `IRQ_TYPE` (push-pull): QEMU treats any other
/// setting as active-low.
const IRQ_CFG_VALUE: u32 = 0x111;
/// `INT_STS`/`INT_EN`: RX status FIFO level reached.
const INT_RSFL: u32 = 1 << 3;
/// `HW_CFG.SRST`: soft reset, self-clearing.
const HW_CFG_SRST: u32 = 1;
/// `TX_CFG.TX_ON`, and `TXSAO` (TX status may overrun: statuses are not read).
const TX_CFG_VALUE: u32 = (1 << 1) | (1 << 2);
/// TX command A: first and last segment of a one-buffer frame.
const TX_CMD_A_FIRST_LAST: u32 = (1 << 13) | (1 << 12);
/// RX status: error summary.
const RX_STATUS_ERROR: u32 = 1 << 15;

/// Woken by [`on_interrupt`] when frames arrive.
static RX_WAKER: AtomicWaker = AtomicWaker::new();

/// Why the controller could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum InitError {
    /// `BYTE_TEST` did not read back its fixed pattern: no LAN9118 at this address.
    NotFound,
    /// The soft reset did not complete.
    ResetTimeout,
}

/// Register access: the base address of the register block.
#[derive(Clone, Copy)]
struct Regs {
    base: usize,
}

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `Lan9118::new`'s caller vouched for the register block; offsets are the
        // datasheet's and inside the block.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn mac_wait(self) {
        for _ in 0..100_000 {
            if self.read(reg::MAC_CSR_CMD) & mac::CSR_BUSY == 0 {
                return;
            }
        }
    }

    fn mac_read(self, index: u32) -> u32 {
        self.mac_wait();
        self.write(reg::MAC_CSR_CMD, mac::CSR_BUSY | mac::CSR_READ | index);
        self.mac_wait();
        self.read(reg::MAC_CSR_DATA)
    }

    fn mac_write(self, index: u32, value: u32) {
        self.mac_wait();
        self.write(reg::MAC_CSR_DATA, value);
        self.write(reg::MAC_CSR_CMD, mac::CSR_BUSY | index);
        self.mac_wait();
    }

    /// Frames waiting in the RX status FIFO.
    fn rx_frames(self) -> u32 {
        (self.read(reg::RX_FIFO_INF) >> 16) & 0xFF
    }

    /// Free bytes in the TX data FIFO.
    fn tx_free(self) -> usize {
        (self.read(reg::TX_FIFO_INF) & 0xFFFF) as usize
    }
}

/// The controller and the two frame buffers lent to it.
pub struct Lan9118 {
    regs: Regs,
    mac: [u8; 6],
    rx: &'static mut [u8; FRAME_BUF_LEN],
    tx: &'static mut [u8; FRAME_BUF_LEN],
}

impl Lan9118 {
    /// Resets the controller at `base`, enables MAC receive and transmit and the RX
    /// interrupt, and reads the MAC address the controller holds.
    ///
    /// # Safety
    /// `base` must be the LAN9118's register block, used by nothing else.
    pub unsafe fn new(
        base: usize,
        rx: &'static mut [u8; FRAME_BUF_LEN],
        tx: &'static mut [u8; FRAME_BUF_LEN],
    ) -> Result<Self, InitError> {
        let regs = Regs { base };
        if regs.read(reg::BYTE_TEST) != BYTE_TEST_VALUE {
            return Err(InitError::NotFound);
        }
        regs.write(reg::HW_CFG, HW_CFG_SRST);
        if !(0..100_000).any(|_| regs.read(reg::HW_CFG) & HW_CFG_SRST == 0) {
            return Err(InitError::ResetTimeout);
        }
        let high = regs.mac_read(mac::ADDRH).to_le_bytes();
        let low = regs.mac_read(mac::ADDRL).to_le_bytes();
        regs.write(reg::RX_CFG, 0);
        regs.write(reg::TX_CFG, TX_CFG_VALUE);
        // RX status level 0: interrupt as soon as one frame is waiting.
        regs.write(reg::FIFO_INT, regs.read(reg::FIFO_INT) & !0xFF);
        // Exact MAC match plus broadcast (the reset value is promiscuous).
        regs.mac_write(mac::CR, mac::CR_RXEN | mac::CR_TXEN);
        regs.write(reg::INT_STS, u32::MAX);
        regs.write(reg::INT_EN, INT_RSFL);
        regs.write(reg::IRQ_CFG, IRQ_CFG_VALUE);
        Ok(Self {
            regs,
            mac: [low[0], low[1], low[2], low[3], high[0], high[1]],
            rx,
            tx,
        })
    }

    /// `ID_REV`, for the start-up log.
    pub fn id_rev(&self) -> u32 {
        self.regs.read(reg::ID_REV)
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

/// The interrupt handler's work for the controller at `base`: acknowledge, wake the receiver.
pub fn on_interrupt(base: usize) {
    let regs = Regs { base };
    regs.write(reg::INT_STS, regs.read(reg::INT_STS));
    RX_WAKER.wake();
}

/// One received frame, read from the FIFO when consumed.
pub struct RxToken<'a> {
    regs: Regs,
    buf: &'a mut [u8; FRAME_BUF_LEN],
}

/// Room for one frame to send.
pub struct TxToken<'a> {
    regs: Regs,
    buf: &'a mut [u8; FRAME_BUF_LEN],
}

impl embassy_net_driver::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        let status = self.regs.read(reg::RX_STATUS_FIFO);
        // Length with FCS; the FIFO holds the frame in whole little-endian words.
        let with_fcs = ((status >> 16) & 0x3FFF) as usize;
        let words = with_fcs.div_ceil(4);
        for chunk in self.buf.chunks_exact_mut(4).take(words) {
            chunk.copy_from_slice(&self.regs.read(reg::RX_DATA_FIFO).to_le_bytes());
        }
        // Words beyond the buffer (an oversize frame) are drained and the frame is dropped.
        for _ in FRAME_BUF_LEN / 4..words {
            let _ = self.regs.read(reg::RX_DATA_FIFO);
        }
        let len = if status & RX_STATUS_ERROR != 0 || with_fcs > FRAME_BUF_LEN {
            0
        } else {
            with_fcs.saturating_sub(4)
        };
        f(&mut self.buf[..len])
    }
}

impl embassy_net_driver::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MTU);
        let result = f(&mut self.buf[..len]);
        self.regs
            .write(reg::TX_DATA_FIFO, TX_CMD_A_FIRST_LAST | len as u32);
        self.regs.write(reg::TX_DATA_FIFO, len as u32);
        for chunk in self.buf[..len.next_multiple_of(4)].chunks_exact(4) {
            let word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.regs.write(reg::TX_DATA_FIFO, word);
        }
        result
    }
}

impl embassy_net_driver::Driver for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(RxToken<'_>, TxToken<'_>)> {
        RX_WAKER.register(cx.waker());
        if self.regs.rx_frames() == 0 || self.regs.tx_free() < FRAME_BUF_LEN + 8 {
            return None;
        }
        Some((
            RxToken {
                regs: self.regs,
                buf: self.rx,
            },
            TxToken {
                regs: self.regs,
                buf: self.tx,
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<TxToken<'_>> {
        if self.regs.tx_free() < FRAME_BUF_LEN + 8 {
            // QEMU sends each frame as its last word is written, so this does not persist;
            // try again on the next poll.
            cx.waker().wake_by_ref();
            return None;
        }
        Some(TxToken {
            regs: self.regs,
            buf: self.tx,
        })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}
