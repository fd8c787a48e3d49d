//! Token serial numbers: positive, unique over the authority's whole life.
//!
//! The archive is the source of truth. The allocator keeps no state of its own that outlives
//! the process: it reserves blocks of serials from [`Archive::reserve_serials`], which moves a
//! counter in the database forward atomically, and hands them out one by one. A block is gone
//! from the counter the moment it is reserved, so after a restart the unused rest of the old
//! block is skipped: serials may have gaps, never repeats. Several nodes sharing one
//! PostgreSQL archive each reserve their own blocks, so they never hand out the same serial
//! either (their serials interleave by block, not in issue order).

use std::num::NonZeroU64;
use std::ops::Range;

use tokio::sync::Mutex;

use crate::archive::{Archive, ArchiveError};

/// Hands out serials from blocks reserved in the archive.
#[derive(Debug)]
pub struct SerialAllocator {
    archive: Archive,
    block_size: NonZeroU64,
    /// The serials of the current block not handed out yet, and the end of the highest block
    /// reserved so far (a new block must start at or after it).
    current: Mutex<Blocks>,
}

#[derive(Debug, Default)]
struct Blocks {
    /// Not handed out yet; empty until the first `next`.
    rest: Range<u64>,
    /// End of the highest block this process reserved.
    high_water: u64,
}

impl SerialAllocator {
    /// Serials reserved per trip to the database unless told otherwise. A reservation is a
    /// transaction of its own on a fresh connection, waiting for the writer's commit to finish,
    /// and every request needing a serial meanwhile waits for it (1-2 ms): with blocks of 1,000
    /// that happened 14 times a second at 14,000 tokens/s and set the p99 at 16 connections
    /// (3.1-3.4 ms against 2.5-2.6 with 10,000; BENCHMARKS.md, sixth slice). A restart skips
    /// at most one block.
    pub const DEFAULT_BLOCK_SIZE: NonZeroU64 = NonZeroU64::new(10_000).expect("10,000 is not zero");

    /// An allocator reserving [`Self::DEFAULT_BLOCK_SIZE`] serials at a time.
    pub fn new(archive: Archive) -> Self {
        Self::with_block_size(archive, Self::DEFAULT_BLOCK_SIZE)
    }

    /// An allocator reserving `block_size` serials at a time: larger blocks mean fewer
    /// database round trips and larger gaps after a restart.
    pub fn with_block_size(archive: Archive, block_size: NonZeroU64) -> Self {
        Self {
            archive,
            block_size,
            current: Mutex::new(Blocks::default()),
        }
    }

    /// The block size this allocator reserves.
    pub fn block_size(&self) -> NonZeroU64 {
        self.block_size
    }

    /// The next serial: from the current block, or from a new block reserved in the archive
    /// when the current one is used up. Never 0, never one handed out before.
    ///
    /// A block that starts below one this process already reserved means the counter went
    /// back (the database was replaced by an older copy, or its file removed and re-created):
    /// refused, since serials from it could repeat.
    ///
    /// Bounded by the archive's commit timeout from the call, queueing behind another caller's
    /// reservation included: a caller never waits out one timeout per caller ahead of it.
    pub async fn next(&self) -> Result<u64, ArchiveError> {
        let after = self.archive.commit_timeout();
        match tokio::time::timeout(after, self.next_unbounded()).await {
            Ok(result) => result,
            Err(elapsed) => Err(ArchiveError::TimedOut {
                after,
                source: Some(elapsed),
            }),
        }
    }

    async fn next_unbounded(&self) -> Result<u64, ArchiveError> {
        let mut current = self.current.lock().await;
        if current.rest.is_empty() {
            // Holding the lock across the reservation is deliberate: the callers waiting
            // behind it need the new block too, and one reservation serves them all.
            // Boxed: the reservation's database future is about 9 KB in a release build, and
            // held inline it made every request's future (which holds this one) that large,
            // copied whole each time it moved; a reservation comes once per block.
            let block = Box::pin(self.archive.reserve_serials(self.block_size.get())).await?;
            if block.start < current.high_water {
                return Err(ArchiveError::SerialCounterWentBack {
                    start: block.start,
                    high_water: current.high_water,
                });
            }
            current.high_water = block.end;
            current.rest = block;
        }
        let serial = current.rest.start;
        current.rest.start += 1;
        Ok(serial)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;
    use crate::archive::test_support::{on_both_backends, open, sqlite_url};

    fn block(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).expect("test block sizes are not zero")
    }

    /// Takes `per_task` serials in each of `tasks` concurrent tasks.
    async fn take_concurrently(
        alloc: Arc<SerialAllocator>,
        tasks: usize,
        per_task: usize,
    ) -> Vec<u64> {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let alloc = Arc::clone(&alloc);
                tokio::spawn(async move {
                    let mut got = Vec::with_capacity(per_task);
                    for _ in 0..per_task {
                        got.push(alloc.next().await.expect("serial"));
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.expect("task"));
        }
        all
    }

    on_both_backends!(two_nodes_never_overlap, restart_skips_the_rest_of_the_block);

    /// Two nodes sharing one database (PostgreSQL, or two processes on one SQLite file) must
    /// never hand out the same serial, even when they race for blocks.
    async fn two_nodes_never_overlap(url: &str) {
        let (node_a, node_b) = tokio::join!(open(url), open(url));
        let alloc_a = Arc::new(SerialAllocator::with_block_size(node_a.clone(), block(5)));
        let alloc_b = Arc::new(SerialAllocator::with_block_size(node_b.clone(), block(3)));
        let (a, b) = tokio::join!(
            take_concurrently(alloc_a, 10, 40),
            take_concurrently(alloc_b, 10, 40)
        );
        let all: HashSet<u64> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 800, "a serial was handed out twice");
        assert!(!all.contains(&0), "serial 0 was handed out");
        node_a.close().await;
        node_b.close().await;
    }

