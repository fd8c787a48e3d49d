//! The writer task: group commit on a connection of its own, and what it does when the database
//! cannot write.
//!
//! # Why it looks like this (the lost token)
//! The first writer took a pooled connection per batch and used sqlx's `Transaction`. With the
//! data directory on a full file system it answered one request with a granted token that was
//! never committed. Reproduced on a 1 MB tmpfs with sqlx 0.9 (bundled SQLite 3.51):
//! 1. `COMMIT` fails with SQLITE_FULL, and SQLite rolls the transaction back by itself (it may,
//!    for FULL, IOERR, BUSY and NOMEM). sqlx's worker lowers its transaction depth only when a
//!    COMMIT or ROLLBACK succeeds: the dropped `Transaction` queues a ROLLBACK, which fails
//!    ("no transaction is active"), so sqlx's depth stays 1 while SQLite is in autocommit.
//! 2. The next `begin` on that connection therefore sends `SAVEPOINT _sqlx_savepoint_1`, which
//!    opens a real transaction, and `commit` sends `RELEASE SAVEPOINT`, which as the outermost
//!    savepoint acts as COMMIT and fails again with SQLITE_FULL, this time leaving the
//!    transaction open; the drop's `ROLLBACK TO SAVEPOINT` succeeds (depth 2 → 1) but does not
//!    end a transaction.
//! 3. From then on every `begin` is a nested SAVEPOINT inside that never-ending transaction and
//!    every `commit` releases only it: sqlx reports success, the INSERT "one row affected", the
//!    reply is granted, and nothing is committed. The open transaction holds the write lock, so
//!    every other connection waits out its 30 s busy timeout ("database is locked") and the
//!    checkpoint on that connection fails ("database table is locked"). At exit SQLite rolls it
//!    back and the granted tokens are gone. The retry-each-token path, which also retried after
//!    disk-full errors, multiplied the failing commits on the poisoned connection.
//!
//! So the writer now keeps one connection of its own, writes `BEGIN IMMEDIATE` and `COMMIT` as
//! plain statements on SQLite (no savepoint bookkeeping to go wrong: a BEGIN on a connection
//! still inside a transaction is an error, never a silent nesting) and one self-committing
//! statement per batch on PostgreSQL, and
//! after any error closes that connection instead of reusing it. Only a unique violation is
//! retried token by token; any other failure marks the archive unwritable, refuses the batch,
//! and from then on refuses new tokens at once (fast 503s) while the writer probes the database
//! with a real write every [`PROBE_INTERVAL`] until one commits.
//!
//! A commit is also only as good as the file it went to: SQLite keeps writing into a database
//! or WAL file that was unlinked, through its open descriptor, and that data is gone at the
//! next start. After each SQLite commit the writer checks that the path still names the file
//! it opened and that the WAL is still there; if not, the batch is refused and the archive stays
//! unwritable for good (a new, empty file would restart the serial counter: an operator must
//! restore the file and restart the node).
//!
//! What lies below us: after an ext4 I/O error (`errors=remount-ro`), plain SQLite with
//! synchronous=FULL, driven by a Python script without any Sigillum code, lost its last
//! acknowledged transaction once the kernel replayed the journal in 1 of 25 runs here (kernel
//! 6.18, Python's SQLite 3.40); the server (bundled SQLite 3.51) did in about 1 of 7
//! (tests/tests/archive_faults.rs prints it). COMMIT, fsync included, had returned success, so no check of ours can see it;
//! an archive that must survive disk errors needs storage that honours fsync, or PostgreSQL
//! with synchronous replication.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, QueryBuilder, Sqlite};
use tokio::sync::{Notify, mpsc};

use super::{
    ArchiveError, Backend, INSERT_PREFIX, Job, PG_INSERT, Stats, WAL_CHECKPOINT, WalSignals,
};
use crate::signing::Running;

/// How often an unwritable archive is probed with a real write.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Longest the courtesy ROLLBACK before closing a failed connection may take.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(1);

