//! The host's two clocks. Core's times (`Millis` in `ami::Session` and `call::CallTracker`)
//! are monotonic milliseconds: a [`Clock`] counts them from an `Instant`, so a wall-clock
//! step (NTP, a manual change) never moves a deadline. Wall-clock time is read only to
//! stamp what people read, the notifications' `timestamp` ([`Clock::wall`]).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic milliseconds since the clock started, plus [`REACHES_BACK_MS`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

/// What a clock reads when it starts: times up to this long before its start can be told
/// apart ([`Clock::from_wall`]), such as when a call that an earlier process followed was
/// joined, which the call's deadlines count from. Core's longest call.
pub const REACHES_BACK_MS: u64 = click2dial_core::call::MAX_CALL_MS;

impl Clock {
    /// A clock at [`REACHES_BACK_MS`] now.
    pub fn start() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the clock started, plus [`REACHES_BACK_MS`].
    pub fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed()).saturating_add(REACHES_BACK_MS)
    }

    /// A time on this clock as a tokio instant (to sleep until a core deadline); one
    /// before the clock started is its start.
    pub fn instant(&self, at: u64) -> tokio::time::Instant {
        let since_start = at.saturating_sub(REACHES_BACK_MS);
        tokio::time::Instant::from_std(self.epoch + Duration::from_millis(since_start))
    }

    /// A time on this clock as Unix milliseconds, for a timestamp people read: now on the
    /// wall clock, less how long ago `at` was.
    pub fn wall(&self, at: u64) -> u64 {
        unix_millis().saturating_sub(self.now_ms().saturating_sub(at))
    }

    /// A Unix time in milliseconds (another process's timestamp) on this clock: now, less
    /// how long ago it was on the wall clock; [`REACHES_BACK_MS`] before the clock's start
    /// at the earliest.
    pub fn from_wall(&self, unix_ms: u64) -> u64 {
        self.now_ms()
            .saturating_sub(unix_millis().saturating_sub(unix_ms))
    }
}

/// `d` in whole milliseconds.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Now on the wall clock, in Unix milliseconds.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How far ahead the runtime's timer driver always has a wake-up ([`keep_driver_wake_near`]).
pub const DRIVER_WAKE_WITHIN: Duration = Duration::from_millis(250);

/// Keeps a timer of the runtime at most [`DRIVER_WAKE_WITHIN`] ahead; never returns.
///
/// tokio's time driver, when a timer is set that expires before the driver's next planned
/// wake, wakes the driver with a write to its eventfd, even on the current-thread runtime
/// the host runs on, where the driver is the thread setting the timer and sees the timer
/// anyway when it next waits. After an idle moment the next planned wake is far off, so
/// every deadline a create sets (the Redis gate's, the request timeout, redis-rs's) cost
/// that system call, and the wake an `epoll_wait` that returned at once. With a wake-up
/// never further than this ahead, every longer deadline lies behind the planned wake and
/// sets nothing off; the price is four wake-ups a second while idle.
pub async fn keep_driver_wake_near() {
    let mut tick = tokio::time::interval(DRIVER_WAKE_WITHIN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_for_deadlines_wall_for_timestamps() {
        let clock = Clock::start();
        let a = clock.now_ms();
        std::thread::sleep(Duration::from_millis(20));
        let b = clock.now_ms();
        assert!(b >= a + 20, "{a} then {b}");
        // A deadline on the clock is that far from its start.
        let at = clock.instant(b + 1_000);
        let from_start = at.into_std().duration_since(clock.epoch);
        assert_eq!(
            from_start,
            Duration::from_millis(b + 1_000 - REACHES_BACK_MS)
        );
        assert_eq!(
            clock.instant(0).into_std(),
            clock.epoch,
            "before the start: the start"
        );
        // Another process's timestamp from before the start is still told apart.
        let hour_ago = unix_millis() - 3_600_000;
        let then = clock.from_wall(hour_ago);
        assert!(
            then < a.saturating_sub(3_600_000 - 1_000) && then + 3_600_000 >= a,
            "an hour before {a}: {then}"
        );
        assert!(clock.wall(then).abs_diff(hour_ago) <= 5, "and back");
        // An instant's wall time is its distance from now, taken off the wall clock.
        let wall_now = unix_millis();
        let wall_a = clock.wall(a);
        assert!(
            wall_a <= wall_now.saturating_sub(20) + 5,
            "{wall_a} vs {wall_now}"
        );
        assert!(wall_a + 1_000 >= wall_now, "{wall_a} vs {wall_now}");
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
    }
}
