//! Archive tests, on SQLite and PostgreSQL alike.
use super::test_support::{on_both_backends, open, sqlite_url};
use super::*;

fn record(serial: u64, gen_time_ms: i64) -> TokenRecord {
    TokenRecord {
        serial,
        gen_time_ms,
        policy: "1.3.6.1.4.1.99999.1".to_owned(),
        hash_alg: "2.16.840.1.101.3.4.2.1".to_owned(),
        imprint: serial.to_be_bytes().repeat(4),
        token: vec![0x30, 0x03, 0x02, 0x01, 0x01],
    }
}

on_both_backends!(
    round_trip,
    concurrent_appends_are_grouped,
    duplicate_fails_alone
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

/// One duplicate in a batch must fail alone, not take its batch neighbours down with it.
async fn duplicate_fails_alone(url: &str) {
    let archive = open(url).await;
    archive.append(record(1, 1)).await.expect("first append");
    let (stats, mut batch, mut answers) = (Stats::default(), Vec::new(), Vec::new());
    for serial in [2, 1, 3, 3, 4] {
        let (reply, answer) = oneshot::channel();
        let rec = record(serial, 2);
        let serial = i64::try_from(serial).expect("small serial");
        batch.push(Job { serial, rec, reply });
        answers.push(answer);
    }
    commit_batch(&archive.inner.backend, &mut batch, &stats).await;
    let mut outcomes = Vec::new();
    for answer in answers {
        outcomes.push(answer.await.expect("answered"));
    }
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[4].is_ok());
    for failed in [&outcomes[1], &outcomes[3]] {
        let duplicate = matches!(failed, Err(ArchiveError::DuplicateSerial { .. }));
        assert!(duplicate, "{failed:?}");
    }
    assert_eq!(archive.count().await.expect("count"), 4);
    assert_eq!(
        stats.commits.load(Ordering::Relaxed),
        3,
        "each retried alone"
    );
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
    let Backend::Sqlite(pool) = &archive.inner.backend else {
        panic!("expected sqlite, got {archive:?}");
    };
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
