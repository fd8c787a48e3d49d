//! The token archive: every token the authority issues, committed durably before its reply
//! leaves (DESIGN.md, "Decisions"; ETSI EN 319 421 asks that every token be logged).
//!
//! Two backends sit behind one [`Archive`]: an embedded SQLite file (`sqlite://path`, the
//! default; WAL journal with `synchronous=FULL`, so a commit survives a power cut) and a
//! PostgreSQL database (`postgres://` or `postgresql://`) that several stateless nodes share.
//! The schema is created at connect from the migrations in `tsa/migrations/<backend>/`.
//!
//! Writes use group commit: [`Archive::append`] hands its record to one writer task, which
//! takes everything already queued, inserts it with one multi-row `INSERT` in one transaction
//! (SQLite: between `BEGIN IMMEDIATE` and `COMMIT`; PostgreSQL: one statement that commits
//! itself, one round trip), and only then answers each caller. Durability costs one commit per
//! batch, not one per token.
//!
//! Faults (disk full, I/O errors, a read-only file system, a lost connection, a removed file)
//! are the writer's business too: see [`writer`] for how a failed commit once produced a granted
//! token that was never archived, and what guards against it now. In short: the writer owns
//! its connection and its transaction statements, never reuses a connection that saw an error,
//! refuses new tokens at once while the database cannot write ([`Archive::health`], which
//! `/healthz` reports), probes until a write commits again, and bounds every wait by the commit
//! timeout, so a request is refused in bounded time instead of hanging.
//!
//! The archive also keeps the serial counter: [`Archive::reserve_serials`] moves it forward in
//! one statement, so blocks of serials never overlap, across restarts and across nodes.

use std::borrow::Cow;
use std::num::TryFromIntError;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

mod writer;
use writer::{DbFile, Health, Writer};

/// Schema of the embedded SQLite archive, one versioned migration per step.
const SQLITE_SCHEMA: [&str; 3] = [
    include_str!("../migrations/sqlite/0001_archive.sql"),
    include_str!("../migrations/sqlite/0002_ca.sql"),
    include_str!("../migrations/sqlite/0003_signer_cert.sql"),
];
/// Schema of the shared PostgreSQL archive.
const POSTGRES_SCHEMA: [&str; 3] = [
    include_str!("../migrations/postgres/0001_archive.sql"),
    include_str!("../migrations/postgres/0002_ca.sql"),
    include_str!("../migrations/postgres/0003_signer_cert.sql"),
];
/// The migrations' names, in order.
const MIGRATIONS: [&str; 3] = ["archive", "ca", "signer_cert"];

/// Seven bound parameters per row in SQLite's INSERT, which allows 32766 per statement.
const MAX_BATCH_LIMIT: usize = 4096;

/// The columns of a token row, in the order every statement names them.
macro_rules! token_columns {
    () => {
        "serial, gen_time_ms, policy, hash_alg, imprint, token, signer_cert_sha256"
    };
}
const TOKEN_COLUMNS: &str = token_columns!();
/// SQLite's batch INSERT, before its VALUES rows.
const INSERT_PREFIX: &str = concat!("INSERT INTO tokens (", token_columns!(), ") ");
/// PostgreSQL's batch INSERT: the rows as seven arrays (one element per token), so that one
/// prepared text takes every batch size in one round trip.
const PG_INSERT: &str = concat!(
    "INSERT INTO tokens (",
    token_columns!(),
    ") SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], \
     $5::bytea[], $6::bytea[], $7::bytea[])"
);
/// A row of [`TOKEN_COLUMNS`], as read.
type TokenColumns = (i64, i64, String, String, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// A row as a record (a negative serial is corruption).
fn token_record(row: TokenColumns) -> Result<TokenRecord, ArchiveError> {
    let (serial, gen_time_ms, policy, hash_alg, imprint, token, signer_cert_sha256) = row;
    Ok(TokenRecord {
        serial: stored_u64(serial, "a token serial")?,
        gen_time_ms,
        policy,
        hash_alg,
        imprint,
        token,
        signer_cert_sha256,
    })
}

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
    /// The serial counter handed out a block below one this process already had: the
    /// database went back in time (replaced by an older copy). Serials could repeat.
    #[error(
        "the archive's serial counter went back (block at {start}, but {high_water} was already reserved): was the database replaced by an older copy?"
    )]
    SerialCounterWentBack {
        /// Start of the new block.
        start: u64,
        /// End of the highest block reserved before.
        high_water: u64,
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
    /// The schema is older than this binary and the caller may not migrate it.
    #[error(
        "the archive's schema is at migration {applied} of {expected}: start a node of this version once to upgrade it"
    )]
    SchemaBehind {
        /// Migrations applied.
        applied: i64,
        /// Migrations this binary has.
        expected: usize,
    },
    /// A CA row holds a value no code path writes.
    #[error("the archive holds an impossible {0}")]
    CorruptCa(String),
    /// The archive cannot write now (a commit failed, the file is gone): the token was refused
    /// without trying, until a probe commits again (see [`Archive::health`]).
    #[error("the archive cannot write now: {reason}")]
    Unavailable {
        /// What the last failure was.
        reason: String,
    },
    /// The database did not confirm within the commit timeout; the token is not confirmed as
    /// archived (it may still be committed: refusing it is safe, granting it would not be).
    #[error("the archive did not confirm the commit within {after:?}")]
    TimedOut {
        /// The timeout.
        after: Duration,
        /// The timer's report, when this caller's own wait ran out (not for a batch the
        /// writer gave up on).
        #[source]
        source: Option<tokio::time::error::Elapsed>,
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
    /// SHA-256 of the signing certificate (DER); `None` for tokens archived before it was
    /// recorded.
    pub signer_cert_sha256: Option<Vec<u8>>,
}

