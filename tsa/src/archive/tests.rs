//! Archive tests, on SQLite and PostgreSQL alike.
use super::test_support::{on_both_backends, open, sqlite_url};
use super::writer::{Health, SIGNING_WAIT, Writer, wait_for_running};
use super::*;
use crate::signing::Running;
use sqlx::Arguments;
use sqlx::sqlite::SqliteArguments;

/// The SQLite pool of an archive opened on a SQLite URL.
fn sqlite_pool(archive: &Archive) -> &SqlitePool {
    match &archive.inner.backend {
        Backend::Sqlite(pool) => pool,
        Backend::Postgres(_) => panic!("expected sqlite, got {archive:?}"),
    }
}

fn record(serial: u64, gen_time_ms: i64) -> TokenRecord {
    TokenRecord {
        serial,
        gen_time_ms,
        policy: "1.3.6.1.4.1.99999.1".to_owned(),
        hash_alg: "2.16.840.1.101.3.4.2.1".to_owned(),
        imprint: serial.to_be_bytes().repeat(4),
        token: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        signer_cert_sha256: Some(vec![0xab; 32]),
    }
}

on_both_backends!(
    round_trip,
    concurrent_appends_are_grouped,
    duplicate_fails_alone,
    a_batch_is_one_commit_and_keeps_every_column,
    matching_tokens_come_in_pages_in_serial_order
);

async fn round_trip(url: &str) {
    let archive = open(url).await;
    assert!(
        url.starts_with(archive.backend()),
        "{url} opened as {archive:?}"
    );
    assert_eq!(archive.count().await.expect("count"), 0);
    assert_eq!(archive.last_gen_time_ms().await.expect("last"), None);
    for (serial, gen_time_ms) in [(7, 1_700_000_000_123), (3, 1_700_000_000_999), (9, 5)] {
        let appended = archive.append(record(serial, gen_time_ms)).await;
        appended.expect("append");
    }
    let got = archive.get(7).await.expect("get 7");
    assert_eq!(got, Some(record(7, 1_700_000_000_123)));
    assert_eq!(archive.get(8).await.expect("get 8"), None);
    assert_eq!(archive.count().await.expect("count"), 3);
    let last = archive.last_gen_time_ms().await.expect("last");
    assert_eq!(
        last,
        Some(1_700_000_000_999),
        "the latest genTime, not the last appended"
    );
    archive.close().await;
    let reopened = open(url).await;
    let got = reopened.get(3).await.expect("get 3");
    assert_eq!(
        got,
        Some(record(3, 1_700_000_000_999)),
        "survives a restart"
    );
    reopened.close().await;
}

