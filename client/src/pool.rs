//! A bounded pool of worker threads for bulk work (signing many messages, verifying many
//! files): each worker takes the next index until none is left; results keep input order.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work` on `0..n` with at most `jobs` workers, in any order.
pub fn for_each(n: usize, jobs: usize, work: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, n.max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    work(i);
                }
            });
        }
    });
}

/// `work` applied to `0..n` with at most `jobs` workers; the results in index order.
pub fn map<R: Send>(n: usize, jobs: usize, work: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    for_each(n, jobs, |i| {
        let r = work(i);
        *slots[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
    });
    slots
        .into_iter()
        .filter_map(|s| {
            s.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect()
}

/// Most workers of a bulk run (`--jobs`), and so most connections one run keeps open.
pub const MAX_JOBS: usize = 1024;

/// Workers for work that mostly waits for a server (stamping, signing with a timestamp): `given`
/// (`--jobs`), else 4 per core; at least 1, at most [`MAX_JOBS`].
pub fn network_jobs(given: Option<usize>) -> usize {
    given.unwrap_or_else(|| cores() * 4).clamp(1, MAX_JOBS)
}

/// Workers for CPU-bound work: one per core.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_keeps_input_order_with_many_workers() {
        let out = super::map(1000, 7, |i| i * 2);
        assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(0, 4, |i| i).is_empty());
    }
}