/// Which tokens an export or a listing takes.
#[derive(Clone, Debug, Default)]
pub struct TokenFilter {
    /// genTime at or after, ms since the epoch.
    pub from_ms: Option<i64>,
    /// genTime before, ms since the epoch.
    pub to_ms: Option<i64>,
    /// Signed by the certificate with this SHA-256.
    pub signer_cert_sha256: Option<Vec<u8>>,
}

/// The WHERE clause of a [`TokenFilter`] ($1 from, $2 to, $3 signer certificate). With a
/// signer it is a plain equality, which the planner answers from the `tokens_signer_cert`
/// index (a key-compromise listing reads that key's tokens, not the archive);
/// `($3 IS NULL OR ...)` would keep the index unused and read every token.
fn filter_sql(f: &TokenFilter) -> &'static str {
    if f.signer_cert_sha256.is_some() {
        "WHERE signer_cert_sha256 = $3 AND ($1 IS NULL OR gen_time_ms >= $1) \
         AND ($2 IS NULL OR gen_time_ms < $2)"
    } else {
        "WHERE $3 IS NULL AND ($1 IS NULL OR gen_time_ms >= $1) AND ($2 IS NULL OR gen_time_ms < $2)"
    }
}

/// [`Archive::matching_page`]'s statement: $1-$3 [`filter_sql`], $4 the serial to start after,
/// $5 the page's size, $6 the last serial to read. Plain ranges, never `($4 IS NULL OR ...)`:
/// the planners (SQLite's at least) seek the primary key (or the signer's index) only for plain
/// ranges; with the OR every page would scan from the first token, and a walk of n tokens would
/// read n²/2048 rows.
fn matching_page_sql(f: &TokenFilter) -> String {
    format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens {} AND serial > $4 AND serial <= $6 \
         ORDER BY serial LIMIT $5",
        filter_sql(f)
    )
}

/// The condition of `f`'s genTime window alone, with the window's bounds that are set bound in
/// order ($1, and $2 with both); `None` without a genTime bound. Every statement made of it
/// reads the genTime index alone (it holds each token's serial, SQLite's rowid, too).
fn window_where(f: &TokenFilter) -> Option<&'static str> {
    match (f.from_ms, f.to_ms) {
        (Some(_), Some(_)) => Some("WHERE gen_time_ms >= $1 AND gen_time_ms < $2"),
        (Some(_), None) => Some("WHERE gen_time_ms >= $1"),
        (None, Some(_)) => Some("WHERE gen_time_ms < $1"),
        (None, None) => None,
    }
}

/// The bound values of [`window_where`], in order.
fn window_bounds(f: &TokenFilter) -> Vec<i64> {
    [f.from_ms, f.to_ms].into_iter().flatten().collect()
}

/// The statement finding the first and last serial of the tokens in `f`'s genTime window, from
/// the genTime index; `None` without a genTime bound. Bound values: [`window_bounds`].
fn window_span_sql(f: &TokenFilter) -> Option<String> {
    window_where(f).map(|w| format!("SELECT MIN(serial), MAX(serial) FROM tokens {w}"))
}

/// Counts the tokens of `f`'s genTime window (all tokens without one) from the genTime index
/// (SQLite takes its smallest index for all). Bound values: [`window_bounds`].
fn window_count_sql(f: &TokenFilter) -> String {
    format!(
        "SELECT COUNT(*) FROM tokens {}",
        window_where(f).unwrap_or_default()
    )
}

/// Counts one certificate's tokens from the signer's index.
const SIGNER_COUNT: &str = "SELECT COUNT(*) FROM tokens WHERE signer_cert_sha256 = $1";

/// The serials a walk reads: those above `after`, up to `upto` (database values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SerialSpan {
    after: i64,
    upto: i64,
}

impl SerialSpan {
    /// Every serial (stored serials are 1 ..= i64::MAX: `db_serial`).
    const ALL: SerialSpan = SerialSpan {
        after: 0,
        upto: i64::MAX,
    };
}

/// Tokens read per statement by [`Archive::for_each_matching`] (a page of tokens is a few MB).
pub const PAGE_ROWS: usize = 1024;