/// The write a probe commits: it burns one serial (gaps are allowed, repeats are not). It must
/// change a value: SQLite does not even dirty a page for an UPDATE that writes the bytes
/// already there, so a no-op UPDATE "commits" on a file system that refuses every write (seen:
/// a false recovery 1 ms after a disk error).
const PROBE: &str = "UPDATE serial_counter SET next_serial = next_serial + 1 \
     WHERE id = 1 AND next_serial < 9223372036854775807";

/// Whether the archive can take tokens now, shared by the writer, `append` and `/healthz`.
#[derive(Debug, Default)]
pub(super) struct Health {
    unwritable: AtomicBool,
    lost: AtomicBool,
    problem: StdMutex<Option<String>>,
}

impl Health {
    /// Whether the last write committed.
    pub(super) fn writable(&self) -> bool {
        !self.unwritable.load(Ordering::Acquire)
    }

    /// Whether the database file was removed or replaced under us (no recovery without an
    /// operator).
    pub(super) fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Why the archive is unwritable, when it is.
    pub(super) fn problem(&self) -> Option<String> {
        if self.writable() {
            return None;
        }
        self.problem
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Marks the archive unwritable; true when it was writable until now.
    pub(super) fn fail(&self, reason: String) -> bool {
        self.set_problem(reason);
        let was_writable = !self.unwritable.swap(true, Ordering::AcqRel);
        metrics::gauge!("tsa_archive_writable").set(0.0);
        was_writable
    }

    fn lose(&self, reason: String) {
        self.lost.store(true, Ordering::Release);
        self.fail(reason);
    }

    /// Marks the archive writable again; true when it was not until now.
    fn recover(&self) -> bool {
        let was_unwritable = self.unwritable.swap(false, Ordering::AcqRel);
        metrics::gauge!("tsa_archive_writable").set(1.0);
        was_unwritable
    }

    fn set_problem(&self, reason: String) {
        match self.problem.lock() {
            Ok(mut p) => *p = Some(reason),
            Err(poisoned) => *poisoned.into_inner() = Some(reason),
        }
    }
}

/// The SQLite database file as the archive opened it: its path and (device, inode).
#[derive(Debug, Clone)]
pub(super) struct DbFile {
    path: PathBuf,
    wal: PathBuf,
    id: (u64, u64),
}

impl DbFile {
    /// Identifies the file at `path`; `None` when there is none (an in-memory database).
    pub(super) fn open(path: &Path) -> Option<DbFile> {
        let id = file_id(path).ok()?;
        let mut wal = path.as_os_str().to_os_string();
        wal.push("-wal");
        Some(DbFile {
            path: path.to_path_buf(),
            wal: PathBuf::from(wal),
            id,
        })
    }

    /// Checks, right after a commit, that the commit went to the file at the path: the same
    /// inode, and a WAL beside it (WAL mode: a commit has just written it).
    fn check(&self) -> Result<(), String> {
        match file_id(&self.path) {
            Ok(id) if id == self.id => {}
            Ok(_) => {
                return Err(format!(
                    "the archive file {} was replaced by another file",
                    self.path.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "the archive file {} is gone ({e})",
                    self.path.display()
                ));
            }
        }
        if !self.wal.exists() {
            return Err(format!(
                "the archive's WAL {} was removed",
                self.wal.display()
            ));
        }
        Ok(())
    }
}

fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// The writer's own connection: taken from the pool once, never handed back (a connection that
/// saw an error is closed).
enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// Runs the same code on whichever connection the writer holds.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            Conn::Postgres($c) => $body,
        }
    };
}

/// What one transaction of the writer does.
#[derive(Clone, Copy)]
enum Work<'a> {
    /// Insert these tokens.
    Insert(&'a [Job]),
    /// Commit a no-op write, to learn whether the database writes again.
    Probe,
}

