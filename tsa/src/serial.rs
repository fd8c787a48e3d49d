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
    /// The serials of the current block not handed out yet; empty until the first `next`.
    current: Mutex<Range<u64>>,
}

impl SerialAllocator {
    /// Serials reserved per trip to the database unless told otherwise.
    pub const DEFAULT_BLOCK_SIZE: NonZeroU64 = NonZeroU64::new(1000).expect("1000 is not zero");

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
            current: Mutex::new(0..0),
        }
    }

    /// The block size this allocator reserves.
    pub fn block_size(&self) -> NonZeroU64 {
        self.block_size
    }

    /// The next serial: from the current block, or from a new block reserved in the archive
    /// when the current one is used up. Never 0, never one handed out before.
    pub async fn next(&self) -> Result<u64, ArchiveError> {
        let mut current = self.current.lock().await;
        if current.is_empty() {
            // Holding the lock across the reservation is deliberate: the callers waiting
            // behind it need the new block too, and one reservation serves them all.
            *current = self.archive.reserve_serials(self.block_size.get()).await?;
        }
        let serial = current.start;
        current.start += 1;
        Ok(serial)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::archive::ArchiveOptions;
    use crate::archive::test_support::{PgTestDb, sqlite_url};

    fn block(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).expect("test block sizes are not zero")
    }

    /// Takes `per_task` serials in each of `tasks` concurrent tasks.
    async fn take_concurrently(
        alloc: std::sync::Arc<SerialAllocator>,
        tasks: usize,
        per_task: usize,
    ) -> Vec<u64> {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let alloc = std::sync::Arc::clone(&alloc);
            handles.push(tokio::spawn(async move {
                let mut got = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    got.push(alloc.next().await.expect("serial"));
                }
                got
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.expect("task"));
        }
        all
    }

    fn assert_unique_positive(serials: &[u64]) {
        let set: HashSet<u64> = serials.iter().copied().collect();
        assert_eq!(set.len(), serials.len(), "a serial was handed out twice");
        assert!(!set.contains(&0), "serial 0 was handed out");
    }

    #[tokio::test]
    async fn serials_start_at_one_and_cross_blocks_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = Archive::connect(&sqlite_url(&dir), ArchiveOptions::default())
            .await
            .expect("connect");
        let alloc = SerialAllocator::with_block_size(archive.clone(), block(3));
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(alloc.next().await.expect("serial"));
        }
        assert_eq!(got, (1..=10).collect::<Vec<_>>());
        archive.close().await;
    }

    /// Guards against reusing the unused rest of a block after a restart.
    #[tokio::test]
    async fn restart_skips_the_rest_of_the_block_and_never_repeats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = sqlite_url(&dir);
        let first = Archive::connect(&url, ArchiveOptions::default())
            .await
            .expect("connect");
        let alloc = SerialAllocator::with_block_size(first.clone(), block(100));
        let mut before = Vec::new();
        for _ in 0..5 {
            before.push(alloc.next().await.expect("serial"));
        }
        drop(alloc);
        first.close().await;

        let second = Archive::connect(&url, ArchiveOptions::default())
            .await
            .expect("reconnect");
        let alloc = SerialAllocator::new(second.clone());
        let after = alloc.next().await.expect("serial");
        assert_eq!(before, vec![1, 2, 3, 4, 5]);
        assert_eq!(after, 101, "the rest of the first block must be skipped");
        second.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_get_distinct_serials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = Archive::connect(&sqlite_url(&dir), ArchiveOptions::default())
            .await
            .expect("connect");
        let alloc = std::sync::Arc::new(SerialAllocator::with_block_size(
            archive.clone(),
            block(7),
        ));
        let all = take_concurrently(alloc, 20, 50).await;
        assert_eq!(all.len(), 1000);
        assert_unique_positive(&all);
        archive.close().await;
    }

    /// Two nodes sharing one PostgreSQL must never hand out the same serial.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_two_allocators_never_overlap() {
        let db = PgTestDb::create().await;
        let node_a = Archive::connect(&db.url, ArchiveOptions::default())
            .await
            .expect("connect node a");
        let node_b = Archive::connect(&db.url, ArchiveOptions::default())
            .await
            .expect("connect node b");
        let alloc_a = std::sync::Arc::new(SerialAllocator::with_block_size(
            node_a.clone(),
            block(5),
        ));
        let alloc_b = std::sync::Arc::new(SerialAllocator::with_block_size(
            node_b.clone(),
            block(5),
        ));
        let (a, b) = tokio::join!(
            take_concurrently(alloc_a, 10, 40),
            take_concurrently(alloc_b, 10, 40)
        );
        let mut all = a;
        all.extend(b);
        assert_eq!(all.len(), 800);
        assert_unique_positive(&all);
        node_a.close().await;
        node_b.close().await;
        db.drop_db().await;
    }
}