/// Tuning of an [`Archive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// Most tokens committed in one transaction (clamped to 1..=4096).
    pub max_batch: usize,
    /// Appends that may wait for the writer before `append` itself waits (at least 1).
    pub queue: usize,
    /// Size of the connection pool.
    pub max_connections: u32,
    /// Longest an append waits for its commit, and a commit for the database, before the token
    /// is refused (SQLite's busy timeout is half of it). A request is refused within about this
    /// time whatever the database does.
    pub commit_timeout: Duration,
    /// The signing threads' load (slow signers: RSA, an HSM), whose tokens a commit waits for
    /// (the writer's `wait_for_running`). `None`: each commit takes what is queued.
    pub signing: Option<crate::signing::Running>,
    /// Apply the schema's migrations at connect (the server does). A reader for an operator
    /// (`tsa archive export`, `list`) does not: a newer binary must not upgrade a live
    /// database under older nodes; it needs the schema to be current already.
    pub migrate: bool,
}

impl ArchiveOptions {
    /// The commit timeout unless configured.
    pub const DEFAULT_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue: 8192,
            max_connections: 8,
            commit_timeout: Self::DEFAULT_COMMIT_TIMEOUT,
            signing: None,
            migrate: true,
        }
    }
}

/// Whether the archive can take tokens, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveHealth {
    /// The last write committed (tokens are being accepted).
    pub writable: bool,
    /// Why not, when not: a fixed text fit for anyone who asks (the database's own error, with
    /// its paths and hosts, goes to the log and into [`ArchiveError::Unavailable`]).
    pub problem: Option<&'static str>,
}

/// Counters of the writer's work since connect, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Tokens those transactions stored.
    pub tokens: u64,
    /// WAL checkpoints the background checkpointer ran (SQLite; see `checkpoint_sqlite`), also
    /// `tsa_archive_checkpoints_total` on `/metrics`.
    pub checkpoints: u64,
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
    health: Arc<Health>,
    commit_timeout: Duration,
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    tokens: AtomicU64,
    checkpoints: AtomicU64,
}

/// What the SQLite checkpointer and the writer tell each other (see `checkpoint_sqlite`).
#[derive(Debug, Default)]
struct WalSignals {
    /// From the checkpointer: copy the WAL's last frames, so that the next commit starts the WAL
    /// over.
    tail: Notify,
    /// From the writer: a batch was committed, so the WAL may have frames to copy.
    committed: Notify,
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
        // Held until the schema is applied: creating and migrating a SQLite file is not safe to
        // race. Readers (`migrate: false`) open an existing file and do not take it, so that
        // they work on a read-only copy too.
        let mut _open_lock = None;
        // The checkpointer's and the writer's signals (SQLite only; see `checkpoint_sqlite`).
        let wal = Arc::new(WalSignals::default());
        let stats = Arc::new(Stats::default());
        let backend = if url.starts_with("sqlite:") {
            if opts.migrate {
                _open_lock = sqlite_open_lock(url).await?;
            }
            let checkpointer = (Arc::clone(&wal), Arc::clone(&stats));
            Backend::Sqlite(connect_sqlite(url, &opts, checkpointer).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(connect_postgres(url, &opts).await?)
        } else {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            return Err(ArchiveError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            });
        };
        if opts.migrate {
            backend.migrate().await?;
        } else {
            backend.check_current().await?;
        }
        drop(_open_lock);
        let file = match &backend {
            Backend::Sqlite(_) => SqliteConnectOptions::from_str(url)
                .ok()
                .and_then(|o| DbFile::open(o.get_filename())),
            Backend::Postgres(_) => None,
        };