/// Why a transaction did not commit.
enum Failure {
    /// A row was refused (a duplicate serial): the database itself is fine.
    Row(sqlx::Error),
    /// The database failed (disk full, I/O error, read-only, connection lost).
    Fault(sqlx::Error),
    /// No answer within the commit timeout.
    TimedOut(Duration),
    /// The commit went into a file that is no longer the archive.
    Lost(String),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Row(e) | Failure::Fault(e) => e.to_string(),
            Failure::TimedOut(after) => format!("no commit within {after:?}"),
            Failure::Lost(reason) => reason.clone(),
        }
    }
}

/// The writer: group commit, health, probes.
pub(super) struct Writer {
    pub(super) backend: Backend,
    pub(super) file: Option<DbFile>,
    pub(super) health: Arc<Health>,
    pub(super) stats: Arc<Stats>,
    pub(super) timeout: Duration,
    conn: Option<Conn>,
}

impl Writer {
    /// A writer for `backend`; it connects on its first write.
    pub(super) fn new(
        backend: Backend,
        file: Option<DbFile>,
        health: Arc<Health>,
        stats: Arc<Stats>,
        timeout: Duration,
    ) -> Writer {
        Writer {
            backend,
            file,
            health,
            stats,
            timeout,
            conn: None,
        }
    }

    /// Commits batches until the queue is closed and drained; probes while unwritable; tells the
    /// checkpointer of each commit and copies the WAL's last frames when it asks (`wal`; see
    /// [`Writer::checkpoint_tail`]).
    pub(super) async fn run(
        mut self,
        mut queue: mpsc::Receiver<Job>,
        max_batch: usize,
        signing: Option<Running>,
        shutdown: Arc<Notify>,
        wal: Arc<WalSignals>,
    ) {
        let mut batch = Vec::with_capacity(max_batch);
        let mut closing = false;
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_writable = true;
        loop {
            let probing = !closing && !self.health.writable() && !self.health.lost();
            tokio::select! {
                () = wal.tail.notified(), if self.conn.is_some() => self.checkpoint_tail().await,
                () = shutdown.notified(), if !closing => {
                    // Refuse new sends but keep what is queued: it is drained below.
                    queue.close();
                    closing = true;
                }
                taken = queue.recv_many(&mut batch, max_batch) => {
                    if taken == 0 {
                        break;
                    }
                    if let Some(signing) = &signing {
                        wait_for_running(signing, &mut queue, &mut batch, max_batch).await;
                    }
                    self.commit_batch(&mut batch).await;
                    wal.committed.notify_one();
                }
                _ = probe.tick(), if probing => self.probe().await,
            }
            // The first probe comes one interval after the failure, not at once.
            let writable = self.health.writable();
            if was_writable && !writable {
                probe.reset();
            }
            was_writable = writable;
        }
        self.discard().await;
    }

