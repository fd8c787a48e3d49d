//! The clock guard: the only source of genTime.
//!
//! It refuses to issue (timeNotAvailable) when the kernel says the clock is unsynchronised or
//! its maximum error exceeds the declared accuracy (ETSI EN 319 421), unless configured off;
//! and it never hands out a genTime earlier than one already issued, across threads and, seeded
//! from the archive, across restarts. Synchronisation and its loss are logged when they change.

use pki::gentime::GenTime;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why no time can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The kernel reports the clock unsynchronised (or outside the declared accuracy).
    #[error("the system clock is not synchronised")]
    Unsynchronised,
    /// The clock reads earlier than a genTime already issued.
    #[error("the clock went backwards: {now_ms} ms is before the last genTime {last_ms} ms")]
    WentBackwards {
        /// Now.
        now_ms: i64,
        /// The last genTime issued.
        last_ms: i64,
    },
}

/// A source of kernel clock status (real: `sysclock::status`; tests inject their own).
pub type StatusSource = Box<dyn Fn() -> std::io::Result<sysclock::ClockStatus> + Send + Sync>;

/// The clock guard.
pub struct ClockGuard {
    last_ms: AtomicI64,
    synced: AtomicBool,
    allow_unsynced: bool,
    max_error_us: Option<i64>,
    source: StatusSource,
}

impl std::fmt::Debug for ClockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockGuard")
            .field("last_ms", &self.last_ms)
            .field("synced", &self.synced)
            .field("allow_unsynced", &self.allow_unsynced)
            .finish_non_exhaustive()
    }
}

impl ClockGuard {
    /// A guard seeded with the last genTime in the archive, reading the kernel via `source`.
    /// `max_error_us` is the declared accuracy; a larger kernel error counts as unsynchronised.
    pub fn new(
        last_ms: Option<i64>,
        allow_unsynced: bool,
        max_error_us: Option<i64>,
        source: StatusSource,
    ) -> ClockGuard {
        let guard = ClockGuard {
            last_ms: AtomicI64::new(last_ms.unwrap_or(i64::MIN)),
            synced: AtomicBool::new(false),
            allow_unsynced,
            max_error_us,
            source,
        };
        guard.refresh();
        guard
    }

    /// The real kernel source.
    pub fn kernel() -> StatusSource {
        Box::new(sysclock::status)
    }

    /// Re-reads the kernel status; logs a change. Called every second by a background task.
    pub fn refresh(&self) {
        let now_synced = match (self.source)() {
            Ok(s) => s.synchronized && self.max_error_us.is_none_or(|max| s.max_error_us <= max),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the kernel clock status");
                false
            }
        };
        let was = self.synced.swap(now_synced, Ordering::Relaxed);
        if was != now_synced {
            if now_synced {
                tracing::info!("system clock synchronised within the declared accuracy");
            } else if self.allow_unsynced {
                tracing::warn!(
                    "system clock NOT synchronised; issuing anyway because allow_unsynced_clock = true"
                );
            } else {
                tracing::error!(
                    "system clock NOT synchronised: refusing to issue (timeNotAvailable)"
                );
            }
        }
    }

    /// Whether tokens can be issued now.
    pub fn available(&self) -> bool {
        self.allow_unsynced || self.synced.load(Ordering::Relaxed)
    }

    /// Whether a token could be issued right now: usable, and not behind the last genTime
    /// issued (after a restart with the clock set back, every request would be refused).
    pub fn can_issue_now(&self) -> bool {
        self.available() && now_ms() >= self.last_ms.load(Ordering::Acquire)
    }

    /// Whether the kernel last said the clock is synchronised.
    pub fn synchronised(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// The genTime for a token being issued now, at millisecond precision.
    pub fn now(&self) -> Result<GenTime, ClockError> {
        if !self.available() {
            return Err(ClockError::Unsynchronised);
        }
        let mut last = self.last_ms.load(Ordering::Acquire);
        loop {
            // Read the clock after `last`: a concurrent issuer that stored a later value made us
            // retry, so a monotonic clock always passes and only a real step back fails.
            let now = now_ms();
            if now < last {
                return Err(ClockError::WentBackwards {
                    now_ms: now,
                    last_ms: last,
                });
            }
            match self
                .last_ms
                .compare_exchange_weak(last, now, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return GenTime::from_unix_millis(now).map_err(|_| ClockError::Unsynchronised);
                }
                Err(actual) => last = actual,
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(synced: bool, max_error_us: i64) -> StatusSource {
        Box::new(move || {
            Ok(sysclock::ClockStatus {
                synchronized: synced,
                max_error_us,
                est_error_us: 0,
            })
        })
    }

    #[test]
    fn unsynchronised_clock_is_refused_unless_allowed() {
        let g = ClockGuard::new(None, false, None, source(false, 0));
        assert_eq!(g.now(), Err(ClockError::Unsynchronised));
        let g = ClockGuard::new(None, true, None, source(false, 0));
        assert!(g.now().is_ok());
    }

    #[test]
    fn kernel_error_beyond_the_declared_accuracy_counts_as_unsynchronised() {
        let g = ClockGuard::new(None, false, Some(1_000_000), source(true, 2_000_000));
        assert_eq!(g.now(), Err(ClockError::Unsynchronised));
        let g = ClockGuard::new(None, false, Some(1_000_000), source(true, 500_000));
        assert!(g.now().is_ok());
    }

    #[test]
    fn never_earlier_than_the_last_issued_time() {
        let future = now_ms() + 60_000;
        let g = ClockGuard::new(Some(future), true, None, source(true, 0));
        assert!(matches!(g.now(), Err(ClockError::WentBackwards { .. })));
        assert!(
            g.available() && !g.can_issue_now(),
            "health must report the clock behind"
        );
        let g = ClockGuard::new(Some(now_ms() - 1), true, None, source(true, 0));
        assert!(g.can_issue_now());
    }

    #[test]
    fn times_from_many_threads_never_decrease_in_issue_order() {
        let g = std::sync::Arc::new(ClockGuard::new(None, true, None, source(true, 0)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut prev = i64::MIN;
                    for _ in 0..10_000 {
                        let t = g.now().expect("time").to_unix_millis();
                        assert!(t >= prev);
                        prev = t;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    }
}
