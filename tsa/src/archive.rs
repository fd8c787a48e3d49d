//! The token archive: every token the authority issues, committed durably before its reply
//! leaves (DESIGN.md, "Decisions"; ETSI EN 319 421 asks that every token be logged).
//!
//! Two backends sit behind one [`Archive`]: an embedded SQLite file (`sqlite://path`, the
//! default; WAL journal with `synchronous=FULL`, so a commit survives a power cut) and a
//! PostgreSQL database (`postgres://` or `postgresql://`) that several stateless nodes share.
//! The schema is created at connect from the migrations in `tsa/migrations/<backend>/`.
//!
//! Writes use group commit: [`Archive::append`] hands its record to one writer task, which
//! takes everything already queued, inserts it with one multi-row `INSERT` in one transaction,
//! commits, and only then answers each caller. Durability costs one commit per batch, not one
//! per token.
//!
//! The archive also keeps the serial counter: [`Archive::reserve_serials`] moves it forward in
//! one statement, so blocks of serials never overlap, across restarts and across nodes.

use std::borrow::Cow;
use std::num::TryFromIntError;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, SqlSafeStr};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Schema of the embedded SQLite archive.
const SQLITE_SCHEMA: &str = include_str!("../migrations/sqlite/0001_archive.sql");
/// Schema of the shared PostgreSQL archive.
const POSTGRES_SCHEMA: &str = include_str!("../migrations/postgres/0001_archive.sql");

/// Six bound parameters per row; SQLite allows 32766 per statement, PostgreSQL 65535.
const MAX_BATCH_LIMIT: usize = 4096;

/// The row counts of the multi-row INSERTs a batch is cut into, largest first (each at most
/// 6 × 256 = 1536 parameters, within every backend's limit).
const INSERT_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

const INSERT_PREFIX: &str =
    "INSERT INTO tokens (serial, gen_time_ms, policy, hash_alg, imprint, token) ";
const SELECT_ONE: &str = "SELECT serial, gen_time_ms, policy, hash_alg, imprint, token \
     FROM tokens WHERE serial = $1";
/// One statement, so it is atomic on both backends; the guard keeps the counter inside BIGINT
/// (SQLite would silently turn an overflowing integer into a float).
const RESERVE: &str = "UPDATE serial_counter SET next_serial = next_serial + $1 \
     WHERE id = 1 AND next_serial <= 9223372036854775807 - $1 \
     RETURNING next_serial - $1";
/// A session whose `synchronous_commit` is `off` would acknowledge commits that a crash can
/// lose; raise it to `on` for our connections, and leave any stronger setting alone.
const PG_DURABLE_COMMIT: &str = "SELECT set_config('synchronous_commit', 'on', false) \
     WHERE current_setting('synchronous_commit') = 'off'";