/// Pages continue after the last serial of the one before, whatever the filter leaves out
/// between them; `for_each_matching` walks them all (more than one page of `PAGE_ROWS`).
async fn matching_tokens_come_in_pages_in_serial_order(url: &str) {
    let archive = open(url).await;
    let total = PAGE_ROWS as u64 * 2 + 5;
    // Appended out of order, every third by another certificate, genTime = serial.
    let tasks: Vec<_> = (0..4u64)
        .map(|task| {
            let archive = archive.clone();
            tokio::spawn(async move {
                for serial in (1..=total).rev().filter(|s| s % 4 == task) {
                    let mut r = record(serial, serial as i64);
                    if serial % 3 == 0 {
                        r.signer_cert_sha256 = Some(vec![0xcd; 32]);
                    }
                    archive.append(r).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let other = TokenFilter {
        signer_cert_sha256: Some(vec![0xcd; 32]),
        ..Default::default()
    };
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = archive.matching_page(&other, after, 7).await.expect("page");
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.serial);
        walked.extend(page.iter().map(|r| r.serial));
    }
    let expected: Vec<u64> = (1..=total).filter(|s| s % 3 == 0).collect();
    assert_eq!(walked, expected);
    let counted = archive.count_matching(&other).await.expect("count");
    assert_eq!(counted, expected.len() as u64, "a certificate's count");
    let counted = archive.count_matching(&TokenFilter::default()).await;
    assert_eq!(counted.expect("count"), total, "the count of all");
    let mut all = Vec::new();
    archive
        .for_each_matching(&TokenFilter::default(), |r| {
            all.push(r.serial);
            Ok::<(), ArchiveError>(())
        })
        .await
        .expect("walk");
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    let window = TokenFilter {
        from_ms: Some(1000),
        to_ms: Some(2000),
        ..Default::default()
    };
    let mut inside = Vec::new();
    archive
        .for_each_matching(&window, |r| {
            inside.push(r.serial);
            Ok::<(), ArchiveError>(())
        })
        .await
        .expect("walk");
    assert_eq!(inside, (1000..2000).collect::<Vec<_>>());
    assert_eq!(archive.count_matching(&window).await.expect("count"), 1000);
    // Open-ended windows, a window with the other certificate, and an empty window.
    let walk = |f: TokenFilter| {
        let archive = archive.clone();
        async move {
            let mut got = Vec::new();
            archive
                .for_each_matching(&f, |r| {
                    got.push(r.serial);
                    Ok::<(), ArchiveError>(())
                })
                .await
                .expect("walk");
            let count = archive.count_matching(&f).await.expect("count");
            assert_eq!(
                count,
                got.len() as u64,
                "count_matching agrees with the walk"
            );
            got
        }
    };
    let since = TokenFilter {
        from_ms: Some(2000),
        ..Default::default()
    };
    assert_eq!(walk(since).await, (2000..=total).collect::<Vec<_>>());
    let until = TokenFilter {
        to_ms: Some(1025),
        ..Default::default()
    };
    assert_eq!(walk(until).await, (1..1025).collect::<Vec<_>>());
    let other_in_window = TokenFilter {
        from_ms: Some(10),
        to_ms: Some(40),
        signer_cert_sha256: Some(vec![0xcd; 32]),
    };
    assert_eq!(
        walk(other_in_window).await,
        (10..40).filter(|s| s % 3 == 0).collect::<Vec<_>>()
    );
    let later = TokenFilter {
        from_ms: Some(total as i64 + 1),
        ..Default::default()
    };
    assert!(walk(later).await.is_empty());
    archive.close().await;
}

/// Integer arguments, bound in order.
fn int_args(values: &[i64]) -> SqliteArguments {
    let mut args = SqliteArguments::default();
    for v in values {
        args.add(*v).expect("bind");
    }
    args
}

/// The steps SQLite plans for `sql` with `args` (the detail column of `EXPLAIN QUERY PLAN`).
async fn plan_steps(pool: &SqlitePool, sql: String, args: SqliteArguments) -> Vec<String> {
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as_with(
        sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")),
        args,
    )
    .fetch_all(pool)
    .await
    .expect("plan");
    plan.into_iter().map(|row| row.3).collect()
}

/// A page starts by seeking its first serial in the primary key, not by scanning from the
/// first token (which would make a walk of the archive quadratic).
#[tokio::test]
async fn a_page_seeks_its_first_serial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = open(&sqlite_url(&dir)).await;
    let pool = sqlite_pool(&archive);
    let page = |f: TokenFilter| {
        let sql = matching_page_sql(&f);
        let mut args = SqliteArguments::default();
        args.add(f.from_ms).expect("bind");
        args.add(f.to_ms).expect("bind");
        args.add(f.signer_cert_sha256).expect("bind");
        args.add(5_i64).expect("bind");
        args.add(10_i64).expect("bind");
        args.add(900_i64).expect("bind");
        plan_steps(pool, sql, args)
    };
    assert_eq!(
        page(TokenFilter::default()).await,
        ["SEARCH tokens USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"]
    );
    // A key-compromise listing reads the signer's tokens through its index, in serial order
    // (no sort), from the page's first serial on.
    let signer = TokenFilter {
        signer_cert_sha256: Some(vec![7; 32]),
        ..TokenFilter::default()
    };
    assert_eq!(
        page(signer).await,
        [
            "SEARCH tokens USING INDEX tokens_signer_cert (signer_cert_sha256=? AND rowid>? AND rowid<?)"
        ]
    );
    // A genTime window's serials come from the genTime index alone.
    let window = TokenFilter {
        from_ms: Some(1),
        to_ms: Some(2),
        ..TokenFilter::default()
    };
    let span = window_span_sql(&window).expect("a window");
    assert_eq!(
        plan_steps(pool, span, int_args(&[1, 2])).await,
        ["SEARCH tokens USING COVERING INDEX tokens_gen_time_ms (gen_time_ms>? AND gen_time_ms<?)"]
    );
    archive.close().await;
}

/// An export's count reads an index, never the tokens themselves: the genTime index for a
/// window, the signer's index for a certificate, an index for all.
#[tokio::test]
async fn counts_read_an_index_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = open(&sqlite_url(&dir)).await;
    let pool = sqlite_pool(&archive);
    let window = TokenFilter {
        from_ms: Some(1),
        to_ms: Some(2),
        ..TokenFilter::default()
    };
    assert_eq!(
        plan_steps(pool, window_count_sql(&window), int_args(&[1, 2])).await,
        ["SEARCH tokens USING COVERING INDEX tokens_gen_time_ms (gen_time_ms>? AND gen_time_ms<?)"]
    );
    let since = TokenFilter {
        from_ms: Some(1),
        ..TokenFilter::default()
    };
    assert_eq!(
        plan_steps(pool, window_count_sql(&since), int_args(&[1])).await,
        ["SEARCH tokens USING COVERING INDEX tokens_gen_time_ms (gen_time_ms>?)"]
    );
    let all = plan_steps(
        pool,
        window_count_sql(&TokenFilter::default()),
        int_args(&[]),
    )
    .await;
    assert!(
        all.len() == 1 && all[0].starts_with("SCAN tokens USING COVERING INDEX"),
        "{all:?}"
    );
    let mut args = SqliteArguments::default();
    args.add(vec![7_u8; 32]).expect("bind");
    assert_eq!(
        plan_steps(pool, SIGNER_COUNT.to_owned(), args).await,
        ["SEARCH tokens USING COVERING INDEX tokens_signer_cert (signer_cert_sha256=?)"]
    );
    archive.close().await;
}

async fn concurrent_appends_are_grouped(url: &str) {
    let archive = open(url).await;
    let tasks: Vec<_> = (0..50u64)
        .map(|task| {
            let archive = archive.clone();
            tokio::spawn(async move {
                for serial in task * 40 + 1..=task * 40 + 40 {
                    archive.append(record(serial, 1000)).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("append task");
    }
    assert_eq!(archive.count().await.expect("count"), 2000);
    let stats = archive.stats();
    assert_eq!(stats.tokens, 2000);
    assert!(stats.commits < 2000, "no group commit: {stats:?}");
    for serial in [1, 777, 2000] {
        let got = archive.get(serial).await.expect("get");
        assert_eq!(got, Some(record(serial, 1000)));
    }
    archive.close().await;
}

/// Hands `records` to a writer of `archive`'s backend as one batch; returns its commits and
/// each record's outcome, in order.
async fn commit_one_batch(
    archive: &Archive,
    records: Vec<TokenRecord>,
) -> (u64, Vec<Result<(), ArchiveError>>) {
    let (mut batch, mut answers) = (Vec::new(), Vec::new());
    for rec in records {
        let (reply, answer) = oneshot::channel();
        let serial = i64::try_from(rec.serial).expect("small serial");
        batch.push(Job { serial, rec, reply });
        answers.push(answer);
    }
    let stats = Arc::new(Stats::default());
    let mut writer = Writer::new(
        archive.inner.backend.clone(),
        None,
        Arc::new(Health::default()),
        Arc::clone(&stats),
        ArchiveOptions::DEFAULT_COMMIT_TIMEOUT,
    );
    writer.commit_batch(&mut batch).await;
    let mut outcomes = Vec::new();
    for answer in answers {
        outcomes.push(answer.await.expect("answered"));
    }
    (stats.commits.load(Ordering::Relaxed), outcomes)
}

/// A batch larger than any former INSERT chunk commits at once, every column of every row as
/// given: imprints and tokens of different lengths, empty ones, and rows without a signer
/// certificate (NULL elements in PostgreSQL's arrays).
async fn a_batch_is_one_commit_and_keeps_every_column(url: &str) {
    let archive = open(url).await;
    let records: Vec<TokenRecord> = (1..=300u64)
        .map(|serial| {
            let mut rec = record(
                serial,
                1_700_000_000_000 + i64::try_from(serial).expect("small"),
            );
            let len = usize::try_from(serial % 7).expect("small");
            rec.imprint = vec![u8::try_from(serial % 251).expect("small"); len * 8];
            rec.token = serial.to_le_bytes().repeat(len);
            if serial % 3 == 0 {
                rec.signer_cert_sha256 = None;
            }
            if serial % 5 == 0 {
                rec.policy = format!("1.2.3.{serial}");
            }
            rec
        })
        .collect();
    let (commits, outcomes) = commit_one_batch(&archive, records.clone()).await;
    for outcome in outcomes {
        outcome.expect("committed");
    }
    assert_eq!(commits, 1, "one commit");
    assert_eq!(archive.count().await.expect("count"), 300);
    for rec in &records {
        let got = archive.get(rec.serial).await.expect("get");
        assert_eq!(got.as_ref(), Some(rec), "serial {}", rec.serial);
    }
    archive.close().await;
}

/// One duplicate in a batch must fail alone, not take its batch neighbours down with it.
async fn duplicate_fails_alone(url: &str) {
    let archive = open(url).await;
    archive.append(record(1, 1)).await.expect("first append");
    let records = [2, 1, 3, 3, 4].map(|serial| record(serial, 2));
    let (commits, outcomes) = commit_one_batch(&archive, records.to_vec()).await;
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[4].is_ok());
    for failed in [&outcomes[1], &outcomes[3]] {
        let duplicate = matches!(failed, Err(ArchiveError::DuplicateSerial { .. }));
        assert!(duplicate, "{failed:?}");
    }
    assert_eq!(archive.count().await.expect("count"), 4);
    assert_eq!(commits, 3, "each retried alone");
    let again = archive.append(record(4, 3)).await;
    let duplicate = matches!(again, Err(ArchiveError::DuplicateSerial { serial: 4, .. }));
    assert!(duplicate, "{again:?}");
    assert_eq!(
        archive.get(4).await.expect("get"),
        Some(record(4, 2)),
        "original kept"
    );
    archive.close().await;
}

#[tokio::test]
async fn sqlite_is_wal_with_full_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = open(&sqlite_url(&dir)).await;
    let pool = sqlite_pool(&archive);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .expect("pragma");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await
        .expect("pragma");
    assert_eq!((mode.as_str(), sync), ("wal", 2), "2 is FULL");
    archive.close().await;
}

#[tokio::test]
async fn bad_serials_and_urls_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = open(&sqlite_url(&dir)).await;
    let too_big = i64::MAX.unsigned_abs() + 1;
    for serial in [0, too_big, u64::MAX] {
        let refused = archive.append(record(serial, 1)).await;
        let out_of_range = matches!(refused, Err(ArchiveError::SerialOutOfRange { .. }));
        assert!(out_of_range, "{refused:?}");
    }
    let refused = archive.get(too_big).await;
    assert!(
        matches!(refused, Err(ArchiveError::SerialOutOfRange { .. })),
        "{refused:?}"
    );
    assert_eq!(archive.count().await.expect("count"), 0);
    archive.close().await;

    let mysql = Archive::connect("mysql://root:secret@db/x", ArchiveOptions::default()).await;
    let unsupported =
        matches!(&mysql, Err(ArchiveError::UnsupportedUrl { scheme }) if scheme == "mysql");
    assert!(unsupported, "{mysql:?}");
}

#[tokio::test]
async fn close_commits_queued_tokens_then_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(&dir);
    let archive = open(&url).await;
    let pending: Vec<_> = (1..=20)
        .map(|serial| {
            let archive = archive.clone();
            tokio::spawn(async move { archive.append(record(serial, 5)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    archive.close().await;
    let mut committed = 0;
    for task in pending {
        match task.await.expect("task") {
            Ok(()) => committed += 1,
            Err(ArchiveError::Closed) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    let refused = archive.append(record(99, 5)).await;
    assert!(matches!(refused, Err(ArchiveError::Closed)), "{refused:?}");
    let reopened = open(&url).await;
    assert_eq!(
        reopened.count().await.expect("count"),
        committed,
        "every Ok is durable"
    );
    reopened.close().await;
}

/// A unique violation is a row's fault, not the database's: the archive stays writable.
#[tokio::test]
async fn a_duplicate_serial_leaves_the_archive_writable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = open(&sqlite_url(&dir)).await;
    archive.append(record(1, 1)).await.expect("first append");
    let again = archive.append(record(1, 2)).await;
    assert!(
        matches!(again, Err(ArchiveError::DuplicateSerial { .. })),
        "{again:?}"
    );
    assert!(archive.health().writable, "{:?}", archive.health());
    archive.append(record(2, 2)).await.expect("the next append");
    archive.close().await;
}

/// Guards the lost-token defect's neighbourhood: a commit that fails for the database's sake
/// marks the archive unwritable, later tokens are refused at once (not queued behind a lock),
/// a probe brings it back by itself, and nothing refused is in the archive. (Disk full, a
/// read-only file system and a removed file are in tests/tests/archive_faults.rs, on tmpfs.)
#[tokio::test]
async fn a_failed_commit_marks_the_archive_unwritable_until_a_probe_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ArchiveOptions {
        commit_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let archive = Archive::connect(&sqlite_url(&dir), opts)
        .await
        .expect("open");
    archive.append(record(1, 1)).await.expect("append");
    let pool = sqlite_pool(&archive);
    // Another connection holds the write lock for longer than the busy timeout: the writer's
    // BEGIN IMMEDIATE fails with SQLITE_BUSY, a fault of the database, not of a row.
    let mut blocker = pool.acquire().await.expect("blocker");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let started = std::time::Instant::now();
    let refused = archive.append(record(2, 2)).await;
    assert!(
        refused.is_err(),
        "granted while another connection holds the lock"
    );
    assert!(
        refused.as_ref().is_err_and(ArchiveError::is_unavailable),
        "{refused:?}"
    );
    assert!(!archive.health().writable, "{:?}", archive.health());
    // Refused at once now, without waiting for the lock again.
    let at_once = archive.append(record(3, 3)).await;
    assert!(
        matches!(at_once, Err(ArchiveError::Unavailable { .. })),
        "{at_once:?}"
    );
    eprintln!("refused after {:?}", started.elapsed());
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *blocker)
        .await
        .expect("unlock");
    drop(blocker);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !archive.health().writable {
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery: {:?}",
            archive.health()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    archive
        .append(record(4, 4))
        .await
        .expect("append after recovery");
    assert_eq!(
        archive.get(2).await.expect("get"),
        None,
        "refused token not archived"
    );
    assert_eq!(archive.get(4).await.expect("get"), Some(record(4, 4)));
    archive.close().await;
}

fn queued(serial: u64) -> Job {
    let (reply, _) = oneshot::channel();
    Job {
        serial: i64::try_from(serial).expect("small serial"),
        rec: record(serial, 1),
        reply,
    }
}

fn serials(batch: &[Job]) -> Vec<i64> {
    batch.iter().map(|j| j.serial).collect()
}

/// With slow signers a commit waits for as many more tokens as signatures are in progress, or,
/// when more are queued, for all but two per signing thread: never when none is being signed,
/// never past the batch's limit, never beyond SIGNING_WAIT, and not on a closed queue. (Paused
/// time: the waits are the runtime's clock, not the machine's.)
#[tokio::test(start_paused = true)]
async fn a_commit_waits_for_the_signatures_in_progress_and_the_queue_but_the_threads_next() {
    let (tx, mut queue) = mpsc::channel(16);
    // Nothing being signed: the batch goes as it is; what is queued waits for the next one.
    let mut batch = vec![queued(1)];
    tx.send(queued(2)).await.expect("send");
    wait_for_running(&Running::fixed(0, 0, 2), &mut queue, &mut batch, 512).await;
    assert_eq!(serials(&batch), [1]);

    // Two in progress: the one already queued and one that arrives a millisecond later.
    let mut batch = vec![queued(3)];
    let late = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        late.send(queued(4)).await.expect("send");
    });
    let start = tokio::time::Instant::now();
    wait_for_running(&Running::fixed(2, 2, 2), &mut queue, &mut batch, 512).await;
    assert_eq!(serials(&batch), [3, 2, 4]);
    assert!(start.elapsed() < SIGNING_WAIT, "{:?}", start.elapsed());

    // One in progress that never arrives (a failed signature): at most SIGNING_WAIT.
    let mut batch = vec![queued(5)];
    let start = tokio::time::Instant::now();
    wait_for_running(&Running::fixed(1, 1, 2), &mut queue, &mut batch, 512).await;
    assert_eq!(serials(&batch), [5]);
    assert!(start.elapsed() >= SIGNING_WAIT, "{:?}", start.elapsed());

    // Three in progress, a batch of at most two: the limit wins, the rest stays queued.
    for serial in [6, 7, 8] {
        tx.send(queued(serial)).await.expect("send");
    }
    let mut batch = vec![queued(9)];
    wait_for_running(&Running::fixed(3, 3, 2), &mut queue, &mut batch, 2).await;
    assert_eq!(serials(&batch), [9, 6]);
    let mut rest = Vec::new();
    queue.recv_many(&mut rest, 16).await;
    assert_eq!(serials(&rest), [7, 8]);

    // Two threads signing, nine signatures asked for: the commit waits for all but the four
    // (two per thread) that the threads sign while it runs, i.e. five more tokens.
    for serial in 20..27 {
        tx.send(queued(serial)).await.expect("send");
    }
    let mut batch = vec![queued(19)];
    wait_for_running(&Running::fixed(2, 9, 2), &mut queue, &mut batch, 512).await;
    assert_eq!(serials(&batch), [19, 20, 21, 22, 23, 24]);
    let mut rest = Vec::new();
    queue.recv_many(&mut rest, 16).await;
    assert_eq!(serials(&rest), [25, 26]);
    // Five asked for on two threads: only the two in progress are waited for.
    for serial in 28..32 {
        tx.send(queued(serial)).await.expect("send");
    }
    let mut batch = vec![queued(27)];
    wait_for_running(&Running::fixed(2, 5, 2), &mut queue, &mut batch, 512).await;
    assert_eq!(serials(&batch), [27, 28, 29]);
    let mut rest = Vec::new();
    queue.recv_many(&mut rest, 16).await;
    assert_eq!(serials(&rest), [30, 31]);

    // A closed queue ends the wait at once (the writer drains and stops at its next turn).
    drop(tx);
    let mut batch = vec![queued(10)];
    let start = tokio::time::Instant::now();
    wait_for_running(&Running::fixed(2, 2, 2), &mut queue, &mut batch, 512).await;
    assert_eq!(serials(&batch), [10]);
    assert!(start.elapsed() < SIGNING_WAIT, "{:?}", start.elapsed());
}

/// The WAL header's checkpoint sequence number: SQLite adds one each time it starts the WAL
/// over from its beginning.
fn wal_restarts(dir: &tempfile::TempDir) -> u32 {
    let wal = std::fs::read(dir.path().join("archive.db-wal")).unwrap_or_default();
    wal.get(12..16)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Under a load that never pauses, a PASSIVE checkpoint always misses the frames committed
/// while it ran, and SQLite never started the WAL over: it grew without end, each commit
/// extending the file. The checkpointer and the writer's tail checkpoint (`checkpoint_sqlite`)
/// must let it start over again and again while tokens keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_a_load_that_never_pauses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = open(&sqlite_url(&dir)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(1));
    let appenders: Vec<_> = (0..32)
        .map(|_| {
            let (archive, stop, next) = (archive.clone(), Arc::clone(&stop), Arc::clone(&next));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let serial = next.fetch_add(1, Ordering::Relaxed);
                    archive.append(record(serial, 1)).await.expect("append");
                }
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let first = loop {
        let seen = wal_restarts(&dir);
        if seen > 0 || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let mut restarts = first;
    while restarts < first + 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        restarts = wal_restarts(&dir);
    }
    stop.store(true, Ordering::Relaxed);
    for task in appenders {
        task.await.expect("appender");
    }
    let committed = next.load(Ordering::Relaxed);
    archive.close().await;
    assert!(
        restarts >= first + 2,
        "the WAL started over {} times while {committed} tokens were appended",
        restarts.saturating_sub(first)
    );
}

/// Polls the checkpointer's count until it stays the same for `quiet`; the settled count, or
/// `None` if it never did before the deadline.
async fn checkpoints_settle(archive: &Archive, quiet: std::time::Duration) -> Option<u64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = archive.stats().checkpoints;
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(quiet).await;
        let now = archive.stats().checkpoints;
        if now == seen {
            return Some(now);
        }
        seen = now;
    }
    None
}

/// Once it has copied everything, the checkpointer sleeps until the writer's next commit: an
/// idle authority runs no checkpoints (it ran ten a second, every second), and the first
/// commit after a pause wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_sleeps_while_nothing_is_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = open(&sqlite_url(&dir)).await;
    for serial in 1..=20 {
        archive.append(record(serial, 1)).await.expect("append");
    }
    // A second is fifty ticks of the checkpointer, and long enough that a busy machine does not
    // pass a late round for an idle one.
    let quiet = std::time::Duration::from_secs(1);
    let idle = checkpoints_settle(&archive, quiet).await;
    assert!(
        idle.is_some_and(|n| n > 0),
        "the checkpointer did not copy the WAL and then stop: {} checkpoints so far",
        archive.stats().checkpoints
    );
    tokio::time::sleep(quiet).await;
    assert_eq!(
        Some(archive.stats().checkpoints),
        idle,
        "checkpoints while nothing was committed"
    );
    archive.append(record(21, 1)).await.expect("append");
    let woken = checkpoints_settle(&archive, quiet).await;
    assert!(
        woken > idle,
        "no checkpoint after a commit: {idle:?} before, {woken:?} after"
    );
    archive.close().await;
}

/// A reader for an operator (`tsa archive export`, `list`) runs no checkpointer: the server's
/// copies the WAL, and on a read-only copy every round failed (a warning in the export's
/// output, and a failing query fifty times a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_runs_no_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(&dir);
    let writer = open(&url).await;
    for serial in 1..=5 {
        writer.append(record(serial, 1)).await.expect("append");
    }
    let reader = Archive::connect(
        &url,
        ArchiveOptions {
            migrate: false,
            ..Default::default()
        },
    )
    .await
    .expect("reader");
    assert_eq!(reader.count().await.expect("count"), 5);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(reader.stats().checkpoints, 0, "the reader checkpointed");
    assert!(
        writer.stats().checkpoints > 0,
        "the writer's checkpointer did not run"
    );
    reader.close().await;
    writer.close().await;
}

#[test]
fn a_spell_of_failures_is_reported_once_at_each_end() {
    let mut spell = FailureSpell::default();
    assert!(
        !spell.succeeded(),
        "a success without failures ends no spell"
    );
    assert!(spell.failed(), "the first failure starts a spell");
    assert!(!spell.failed(), "the second failure is inside it");
    assert!(spell.succeeded(), "a success ends it");
    assert!(!spell.succeeded());
    assert!(spell.failed(), "the next failure starts another");
}