    /// Commits `batch` (leaving it empty) and answers each caller. A unique violation in a batch
    /// of several is retried token by token, so one bad record does not fail the others; any
    /// other failure refuses the whole batch and marks the archive unwritable.
    pub(super) async fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        if !self.health.writable() {
            let reason = self.unavailable_reason();
            answer_all(batch, || {
                Err(ArchiveError::Unavailable {
                    reason: reason.clone(),
                })
            });
            return;
        }
        match self.transaction(Work::Insert(batch)).await {
            Ok(()) => answer_all(batch, || Ok(())),
            Err(Failure::Row(error)) if batch.len() > 1 => {
                let tokens = batch.len();
                tracing::warn!(%error, tokens, "archive batch refused a row; retrying each token alone");
                for job in batch.drain(..) {
                    let outcome = if self.health.writable() {
                        self.transaction(Work::Insert(std::slice::from_ref(&job)))
                            .await
                            .map_err(|f| self.refusal(f, job.rec.serial, 1))
                    } else {
                        Err(ArchiveError::Unavailable {
                            reason: self.unavailable_reason(),
                        })
                    };
                    // The caller may have given up (request cancelled); the outcome stands anyway.
                    let _ = job.reply.send(outcome);
                }
            }
            Err(failure) => {
                let tokens = batch.len();
                let serial = batch.first().map_or(0, |j| j.rec.serial);
                let error = self.refusal(failure, serial, tokens);
                if tokens == 1 {
                    if let Some(job) = batch.pop() {
                        let _ = job.reply.send(Err(error));
                    }
                } else {
                    answer_all(batch, || Err(error.shared()));
                }
            }
        }
    }

    /// Turns a failure into the caller's error, marking the archive unwritable unless a row
    /// was at fault.
    fn refusal(&self, failure: Failure, serial: u64, tokens: usize) -> ArchiveError {
        let reason = failure.describe();
        match failure {
            Failure::Row(source) => ArchiveError::DuplicateSerial { serial, source },
            Failure::Lost(reason) => {
                tracing::error!(%reason, tokens, "archive lost: refusing every token until an operator restores the file and restarts the node");
                self.health.lose(reason.clone());
                ArchiveError::Unavailable { reason }
            }
            Failure::Fault(source) => {
                if self.health.fail(reason) {
                    tracing::error!(error = %source, tokens, "archive cannot write: refusing tokens until a probe commits");
                }
                ArchiveError::Commit {
                    tokens,
                    source: Arc::new(source),
                }
            }
            Failure::TimedOut(after) => {
                if self.health.fail(reason) {
                    tracing::error!(
                        ?after,
                        tokens,
                        "archive commit timed out: refusing tokens until a probe commits"
                    );
                }
                ArchiveError::TimedOut {
                    after,
                    source: None,
                }
            }
        }
    }

    fn unavailable_reason(&self) -> String {
        self.health
            .problem()
            .unwrap_or_else(|| "the archive cannot write".to_owned())
    }

    /// One probe: a real write, committed; the archive is writable again when it succeeds.
    async fn probe(&mut self) {
        match self.transaction(Work::Probe).await {
            Ok(()) => {
                if self.health.recover() {
                    tracing::info!("archive writable again: issuing tokens");
                }
            }
            Err(Failure::Lost(reason)) => {
                tracing::error!(%reason, "archive lost");
                self.health.lose(reason);
            }
            Err(failure) => {
                let reason = failure.describe();
                tracing::debug!(%reason, "archive probe failed");
                self.health.fail(reason);
            }
        }
    }

    /// Runs `work` in one transaction on the writer's connection and commits it, then checks
    /// that the commit went to the archive file. Any error closes the connection.
    async fn transaction(&mut self, work: Work<'_>) -> Result<(), Failure> {
        let started = Instant::now();
        let timeout = self.timeout;
        let conn = match self.conn.take() {
            Some(conn) => self.conn.insert(conn),
            None => {
                let acquired = match &self.backend {
                    Backend::Sqlite(pool) => tokio::time::timeout(timeout, pool.acquire())
                        .await
                        .map(|r| r.map(Conn::Sqlite)),
                    Backend::Postgres(pool) => tokio::time::timeout(timeout, pool.acquire())
                        .await
                        .map(|r| r.map(Conn::Postgres)),
                };
                match acquired {
                    Ok(Ok(conn)) => self.conn.insert(conn),
                    Ok(Err(error)) => return Err(Failure::Fault(error)),
                    Err(_) => return Err(Failure::TimedOut(timeout)),
                }
            }
        };
        let begin = self.backend.begin_sql();
        match tokio::time::timeout(timeout, run_transaction(conn, begin, work)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                self.discard().await;
                let row = matches!(&error, sqlx::Error::Database(db) if db.is_unique_violation());
                return Err(if row {
                    Failure::Row(error)
                } else {
                    Failure::Fault(error)
                });
            }
            Err(_) => {
                // The statement may still be running on the connection's worker: close it
                // without waiting; the database rolls back what it did not commit.
                self.drop_conn();
                return Err(Failure::TimedOut(timeout));
            }
        }
        if let Some(file) = &self.file
            && let Err(reason) = file.check()
        {
            self.drop_conn();
            return Err(Failure::Lost(reason));
        }
        if let Work::Insert(jobs) = work {
            let tokens = u32::try_from(jobs.len()).unwrap_or(u32::MAX); // at most MAX_BATCH_LIMIT
            metrics::histogram!("tsa_archive_commit_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("tsa_archive_batch_size").record(f64::from(tokens));
            metrics::counter!("tsa_archive_tokens_total").increment(u64::from(tokens));
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.stats
                .tokens
                .fetch_add(u64::from(tokens), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies the WAL's last frames into the database file on the writer's own connection,
    /// between two batches, when the background checkpoints have copied the rest (see
    /// `checkpoint_sqlite`): with every frame copied, the next commit starts the WAL over. The
    /// writer is the only one that writes tokens, so no batch can slip in between (a serial
    /// reservation can, and then the WAL starts over at a later second). A failure
    /// closes the connection, as after any error; it refuses no token (the next commit finds
    /// out whether the database still writes).
    async fn checkpoint_tail(&mut self) {
        let Some(Conn::Sqlite(c)) = self.conn.as_mut() else {
            return;
        };
        let checkpoint = sqlx::raw_sql(WAL_CHECKPOINT).execute(&mut **c);
        match tokio::time::timeout(self.timeout, checkpoint).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "WAL checkpoint failed");
                self.discard().await;
            }
            Err(_) => {
                tracing::warn!(after = ?self.timeout, "WAL checkpoint timed out");
                self.drop_conn();
            }
        }
    }

    /// Rolls back whatever the connection holds and closes it; it never serves again.
    async fn discard(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            on_conn!(&mut conn, c => {
                c.close_on_drop();
                let _ = tokio::time::timeout(DISCARD_TIMEOUT, sqlx::raw_sql("ROLLBACK").execute(&mut **c)).await;
            });
        }
    }

    /// Closes the connection without waiting for it.
    fn drop_conn(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            on_conn!(&mut conn, c => c.close_on_drop());
        }
    }
}