/// Everything that can go wrong in the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The URL names neither SQLite nor PostgreSQL (only the scheme is kept: URLs hold passwords).
    #[error(
        "unsupported archive URL scheme `{scheme}`: expected sqlite://, postgres:// or postgresql://"
    )]
    UnsupportedUrl {
        /// The part before the first `:`.
        scheme: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot connect to the {backend} archive")]
    Connect {
        /// `"sqlite"` or `"postgres"`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Creating or upgrading the schema failed.
    #[error("cannot apply the archive schema")]
    Migrate {
        /// The migrator's error.
        #[source]
        source: MigrateError,
    },
    /// A statement failed.
    #[error("archive database error while {op}")]
    Database {
        /// What the archive was doing.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A token with this serial is already archived; the new one was not stored.
    #[error("a token with serial {serial} is already archived")]
    DuplicateSerial {
        /// The serial that is taken.
        serial: u64,
        /// The database's unique-constraint error.
        #[source]
        source: sqlx::Error,
    },
    /// A batch commit failed for a reason that is not about one row (connection lost, disk
    /// full): every token of the batch was refused with this same cause.
    #[error("archive commit of a batch of {tokens} tokens failed")]
    Commit {
        /// How many tokens the failed batch held.
        tokens: usize,
        /// The driver's error, shared by every caller of the batch.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// Serials are stored as BIGINT, so they must lie in `1..=i64::MAX`.
    #[error("serial {serial} is outside 1..=9223372036854775807, the range the archive stores")]
    SerialOutOfRange {
        /// The rejected serial.
        serial: u64,
        /// The failed conversion, when the serial is above `i64::MAX`.
        #[source]
        source: Option<TryFromIntError>,
    },
    /// `reserve_serials` was asked for zero serials or more than fit in a BIGINT.
    #[error("cannot reserve {count} serials: the count must lie in 1..=9223372036854775807")]
    InvalidSerialCount {
        /// The requested count.
        count: u64,
    },
    /// The serial counter cannot move forward by the requested count without leaving BIGINT
    /// (it holds the next free serial, so the last serial ever handed out is `i64::MAX - 1`).
    #[error("serials exhausted: the counter cannot advance by {count} more")]
    SerialsExhausted {
        /// The requested count.
        count: u64,
    },
    /// The database holds a value no code path writes (a negative serial or count).
    #[error("the archive holds an impossible value for {what}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// The failed conversion.
        #[source]
        source: TryFromIntError,
    },
    /// [`Archive::close`] was called; no more tokens are accepted.
    #[error("the archive is closed")]
    Closed,
    /// The writer task ended without answering; the token may not be archived.
    #[error("the archive writer task has stopped; the token was not confirmed as archived")]
    WriterStopped {
        /// The dropped reply channel, when the writer took the token and never answered.
        #[source]
        source: Option<oneshot::error::RecvError>,
    },
}

/// One archived token and the facts kept about it for audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's serial number, unique over the archive's whole life.
    pub serial: u64,
    /// genTime of the token, in milliseconds since the Unix epoch.
    pub gen_time_ms: i64,
    /// The policy OID, dotted.
    pub policy: String,
    /// The message imprint's hash algorithm (OID or name, as the caller chooses).
    pub hash_alg: String,
    /// The message imprint's hash value.
    pub imprint: Vec<u8>,
    /// The DER of the whole token (ContentInfo with SignedData).
    pub token: Vec<u8>,
}

/// Tuning of an [`Archive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// Most tokens committed in one transaction (clamped to 1..=4096).
    pub max_batch: usize,
    /// Appends that may wait for the writer before `append` itself waits (at least 1).
    pub queue: usize,
    /// Size of the connection pool.
    pub max_connections: u32,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue: 8192,
            max_connections: 8,
        }
    }
}

/// Counters of the writer's work since connect, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Tokens those transactions stored.
    pub tokens: u64,
}

/// The token archive; cheap to clone, all clones share one pool and one writer.
#[derive(Clone)]
pub struct Archive {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    jobs: mpsc::Sender<Job>,
    closed: AtomicBool,
    shutdown: Arc<Notify>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    tokens: AtomicU64,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the backend holds; the SQL must suit both.
macro_rules! on_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// A record on its way to the writer, with its serial already checked to fit BIGINT.
struct Job {
    serial: i64,
    rec: TokenRecord,
    reply: oneshot::Sender<Result<(), ArchiveError>>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Archive {
    /// Opens the archive at `url` (`sqlite://path`, created if missing, or `postgres://...` /
    /// `postgresql://...`), applies the schema and starts the writer task.
    pub async fn connect(url: &str, opts: ArchiveOptions) -> Result<Self, ArchiveError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(connect_sqlite(url, &opts).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(connect_postgres(url, &opts).await?)
        } else {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            return Err(ArchiveError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            });
        };
        backend.migrate().await?;