        let (jobs, queue) = mpsc::channel(opts.queue.max(1));
        let shutdown = Arc::new(Notify::new());
        let health = Arc::new(Health::default());
        metrics::gauge!("tsa_archive_writable").set(1.0);
        let commit_timeout = opts.commit_timeout.max(Duration::from_millis(100));
        let writer = Writer::new(
            backend.clone(),
            file,
            Arc::clone(&health),
            Arc::clone(&stats),
            commit_timeout,
        );
        let writer = tokio::spawn(writer.run(
            queue,
            opts.max_batch.clamp(1, MAX_BATCH_LIMIT),
            opts.signing.clone(),
            Arc::clone(&shutdown),
            wal,
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
                health,
                commit_timeout,
            }),
        })
    }

    /// Whether tokens can be archived now, and why not.
    pub fn health(&self) -> ArchiveHealth {
        let health = &self.inner.health;
        let writable = health.writable();
        let problem = match (writable, health.lost()) {
            (true, _) => None,
            (false, true) => Some(
                "the archive file was removed or replaced: restore it and restart the node (see the log)",
            ),
            (false, false) => Some(
                "the archive cannot write: tokens are refused until a probe commits (see the log)",
            ),
        };
        ArchiveHealth { writable, problem }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Archives `rec`; returns `Ok` only once the transaction holding it has committed durably.
    ///
    /// Refused at once while the archive cannot write ([`ArchiveError::Unavailable`]), and
    /// after the commit timeout at the latest ([`ArchiveError::TimedOut`]). An error never says
    /// the token is absent, only that it is not confirmed: the caller must not hand it out.
    pub async fn append(&self, rec: TokenRecord) -> Result<(), ArchiveError> {
        let serial = db_serial(rec.serial)?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(ArchiveError::Closed);
        }
        self.check_writable()?;
        let (reply, answer) = oneshot::channel();
        let job = Job { serial, rec, reply };
        let after = self.inner.commit_timeout;
        let confirmed = tokio::time::timeout(after, async {
            // A send error only says the receiver is gone and gives the job back.
            if self.inner.jobs.send(job).await.is_err() {
                return Err(self.stopped(None));
            }
            match answer.await {
                Ok(result) => result,
                Err(dropped) => Err(self.stopped(Some(dropped))),
            }
        })
        .await;
        match confirmed {
            Ok(result) => result,
            Err(elapsed) => Err(ArchiveError::TimedOut {
                after,
                source: Some(elapsed),
            }),
        }
    }

    /// The commit timeout: the bound on every wait for the archive.
    pub fn commit_timeout(&self) -> Duration {
        self.inner.commit_timeout
    }

    /// `Ok` while the archive accepts tokens; the reason otherwise.
    pub fn check_writable(&self) -> Result<(), ArchiveError> {
        match self.inner.health.problem() {
            None => Ok(()),
            Some(reason) => Err(ArchiveError::Unavailable { reason }),
        }
    }

    /// Reserves `count` consecutive serials that no caller, in this process or any other
    /// sharing the database, has had or will get. Serials start at 1.
    pub async fn reserve_serials(&self, count: u64) -> Result<Range<u64>, ArchiveError> {
        let step = i64::try_from(count)
            .ok()
            .filter(|step| *step > 0)
            .ok_or(ArchiveError::InvalidSerialCount { count })?;
        // Refused at once while unwritable (and for good once the file is lost: the pool's
        // connections would still write into the removed file).
        self.check_writable()?;
        let after = self.inner.commit_timeout;
        let begin = self.inner.backend.begin_sql();
        // In a transaction of its own with explicit statements, so that a failed commit is
        // reported (an autocommit `UPDATE ... RETURNING` hands its row back before its commit
        // has happened), on a connection that is closed afterwards (see [`writer`] for why a
        // connection whose transaction state is in doubt must never be reused).
        let reserved = on_pool!(&self.inner.backend, pool => {
            tokio::time::timeout(after, async {
                let mut conn = pool.acquire().await?;
                // Closed after use, never handed back: if this future is dropped (the timeout
                // above) between BEGIN and COMMIT, a pooled connection would otherwise keep the
                // open transaction and its write lock. One reconnect per block is cheap.
                conn.close_on_drop();
                let outcome: Result<Option<i64>, sqlx::Error> = async {
                    sqlx::raw_sql(begin).execute(&mut *conn).await?;
                    let start = sqlx::query_scalar(RESERVE)
                        .bind(step)
                        .fetch_optional(&mut *conn)
                        .await?;
                    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                    Ok(start)
                }
                .await;
                if outcome.is_err() {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                }
                outcome
            })
            .await
        });
        // A failed reservation is the database's fault as much as a failed commit: mark the
        // archive unwritable, so that callers queued behind this one, and /healthz, know at
        // once, and the writer's probe finds out when it writes again.
        let start = match reserved {
            Ok(Ok(start)) => start,
            Ok(Err(source)) => {
                if self.inner.health.fail(source.to_string()) {
                    tracing::error!(error = %source, "reserving serials failed: refusing tokens until a probe commits");
                }
                return Err(ArchiveError::Database {
                    op: "reserving serials",
                    source,
                });
            }
            Err(elapsed) => {
                if self
                    .inner
                    .health
                    .fail(format!("no serial reservation within {after:?}"))
                {
                    tracing::error!(
                        ?after,
                        "reserving serials timed out: refusing tokens until a probe commits"
                    );
                }
                return Err(ArchiveError::TimedOut {
                    after,
                    source: Some(elapsed),
                });
            }
        };
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
        let key = db_serial(serial)?;
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE serial = $1");
        let row: Option<TokenColumns> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(key).fetch_optional(pool).await
        })
        .map_err(ArchiveError::database("reading a token"))?;
        row.map(token_record).transpose()
    }

    /// How many tokens match `f`: read from an index alone ([`window_count_sql`],
    /// [`SIGNER_COUNT`]) but for a certificate within a window, whose tokens in the window's
    /// serial span are read from the table (an export counts before it walks; counting from the
    /// table read every row twice).
    pub async fn count_matching(&self, f: &TokenFilter) -> Result<u64, ArchiveError> {
        let indexed = match (f.signer_cert_sha256.as_deref(), window_where(f)) {
            (Some(_), Some(_)) => None,
            (Some(signer), None) => Some(on_pool!(&self.inner.backend, pool => {
                sqlx::query_scalar(SIGNER_COUNT).bind(signer).fetch_one(pool).await
            })),
            (None, _) => {
                let sql = window_count_sql(f);
                let bounds = window_bounds(f);
                Some(on_pool!(&self.inner.backend, pool => {
                    bounds
                        .iter()
                        .fold(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())), |q, b| q.bind(*b))
                        .fetch_one(pool)
                        .await
                }))
            }
        };
        if let Some(count) = indexed {
            let count: i64 = count.map_err(ArchiveError::database("counting tokens"))?;
            return stored_u64(count, "the token count");
        }
        let Some(span) = self.serial_span(f).await? else {
            return Ok(0);
        };
        let sql = format!(
            "SELECT COUNT(*) FROM tokens {} AND serial > $4 AND serial <= $5",
            filter_sql(f)
        );
        let count: i64 = on_pool!(&self.inner.backend, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                .bind(f.from_ms)
                .bind(f.to_ms)
                .bind(f.signer_cert_sha256.as_deref())
                .bind(span.after)
                .bind(span.upto)
                .fetch_one(pool)
                .await
        })
        .map_err(ArchiveError::database("counting tokens"))?;
        stored_u64(count, "the token count")
    }

    /// The serials holding `f`'s tokens: all of them without a genTime bound; with one, from
    /// the first to the last serial of a token in the window, read from the genTime index
    /// (tokens are numbered in issuing order, so a month of a years-long archive is read as a
    /// month, not as the years); `None` when the window holds no token.
    async fn serial_span(&self, f: &TokenFilter) -> Result<Option<SerialSpan>, ArchiveError> {
        let Some(sql) = window_span_sql(f) else {
            return Ok(Some(SerialSpan::ALL));
        };
        let bounds = window_bounds(f);
        let (first, last): (Option<i64>, Option<i64>) = on_pool!(&self.inner.backend, pool => {
            bounds
                .iter()
                .fold(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), |q, b| q.bind(*b))
                .fetch_one(pool)
                .await
        })
        .map_err(ArchiveError::database("finding the window's tokens"))?;
        Ok(first.zip(last).map(|(first, last)| SerialSpan {
            after: first.saturating_sub(1),
            upto: last,
        }))
    }

    /// Hands every token matching `f` to `each`, in serial order, one row at a time. The rows
    /// are read a page at a time ([`Archive::pages`]), so memory stays constant for millions
    /// of tokens and no read holds its snapshot for the whole run. Every token committed before
    /// the call is handed over once. Of those committed during it: without a genTime bound,
    /// the ones whose serial is above the page being read when they commit; with one, none
    /// beyond the last serial the window held when the walk began.
    pub async fn for_each_matching<E: From<ArchiveError>>(
        &self,
        f: &TokenFilter,
        mut each: impl FnMut(TokenRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        use futures_util::TryStreamExt;
        let mut pages = std::pin::pin!(self.pages(f.clone()));
        while let Some(page) = pages.try_next().await? {
            for record in page {
                each(record)?;
            }
        }
        Ok(())
    }

    /// The tokens matching `f`, a page ([`PAGE_ROWS`]) at a time in serial order, each page
    /// read when the stream is polled for it; ends after the first page that is not full. The
    /// first poll finds the serials of `f`'s genTime window ([`Archive::serial_span`]).
    pub fn pages(
        &self,
        f: TokenFilter,
    ) -> impl futures_util::Stream<Item = Result<Vec<TokenRecord>, ArchiveError>> + Send + 'static
    {
        /// Where the walk stands.
        enum Next {
            Start,
            Within(SerialSpan),
            Done,
        }
        let start = (self.clone(), f, Next::Start);
        futures_util::stream::try_unfold(start, |(archive, f, next)| async move {
            let span = match next {
                Next::Done => return Ok(None),
                Next::Within(span) => span,
                Next::Start => match archive.serial_span(&f).await? {
                    Some(span) => span,
                    None => return Ok(None),
                },
            };
            let page = archive.page_within(&f, span, PAGE_ROWS).await?;
            let Some(last) = page.last().map(|r| r.serial) else {
                return Ok(None);
            };
            // `last` came from the database: it fits.
            let after = i64::try_from(last).unwrap_or(i64::MAX);
            let next = if page.len() == PAGE_ROWS && after < span.upto {
                Next::Within(SerialSpan { after, ..span })
            } else {
                Next::Done
            };
            Ok(Some((page, (archive, f, next))))
        })
    }

    /// Up to `rows` tokens matching `f` with serials above `after`, in serial order: one short
    /// read of its own. A listing or an export that held one read open for its whole run would
    /// keep SQLite from starting its WAL over meanwhile (the authority's WAL would grow for as
    /// long as a slow reader takes); pages release it between reads.
    pub async fn matching_page(
        &self,
        f: &TokenFilter,
        after: Option<u64>,
        rows: usize,
    ) -> Result<Vec<TokenRecord>, ArchiveError> {
        // Stored serials are 1 ..= i64::MAX (`db_serial`): nothing comes after a serial above
        // i64::MAX.
        let Ok(after) = i64::try_from(after.unwrap_or(0)) else {
            return Ok(Vec::new());
        };
        let span = SerialSpan {
            after,
            ..SerialSpan::ALL
        };
        self.page_within(f, span, rows).await
    }

    /// Up to `rows` tokens matching `f` with serials in `span`, in serial order.
    async fn page_within(
        &self,
        f: &TokenFilter,
        span: SerialSpan,
        rows: usize,
    ) -> Result<Vec<TokenRecord>, ArchiveError> {
        let sql = matching_page_sql(f);
        let limit = i64::try_from(rows).unwrap_or(i64::MAX);
        let found: Vec<TokenColumns> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(f.from_ms)
                .bind(f.to_ms)
                .bind(f.signer_cert_sha256.as_deref())
                .bind(span.after)
                .bind(limit)
                .bind(span.upto)
                .fetch_all(pool)
                .await
        })
        .map_err(ArchiveError::database("reading tokens"))?;
        found.into_iter().map(token_record).collect()
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
            checkpoints: self.inner.stats.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting tokens, lets the writer commit and answer everything already queued,
    /// then closes the pool. Later calls on any clone fail with [`ArchiveError::Closed`] or a
    /// database error; closing twice is harmless.
    ///
    /// Bounded by the commit timeout plus one second: the writer gets the commit timeout to
    /// drain (a commit under way is bounded by it; tokens queued while the archive cannot write
    /// are refused at once), then is stopped, and the pool gets a second to close. Callers
    /// still waiting are refused, never granted.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.shutdown.notify_one();
        let writer = self.inner.writer.lock().await.take();
        if let Some(mut writer) = writer {
            let drain = self.inner.commit_timeout;
            match tokio::time::timeout(drain, &mut writer).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "archive writer task failed"),
                Err(_) => {
                    tracing::error!(
                        ?drain,
                        "archive writer did not drain in time; queued tokens are refused"
                    );
                    writer.abort();
                }
            }
        }
        let closed = on_pool!(&self.inner.backend, pool => {
            tokio::time::timeout(Duration::from_secs(1), pool.close()).await
        });
        if closed.is_err() {
            tracing::warn!("archive connections did not close in time");
        }
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

    /// The same failure for another caller of the same batch.
    fn shared(&self) -> ArchiveError {
        match self {
            Self::Commit { tokens, source } => Self::Commit {
                tokens: *tokens,
                source: Arc::clone(source),
            },
            Self::TimedOut { after, .. } => Self::TimedOut {
                after: *after,
                source: None,
            },
            Self::Unavailable { reason } => Self::Unavailable {
                reason: reason.clone(),
            },
            other => Self::Unavailable {
                reason: other.to_string(),
            },
        }
    }

    /// Whether the failure is the archive's state (the database cannot write or answer),
    /// as opposed to one record or a misuse: the request may succeed on another node or later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Database { .. }
                | Self::Commit { .. }
                | Self::Unavailable { .. }
                | Self::TimedOut { .. }
                | Self::Closed
                | Self::WriterStopped { .. }
        )
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