/// The transaction of `work` on `conn`, committed.
///
/// On SQLite the whole transaction of a batch is one multi-statement text (`BEGIN IMMEDIATE;
/// INSERT ... VALUES (n rows); COMMIT`), so the connection's worker thread runs it in one go:
/// sqlx hands every statement to that thread and waits for its answer, and each hand-off also
/// waits for this task to be scheduled again among the connections' tasks (measured: a batch
/// cut into BEGIN, four INSERTs and COMMIT spent about half its commit time waiting so). The
/// statement stops at the first error and leaves the transaction open; the caller closes the
/// connection then, as after any error. One text per batch size, cached by sqlx like any
/// prepared statement.
///
/// On PostgreSQL the work is one statement outside any transaction block, which PostgreSQL
/// runs as a transaction of its own and commits before it answers (durably: our sessions run
/// with `synchronous_commit` at least `on`), so a batch costs one network round trip: the
/// INSERT takes the batch as seven arrays ([`PG_INSERT`]), one prepared text for every batch
/// size. All rows or none: a duplicate serial refuses the whole statement.
async fn run_transaction(
    conn: &mut Conn,
    begin: &'static str,
    work: Work<'_>,
) -> Result<(), sqlx::Error> {
    match (conn, work) {
        (Conn::Sqlite(c), Work::Insert(jobs)) => {
            let mut sql = QueryBuilder::new(begin);
            sql.push("; ").push(INSERT_PREFIX);
            push_rows(&mut sql, jobs);
            sql.push("; COMMIT");
            sql.build().persistent(true).execute(&mut **c).await?;
        }
        (Conn::Sqlite(c), Work::Probe) => {
            sqlx::raw_sql(begin).execute(&mut **c).await?;
            sqlx::raw_sql(PROBE).execute(&mut **c).await?;
            sqlx::raw_sql("COMMIT").execute(&mut **c).await?;
        }
        // `execute` reads up to PostgreSQL's ReadyForQuery, which comes after the commit: a
        // commit that fails is an error here (unlike a row fetched before it).
        (Conn::Postgres(c), Work::Insert(jobs)) => {
            fn column<'a, T>(jobs: &'a [Job], f: impl Fn(&'a Job) -> T) -> Vec<T> {
                jobs.iter().map(f).collect()
            }
            sqlx::query(PG_INSERT)
                .bind(column(jobs, |j| j.serial))
                .bind(column(jobs, |j| j.rec.gen_time_ms))
                .bind(column(jobs, |j| j.rec.policy.as_str()))
                .bind(column(jobs, |j| j.rec.hash_alg.as_str()))
                .bind(column(jobs, |j| j.rec.imprint.as_slice()))
                .bind(column(jobs, |j| j.rec.token.as_slice()))
                .bind(column(jobs, |j| j.rec.signer_cert_sha256.as_deref()))
                .execute(&mut **c)
                .await?;
        }
        (Conn::Postgres(c), Work::Probe) => {
            sqlx::raw_sql(PROBE).execute(&mut **c).await?;
        }
    }
    Ok(())
}

