//! Helpers shared by the archive and serial tests.
use std::hash::{BuildHasher, Hasher};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A `sqlite://` URL for a fresh file in `dir`.
pub(crate) fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("archive.db").display())
}

/// A fresh PostgreSQL database of its own for one test, so tests run in parallel.
pub(crate) struct PgTestDb {
    name: String,
    /// URL of the fresh database.
    pub(crate) url: String,
}

impl PgTestDb {
    /// Creates `sigillum_t_<random>` on the server named by `TSA_TEST_POSTGRES_URL`;
    /// panics (fails the test, never skips it) when the server cannot be reached.
    pub(crate) async fn create() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let name = format!("sigillum_t_{:016x}", hasher.finish());
        admin(&format!("CREATE DATABASE {name}")).await;
        // Swap the database name in the admin URL, keeping any query string.
        let admin_url = admin_url();
        let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
        let authority = base.find("://").map_or(0, |i| i + 3);
        let base = base[authority..]
            .find('/')
            .map_or(base, |i| &base[..authority + i]);
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let url = format!("{base}/{name}{query}");
        Self { name, url }
    }

    /// Drops the database, closing any connection still open to it.
    pub(crate) async fn drop_db(self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await;
    }
}

fn admin_url() -> String {
    std::env::var("TSA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn admin(sql: &str) {
    let url = admin_url();
    let mut conn = PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL tests need a server: cannot connect to {url} ({e}). Start one, or \
             set TSA_TEST_POSTGRES_URL to a server where this user may CREATE DATABASE."
        )
    });
    let done = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
    done.unwrap_or_else(|e| panic!("`{sql}` failed on {url}: {e}"));
    let _ = conn.close().await;
}

/// Runs each `async fn check(url: &str)` of the calling module twice, as `sqlite::check`
/// on a fresh SQLite file and as `postgres::check` on a fresh PostgreSQL database.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = tempfile::tempdir().expect("tempdir");
                super::$check(&$crate::archive::test_support::sqlite_url(&dir)).await;
            }
        )*}
        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let db = $crate::archive::test_support::PgTestDb::create().await;
                super::$check(&db.url).await;
                db.drop_db().await;
            }
        )*}
    };
}
pub(crate) use on_both_backends;

/// Opens the archive at `url` with default options, or fails the test.
pub(crate) async fn open(url: &str) -> super::Archive {
    let archive = super::Archive::connect(url, super::ArchiveOptions::default()).await;
    archive.unwrap_or_else(|e| panic!("cannot open archive {url}: {e:?}"))
}