async fn connect_sqlite(
    url: &str,
    opts: &ArchiveOptions,
    (wal, stats): (Arc<WalSignals>, Arc<Stats>),
) -> Result<SqlitePool, ArchiveError> {
    let connect = |source| ArchiveError::Connect {
        backend: "sqlite",
        source,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(connect)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        // Bounded well inside the commit timeout, so a lock held elsewhere fails the commit
        // rather than the request's deadline.
        .busy_timeout(opts.commit_timeout / 2)
        // Checkpoints run in the background (see `checkpoint_sqlite`), not inside a commit,
        // where their fsync of the database file would stall every reply of that batch.
        .pragma("wal_autocheckpoint", "0")
        // What the WAL is cut back to when it starts over: above a second's worth at full load
        // (~90 MB here), so that it is overwritten in place, not cut and extended again each
        // second (that truncation, in the writer's commit, made the slowest requests 2-3 times
        // slower: BENCHMARKS.md, "Fourth slice").
        .pragma("journal_size_limit", "268435456");
    // The file is created here, once, and never again by the pool: a connection opened after
    // the file was removed must fail, not start a new, empty archive whose serial counter
    // begins again at 1 (the pool opens connections whenever it likes, and the writer and the
    // serial reservation reconnect after errors).
    use sqlx::ConnectOptions;
    let first = options.clone().create_if_missing(true).connect().await;
    sqlx::Connection::close(first.map_err(connect)?)
        .await
        .map_err(connect)?;
    let filename = options.get_filename().to_owned();
    let pool = SqlitePoolOptions::new()
        .max_connections(opts.max_connections.max(2))
        .connect_with(options.create_if_missing(false))
        .await
        .map_err(connect)?;
    // A reader for an operator (`migrate: false`) writes nothing and runs no checkpoints: the
    // server's checkpointer copies the WAL, and a read-only copy would refuse every round.
    if opts.migrate {
        // The checkpointer's own handle on the database file, to sync what it copied (see
        // `checkpoint_sqlite`); none for an in-memory database.
        let database_file = std::fs::File::open(filename).ok().map(Arc::new);
        tokio::spawn(checkpoint_sqlite(pool.clone(), database_file, wal, stats));
    }
    Ok(pool)
}

/// Takes an exclusive lock on `<database file>.open-lock` for the caller to hold while it opens
/// the file and applies or checks the schema; `None` for an in-memory database.
///
/// SQLite has no migration lock of its own (sqlx's is a no-op there), and two processes
/// opening a new file at once race twice: to switch it to WAL (SQLite answers the loser with
/// SQLITE_BUSY at once, without waiting out the busy timeout) and to apply each migration (the
/// loser re-runs a non-idempotent `ALTER TABLE` and fails: seen in CI with the two-node serial
/// test). The lock is `flock` on a file of its own: SQLite's own POSIX locks on the database
/// are released when any descriptor of that file closes in the process, so the database file
/// itself must not be opened for this. The lock file stays (removing it would race).
async fn sqlite_open_lock(url: &str) -> Result<Option<std::fs::File>, ArchiveError> {
    let connect = |source| ArchiveError::Connect {
        backend: "sqlite",
        source,
    };
    let options = SqliteConnectOptions::from_str(url).map_err(connect)?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || url.contains("mode=memory")
    {
        return Ok(None);
    }
    let mut lock_path = path.as_os_str().to_os_string();
    lock_path.push(".open-lock");
    let lock = move || -> std::io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok(file)
    };
    match tokio::task::spawn_blocking(lock).await {
        Ok(Ok(file)) => Ok(Some(file)),
        Ok(Err(e)) => Err(connect(sqlx::Error::Io(e))),
        Err(e) => Err(connect(sqlx::Error::Io(std::io::Error::other(e)))),
    }
}