/// The VALUES rows of `jobs`, bound.
fn push_rows<'a, DB>(sql: &mut QueryBuilder<DB>, jobs: &'a [Job])
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a [u8]: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a [u8]>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    sql.push_values(jobs, |mut row, job| {
        row.push_bind(job.serial)
            .push_bind(job.rec.gen_time_ms)
            .push_bind(job.rec.policy.as_str())
            .push_bind(job.rec.hash_alg.as_str())
            .push_bind(job.rec.imprint.as_slice())
            .push_bind(job.rec.token.as_slice())
            .push_bind(job.rec.signer_cert_sha256.as_deref());
    });
}

/// Longest a commit waits for the signatures in progress ([`wait_for_running`]): several RSA
/// signatures' time, and an HSM's usual round trip; a signature that fails or takes longer
/// costs the tokens already in the batch at most this.
pub(super) const SIGNING_WAIT: Duration = Duration::from_millis(5);

/// Signatures per signing thread left out of a commit's wait, so that the threads have work
/// while the commit runs (a commit takes about two RSA-2048 signatures' time).
const KEEP_SIGNING: usize = 2;

/// With slow signers (RSA, an HSM) each token reaches the writer alone, one signature after the
/// other, and commits of a few tokens each pay the commit's fixed cost (page writes, the sync,
/// the wake-ups) on the cores the signers need. So before committing, the writer waits for the
/// signatures in progress on the signing threads now (they arrive within one signature's time)
/// and, when more are queued behind them, for those too but [`KEEP_SIGNING`] per thread, which
/// the threads sign while the commit runs: waiting for every one would leave them idle during
/// the commit, with all the requests of the moment in the batch. Never longer than
/// [`SIGNING_WAIT`]; not at all when nothing is being signed (a lone request is committed at
/// once) or the batch is full.
pub(super) async fn wait_for_running(
    signing: &Running,
    queue: &mut mpsc::Receiver<Job>,
    batch: &mut Vec<Job>,
    max_batch: usize,
) {
    let queued_beyond = signing
        .pending()
        .saturating_sub(KEEP_SIGNING * signing.threads());
    let want = (batch.len() + signing.now().max(queued_beyond)).min(max_batch);
    let deadline = tokio::time::Instant::now() + SIGNING_WAIT;
    while batch.len() < want {
        match tokio::time::timeout_at(deadline, queue.recv_many(batch, want - batch.len())).await {
            Ok(taken) if taken > 0 => {}
            _ => break, // the wait is over, or the queue closed (drained at the next turn)
        }
    }
}

fn answer_all(batch: &mut Vec<Job>, result: impl Fn() -> Result<(), ArchiveError>) {
    for job in batch.drain(..) {
        // The caller may have given up (request cancelled); the outcome stands anyway.
        let _ = job.reply.send(result());
    }
}