        let (jobs, queue) = mpsc::channel(opts.queue.max(1));
        let shutdown = Arc::new(Notify::new());
        let stats = Arc::new(Stats::default());
        let writer = tokio::spawn(run_writer(
            backend.clone(),
            queue,
            opts.max_batch.clamp(1, MAX_BATCH_LIMIT),
            Arc::clone(&shutdown),
            Arc::clone(&stats),
        ));
        tracing::info!(backend = backend.name(), "token archive open");
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                jobs,
                closed: AtomicBool::new(false),
                shutdown,
                writer: Mutex::new(Some(writer)),
                stats,
            }),
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Archives `rec`; returns only once the transaction holding it has committed durably.
    pub async fn append(&self, rec: TokenRecord) -> Result<(), ArchiveError> {
        let serial = db_serial(rec.serial)?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(ArchiveError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job { serial, rec, reply };
        // A send error only says the receiver is gone and gives the job back: nothing to keep.
        if self.inner.jobs.send(job).await.is_err() {
            return Err(self.stopped(None));
        }
        match answer.await {
            Ok(result) => result,
            Err(dropped) => Err(self.stopped(Some(dropped))),
        }
    }

    /// Reserves `count` consecutive serials that no caller, in this process or any other
    /// sharing the database, has had or will get. Serials start at 1.
    pub async fn reserve_serials(&self, count: u64) -> Result<Range<u64>, ArchiveError> {
        let step = i64::try_from(count)
            .ok()
            .filter(|step| *step > 0)
            .ok_or(ArchiveError::InvalidSerialCount { count })?;
        let start: Option<i64> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_scalar(RESERVE).bind(step).fetch_optional(pool).await
        })
        .map_err(ArchiveError::database("reserving serials"))?;
        let start = start.ok_or(ArchiveError::SerialsExhausted { count })?;
        let start = stored_u64(start, "the serial counter")?;
        // Cannot overflow: the statement kept start + count within i64::MAX.
        Ok(start..start + count)
    }

    /// genTime of the latest token archived, if any (the clock guard refuses to go back
    /// before it).
    pub async fn last_gen_time_ms(&self) -> Result<Option<i64>, ArchiveError> {
        on_pool!(&self.inner.backend, pool => {
            sqlx::query_scalar("SELECT MAX(gen_time_ms) FROM tokens")
                .fetch_one(pool)
                .await
        })
        .map_err(ArchiveError::database("reading the latest genTime"))
    }

    /// The token with this serial, if archived.
    pub async fn get(&self, serial: u64) -> Result<Option<TokenRecord>, ArchiveError> {
        type Columns = (i64, i64, String, String, Vec<u8>, Vec<u8>);
        let key = db_serial(serial)?;
        let row: Option<Columns> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(SELECT_ONE).bind(key).fetch_optional(pool).await
        })
        .map_err(ArchiveError::database("reading a token"))?;
        let Some((serial, gen_time_ms, policy, hash_alg, imprint, token)) = row else {
            return Ok(None);
        };
        let serial = stored_u64(serial, "a token serial")?;
        Ok(Some(TokenRecord {
            serial,
            gen_time_ms,
            policy,
            hash_alg,
            imprint,
            token,
        }))
    }

    /// How many tokens the archive holds.
    pub async fn count(&self) -> Result<u64, ArchiveError> {
        let count: i64 = on_pool!(&self.inner.backend, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tokens").fetch_one(pool).await
        })
        .map_err(ArchiveError::database("counting tokens"))?;
        stored_u64(count, "the token count")
    }

    /// What the writer has committed since connect.
    pub fn stats(&self) -> ArchiveStats {
        ArchiveStats {
            commits: self.inner.stats.commits.load(Ordering::Relaxed),
            tokens: self.inner.stats.tokens.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting tokens, lets the writer commit and answer everything already queued,
    /// then closes the pool. Later calls on any clone fail with [`ArchiveError::Closed`] or a
    /// database error; closing twice is harmless.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.shutdown.notify_one();
        let writer = self.inner.writer.lock().await.take();
        if let Some(writer) = writer
            && let Err(error) = writer.await
        {
            tracing::error!(%error, "archive writer task failed");
        }
        on_pool!(&self.inner.backend, pool => pool.close().await);
    }

    fn stopped(&self, source: Option<oneshot::error::RecvError>) -> ArchiveError {
        if self.inner.closed.load(Ordering::Acquire) {
            ArchiveError::Closed
        } else {
            ArchiveError::WriterStopped { source }
        }
    }
}

