//! When a board pets its watchdog: every [`PET_EVERY`] while the executor runs, except once an
//! image that has not come up passes its boot deadline. A hung executor stops petting at once;
//! an image that never comes up (an update whose network never starts) stops at the deadline,
//! and the reset that follows lets the bootloader swap the previous image back. The board
//! owns the hardware and the task; this module owns the rule, so every board keeps the same.

use core::sync::atomic::{AtomicBool, Ordering};

use embassy_time::{Duration, Instant, Timer};

use crate::fmt::warn;

/// How often the watchdog is petted; a board's watchdog period must be several times longer.
pub const PET_EVERY: Duration = Duration::from_secs(1);

/// Set once the image came up; never cleared until the next reset.
static UP: AtomicBool = AtomicBool::new(false);

/// The image came up (for a fleet image: it marked itself booted): from now on the watchdog
/// is petted for as long as the executor runs.
pub fn mark_up() {
    UP.store(true, Ordering::Relaxed);
}

/// Whether the watchdog is petted `since_boot` after the start: always once the image is
/// `up`, else only before `boot_deadline`.
pub fn should_pet(up: bool, since_boot: Duration, boot_deadline: Duration) -> bool {
    up || since_boot < boot_deadline
}

/// Pets the watchdog with `pet` every [`PET_EVERY`] while [`should_pet`] says so; a board
/// runs this in a task of its own.
pub async fn keep(mut pet: impl FnMut(), boot_deadline: Duration) -> ! {
    let mut warned = false;
    loop {
        let since_boot = Instant::now().duration_since(Instant::from_ticks(0));
        if should_pet(UP.load(Ordering::Relaxed), since_boot, boot_deadline) {
            pet();
        } else if !warned {
            warned = true;
            warn!(
                "watchdog: not up {=u64} s after boot; no longer petted, the next reset follows",
                boot_deadline.as_secs()
            );
        }
        Timer::after(PET_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_petted_before_its_deadline_and_for_good_once_up() {
        let deadline = Duration::from_secs(15);
        assert!(should_pet(false, Duration::from_secs(0), deadline));
        assert!(should_pet(false, Duration::from_millis(14_999), deadline));
        assert!(!should_pet(false, deadline, deadline));
        assert!(!should_pet(false, Duration::from_secs(3600), deadline));
        assert!(should_pet(true, Duration::from_secs(3600), deadline));
    }
}