    /// Guards against reusing the unused rest of a block after a restart.
    async fn restart_skips_the_rest_of_the_block(url: &str) {
        let first = open(url).await;
        let alloc = SerialAllocator::with_block_size(first.clone(), block(100));
        let mut before = Vec::new();
        for _ in 0..5 {
            before.push(alloc.next().await.expect("serial"));
        }
        assert_eq!(before, vec![1, 2, 3, 4, 5], "serials start at 1");
        first.close().await;

        let second = open(url).await;
        let alloc = SerialAllocator::new(second.clone());
        assert_eq!(alloc.next().await.expect("serial"), 101);
        let after_block = 101 + SerialAllocator::DEFAULT_BLOCK_SIZE.get();
        assert_eq!(
            second.reserve_serials(2).await.expect("reserve"),
            after_block..after_block + 2
        );
        second.close().await;
    }

    /// Every request's future holds a `next` future: it must stay small (the reservation's
    /// database future, about 9 KB, is boxed), or each request copies kilobytes as it moves.
    #[tokio::test]
    async fn a_next_future_is_small() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = open(&sqlite_url(&dir)).await;
        let alloc = SerialAllocator::new(archive.clone());
        let next = alloc.next();
        let size = std::mem::size_of_val(&next);
        assert!(size <= 1024, "a next() future takes {size} bytes");
        assert_eq!(next.await.expect("serial"), 1);
        archive.close().await;
    }

    #[tokio::test]
    async fn serials_cross_blocks_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = open(&sqlite_url(&dir)).await;
        let alloc = SerialAllocator::with_block_size(archive.clone(), block(3));
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(alloc.next().await.expect("serial"));
        }
        assert_eq!(got, (1..=10).collect::<Vec<_>>());
        let concurrent = take_concurrently(Arc::new(alloc), 20, 50).await;
        let distinct: HashSet<u64> = concurrent.iter().copied().collect();
        assert_eq!(distinct.len(), 1000);
        assert!(distinct.iter().all(|serial| *serial > 10));
        archive.close().await;
    }

    #[tokio::test]
    async fn reserve_refuses_bad_counts_and_exhaustion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = open(&sqlite_url(&dir)).await;
        for count in [0, i64::MAX.unsigned_abs() + 1] {
            let refused = archive.reserve_serials(count).await;
            let invalid = matches!(refused, Err(ArchiveError::InvalidSerialCount { .. }));
            assert!(invalid, "{refused:?}");
        }
        // The counter holds the next serial, so it stops one short of i64::MAX.
        let rest = archive.reserve_serials(i64::MAX.unsigned_abs() - 1).await;
        assert_eq!(rest.expect("reserve"), 1..i64::MAX.unsigned_abs());
        let refused = archive.reserve_serials(1).await;
        let exhausted = matches!(refused, Err(ArchiveError::SerialsExhausted { count: 1 }));
        assert!(exhausted, "{refused:?}");
        archive.close().await;
    }

    /// Guards against repeating serials when the database is swapped for an older copy under
    /// a running node: the allocator refuses a block below what it already had.
    #[tokio::test]
    async fn a_counter_that_went_back_is_refused() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = sqlite_url(&dir);
        let archive = open(&url).await;
        let alloc = SerialAllocator::with_block_size(archive.clone(), block(2));
        assert_eq!(alloc.next().await.expect("serial"), 1);
        assert_eq!(alloc.next().await.expect("serial"), 2);
        // What restoring yesterday's copy of the file does to the counter.
        let mut other = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query("UPDATE serial_counter SET next_serial = 1 WHERE id = 1")
            .execute(&mut other)
            .await
            .expect("rewind");
        other.close().await.expect("close");
        let refused = alloc.next().await;
        let went_back = matches!(
            refused,
            Err(ArchiveError::SerialCounterWentBack {
                start: 1,
                high_water: 3
            })
        );
        assert!(went_back, "{refused:?}");
        archive.close().await;
    }

    /// Guards against waits that grow with the queue: with the database locked, twenty callers
    /// queued for one reservation are each refused within about one commit timeout (not one
    /// timeout per caller ahead), and the archive says it cannot write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_database_refuses_queued_callers_in_bounded_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = crate::archive::ArchiveOptions {
            commit_timeout: std::time::Duration::from_millis(600),
            ..Default::default()
        };
        let archive = Archive::connect(&sqlite_url(&dir), opts)
            .await
            .expect("open");
        let mut blocker = sqlx::SqliteConnection::connect(&sqlite_url(&dir))
            .await
            .expect("blocker");
        use sqlx::Connection;
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut blocker)
            .await
            .expect("lock");
        let alloc = Arc::new(SerialAllocator::with_block_size(archive.clone(), block(1)));
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let alloc = Arc::clone(&alloc);
                tokio::spawn(async move {
                    let t = std::time::Instant::now();
                    (alloc.next().await, t.elapsed())
                })
            })
            .collect();
        for task in tasks {
            let (outcome, waited) = task.await.expect("task");
            assert!(
                outcome.is_err(),
                "a serial from a locked database: {outcome:?}"
            );
            // A hang guard well above one timeout, far below the 20 timeouts of a queue.
            assert!(
                waited < std::time::Duration::from_secs(5),
                "waited {waited:?}: {outcome:?}"
            );
        }
        eprintln!("20 callers refused within {:?}", started.elapsed());
        assert!(!archive.health().writable, "{:?}", archive.health());
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut blocker)
            .await
            .expect("unlock");
        archive.close().await;
    }
}