impl ArchiveError {
    fn database(op: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { op, source }
    }
}

/// A count or serial read back from the database, where no code path writes a negative one.
fn stored_u64(value: i64, what: &'static str) -> Result<u64, ArchiveError> {
    u64::try_from(value).map_err(|source| ArchiveError::Corrupt { what, source })
}

/// Checks that a serial fits the archive's BIGINT column and is positive.
fn db_serial(serial: u64) -> Result<i64, ArchiveError> {
    let out_of_range = |source| ArchiveError::SerialOutOfRange { serial, source };
    match i64::try_from(serial) {
        Ok(0) => Err(out_of_range(None)),
        Ok(key) => Ok(key),
        Err(source) => Err(out_of_range(Some(source))),
    }
}

async fn connect_sqlite(url: &str, opts: &ArchiveOptions) -> Result<SqlitePool, ArchiveError> {
    let connect = |source| ArchiveError::Connect {
        backend: "sqlite",
        source,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(connect)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        // Checkpoints run in the background (see `checkpoint_sqlite`), not inside a commit,
        // where their fsync of the database file would stall every reply of that batch.
        .pragma("wal_autocheckpoint", "0")
        .pragma("journal_size_limit", "67108864");
    let pool = SqlitePoolOptions::new()
        .max_connections(opts.max_connections.max(2))
        .connect_with(options)
        .await
        .map_err(connect)?;
    tokio::spawn(checkpoint_sqlite(pool.clone()));
    Ok(pool)
}

/// Copies the WAL into the database file once a second (PASSIVE: never blocks the writer), so
/// the WAL stays small without a checkpoint ever running inside a commit. Ends with the pool.
async fn checkpoint_sqlite(pool: SqlitePool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if pool.is_closed() {
            break;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                break;
            }
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
}

async fn connect_postgres(url: &str, opts: &ArchiveOptions) -> Result<PgPool, ArchiveError> {
    let connect = |source| ArchiveError::Connect {
        backend: "postgres",
        source,
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(connect)?
        .application_name("sigillum-tsa");
    PgPoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::query(PG_DURABLE_COMMIT).execute(conn).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(connect)
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> Result<(), ArchiveError> {
        let schema = match self {
            Self::Sqlite(_) => SQLITE_SCHEMA,
            Self::Postgres(_) => POSTGRES_SCHEMA,
        };
        let migrator = Migrator::with_migrations(vec![Migration::new(
            1,
            Cow::Borrowed("archive"),
            MigrationType::Simple,
            schema.into_sql_str(),
            false,
        )]);
        let result = match (self, on_pool!(self, pool => migrator.run(pool).await)) {
            // SQLite has no migration lock: a second process opening a new file at the same
            // moment can lose the race to record the (idempotent) schema. The winner's
            // transaction has committed by then, so a second run finds it applied and checks it.
            (Self::Sqlite(pool), Err(MigrateError::Execute(sqlx::Error::Database(error))))
                if error.is_unique_violation() =>
            {
                migrator.run(pool).await
            }
            (_, result) => result,
        };
        result.map_err(|source| ArchiveError::Migrate { source })
    }

    /// Inserts `jobs` with one multi-row INSERT in one transaction, and commits.
    async fn insert(&self, jobs: &[Job]) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Multi-row INSERTs in a few fixed sizes only: sqlx caches prepared statements by
            // their text, and one text per batch size would evict and re-prepare them.
            let mut rest = jobs;
            while !rest.is_empty() {
                let size = INSERT_CHUNKS.iter().copied().find(|c| *c <= rest.len()).unwrap_or(1);
                let (chunk, tail) = rest.split_at(size);
                rest = tail;
                let mut insert = QueryBuilder::new(INSERT_PREFIX);
                insert.push_values(chunk, |mut row, job| {
                    row.push_bind(job.serial)
                        .push_bind(job.rec.gen_time_ms)
                        .push_bind(job.rec.policy.as_str())
                        .push_bind(job.rec.hash_alg.as_str())
                        .push_bind(job.rec.imprint.as_slice())
                        .push_bind(job.rec.token.as_slice());
                });
                insert.build().persistent(true).execute(&mut *tx).await?;
            }
            tx.commit().await
        })
    }
}