/// Copies the WAL into the database file as far as it can without waiting for anyone.
const WAL_CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";
/// A PASSIVE checkpoint short enough that what the writer added during it is a few frames.
const SHORT_CHECKPOINT: Duration = Duration::from_millis(2);
/// Most checkpoints in a row per tick, waiting for a short one.
const CHECKPOINT_ROUNDS: usize = 4;
/// How often the checkpointer copies the WAL into the database file and syncs it, while the
/// writer commits.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(20);
/// How often, at most, the writer copies the WAL's last frames so that it starts over.
const WAL_RESTART_INTERVAL: Duration = Duration::from_secs(1);

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] (PASSIVE: never blocks
/// the writer) and syncs what it copied, so that no checkpoint ever runs inside a commit, and
/// lets the writer start the WAL over at most once every [`WAL_RESTART_INTERVAL`]. Once it has
/// copied everything, it sleeps until the writer's next commit (`wal.committed`): an idle
/// authority runs no checkpoints (other writes, a serial block's reservation or the CA's rows,
/// stay in the WAL until the round after the next commit).
///
/// A PASSIVE checkpoint copies the frames that were in the WAL when it began; under a steady
/// load the writer commits during every one, SQLite can never start the WAL from its beginning
/// again (it does so only when every frame has been copied), and the WAL grew without end (660
/// MB after 12 s at 16 connections), every commit appending to it: an fdatasync that extends a
/// file also commits the file system's journal (0.21 ms against 0.12 for an overwrite, here).
/// So the checkpoint is repeated, each round copying what came in during the one before, until
/// one copies every frame it saw, alone (no other checkpoint running), in under
/// [`SHORT_CHECKPOINT`]; then `wal.tail` asks the writer to copy the last few
/// frames itself between two batches (see `Writer::checkpoint_tail`), after which its next
/// commit starts the WAL over and overwrites it in place.
///
/// SQLite syncs the database file after a checkpoint only when it copied up to the WAL's end,
/// which under load is mostly the writer's tail (now and then a round that caught up): every
/// page the rounds before had copied was still unwritten in the page cache, and that one sync
/// wrote them all, a second's worth, on the writer's thread or beside its commit (80-112 ms
/// once a second while every request waited; BENCHMARKS.md, "Tenth slice").
/// So the checkpointer syncs `database` itself after each round that copied, a tick's pages at
/// a time. That sync is for latency only: durability rests on SQLite's own
/// syncs, unchanged (the WAL starts over only after a checkpoint that reached its end and
/// synced the database file).
///
/// The ticks are short because a round still slows the commit beside it (it copies pages on
/// the other core, and SQLite syncs the WAL before copying), the more the larger the round:
/// those commits were the slowest requests. Every 100 ms, p99 at 16 connections was 3.7-4.0
/// ms; every 20 ms, 2.2-2.5 ms, at the same tokens/s (BENCHMARKS.md, "Eleventh slice"). Ends
/// with the pool.
async fn checkpoint_sqlite(
    pool: SqlitePool,
    database: Option<Arc<std::fs::File>>,
    wal: Arc<WalSignals>,
    stats: Arc<Stats>,
) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_restart = std::time::Instant::now();
    // Frames copied as the previous round reported them (SQLite's count since the WAL began).
    let mut copied_before = 0;
    let (mut checkpoints, mut syncs) = (FailureSpell::default(), FailureSpell::default());
    'ticks: loop {
        tick.tick().await;
        for _ in 0..CHECKPOINT_ROUNDS {
            if pool.is_closed() {
                break 'ticks;
            }
            let started = std::time::Instant::now();
            // (busy, frames in the WAL, frames copied): busy when another checkpoint ran.
            let (busy, frames, copied): (i64, i64, i64) = match sqlx::query_as(WAL_CHECKPOINT)
                .fetch_one(&pool)
                .await
            {
                Ok(done) => {
                    if checkpoints.succeeded() {
                        tracing::info!("WAL checkpoints succeed again");
                    }
                    done
                }
                Err(error) => {
                    if pool.is_closed() {
                        break 'ticks;
                    }
                    if checkpoints.failed() {
                        tracing::warn!(%error, "WAL checkpoint failed (logged again after one succeeds)");
                    }
                    continue 'ticks;
                }
            };
            stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("tsa_archive_checkpoints_total").increment(1);
            let short = started.elapsed() < SHORT_CHECKPOINT;
            let idle = busy == 0 && frames == copied && copied == copied_before;
            if copied != copied_before {
                copied_before = copied;
                if let Some(file) = &database {
                    let file = Arc::clone(file);
                    let synced = tokio::task::spawn_blocking(move || file.sync_data())
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|synced| synced);
                    match synced {
                        Ok(()) => {
                            if syncs.succeeded() {
                                tracing::info!("syncing the archive's database file works again");
                            }
                        }
                        Err(error) => {
                            if syncs.failed() {
                                tracing::warn!(%error, "syncing the archive's database file after a checkpoint failed (SQLite's own syncs still keep every token)");
                            }
                        }
                    }
                }
            }
            if idle {
                // Everything was copied already and nothing came since: wait for a commit (or
                // for the pool to close). A commit since the last wait left its wake-up behind.
                tokio::select! {
                    () = wal.committed.notified() => {}
                    () = pool.close_event() => break 'ticks,
                }
                tick.reset();
                break;
            }
            if busy == 0 && frames == copied && short {
                if last_restart.elapsed() >= WAL_RESTART_INTERVAL {
                    last_restart = std::time::Instant::now();
                    wal.tail.notify_one();
                }
                break;
            }
        }
    }
}

/// A run of failures of something retried many times a second, logged once when it starts (and
/// once when it ends) rather than at every try.
#[derive(Debug, Default)]
struct FailureSpell {
    failing: bool,
}

impl FailureSpell {
    /// Records a failure; whether it starts a spell.
    fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.failing, true)
    }

    /// Records a success; whether it ends a spell.
    fn succeeded(&mut self) -> bool {
        std::mem::replace(&mut self.failing, false)
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
        let migrator = Migrator::with_migrations(
            (1..)
                .zip(MIGRATIONS.iter().zip(schema))
                .map(|(version, (name, sql))| {
                    Migration::new(
                        version,
                        Cow::Borrowed(name),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect(),
        );
        // SQLite: the caller holds the open lock (`sqlite_open_lock`); PostgreSQL: sqlx takes an
        // advisory lock.
        let result = on_pool!(self, pool => migrator.run(pool).await);
        result.map_err(|source| ArchiveError::Migrate { source })
    }

    /// Refuses a database whose schema lacks this binary's migrations (for readers that must not
    /// migrate it themselves).
    async fn check_current(&self) -> Result<(), ArchiveError> {
        let applied: Result<i64, sqlx::Error> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
        });
        match applied {
            Ok(n) if usize::try_from(n).is_ok_and(|n| n >= MIGRATIONS.len()) => Ok(()),
            Ok(n) => Err(ArchiveError::SchemaBehind {
                applied: n,
                expected: MIGRATIONS.len(),
            }),
            Err(e) => Err(ArchiveError::database("reading the schema version")(e)),
        }
    }

    /// `BEGIN IMMEDIATE` takes SQLite's write lock at once, so the wait for it comes before any
    /// work, within the busy timeout.
    fn begin_sql(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "BEGIN IMMEDIATE",
            Self::Postgres(_) => "BEGIN",
        }
    }
}

// After `on_pool!`, which it uses.
mod ca_store;
pub use ca_store::{
    CaCertificate, CertState, CodeLimits, CodeProblem, CrlState, EnrolmentCode, Issuance,
    Transaction,
};

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ca_store_tests;