/// The writer task: commits batches until the channel is closed and drained.
async fn run_writer(
    backend: Backend,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    shutdown: Arc<Notify>,
    stats: Arc<Stats>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut closing = false;
    loop {
        tokio::select! {
            () = shutdown.notified(), if !closing => {
                // Refuse new sends but keep what is queued: it is drained below.
                queue.close();
                closing = true;
            }
            taken = queue.recv_many(&mut batch, max_batch) => {
                if taken == 0 {
                    break;
                }
                commit_batch(&backend, &mut batch, &stats).await;
            }
        }
    }
}

/// Commits `batch` (leaving it empty) and answers each caller. When the database refuses a
/// batch of several because of a row (a duplicate serial), each token is retried alone, so one
/// bad record does not fail the others; any other failure (connection lost, disk full) is
/// shared by the whole batch.
async fn commit_batch(backend: &Backend, batch: &mut Vec<Job>, stats: &Stats) {
    match timed_insert(backend, batch, stats).await {
        Ok(()) => answer_all(batch, || Ok(())),
        Err(error) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                // The caller may have given up (request cancelled); the outcome stands anyway.
                let _ = job.reply.send(Err(insert_error(job.rec.serial, error)));
            }
        }
        Err(error @ sqlx::Error::Database(_)) => {
            let tokens = batch.len();
            tracing::warn!(%error, tokens, "archive batch refused; retrying each token alone");
            for job in batch.drain(..) {
                let alone = timed_insert(backend, std::slice::from_ref(&job), stats).await;
                let _ = job
                    .reply
                    .send(alone.map_err(|source| insert_error(job.rec.serial, source)));
            }
        }
        Err(error) => {
            let tokens = batch.len();
            tracing::error!(%error, tokens, "archive batch commit failed");
            let source = Arc::new(error);
            answer_all(batch, || {
                let source = Arc::clone(&source);
                Err(ArchiveError::Commit { tokens, source })
            });
        }
    }
}

async fn timed_insert(backend: &Backend, jobs: &[Job], stats: &Stats) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    backend.insert(jobs).await?;
    let tokens = u32::try_from(jobs.len()).unwrap_or(u32::MAX); // at most MAX_BATCH_LIMIT
    metrics::histogram!("tsa_archive_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("tsa_archive_batch_size").record(f64::from(tokens));
    metrics::counter!("tsa_archive_tokens_total").increment(u64::from(tokens));
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.tokens.fetch_add(u64::from(tokens), Ordering::Relaxed);
    Ok(())
}

fn answer_all(batch: &mut Vec<Job>, result: impl Fn() -> Result<(), ArchiveError>) {
    for job in batch.drain(..) {
        // The caller may have given up (request cancelled); the outcome stands anyway.
        let _ = job.reply.send(result());
    }
}

fn insert_error(serial: u64, source: sqlx::Error) -> ArchiveError {
    let duplicate = matches!(&source, sqlx::Error::Database(db) if db.is_unique_violation());
    if duplicate {
        ArchiveError::DuplicateSerial { serial, source }
    } else {
        ArchiveError::Database {
            op: "archiving a token",
            source,
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;
