//! The PostgreSQL archive of a run: a fresh database per server run on the server named by
//! `--database-url`, made and dropped with `psql` (no database driver in the benchmark), so a
//! run starts from an empty schema like a SQLite run does, and no two runs share rows.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Databases made by this process so far (for unique names).
static MADE: AtomicUsize = AtomicUsize::new(0);

/// Runs one SQL command through `psql` on `url` and returns its unaligned, tuples-only output.
fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(url)
        .arg("-c")
        .arg(sql)
        .output();
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("psql is not installed; install it with `apt-get install postgresql-client`")
        }
        other => other.context("cannot run psql")?,
    };
    if !out.status.success() {
        bail!(
            "psql on {}: {}",
            redacted(url),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Checks before any work that `admin_url` answers and may create databases.
pub fn check(admin_url: &str) -> Result<()> {
    let can = psql(
        admin_url,
        "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .context(
        "cannot reach PostgreSQL at --database-url (is it running? `service postgresql start`)",
    )?;
    if can != "t" {
        bail!(
            "the user of {} may not CREATE DATABASE, which every run needs",
            redacted(admin_url)
        );
    }
    Ok(())
}

/// A database made for one run; dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct Database {
    admin_url: String,
    /// Its name.
    pub name: String,
    /// The URL the nodes use.
    pub url: String,
}

impl Database {
    /// Creates `tsa_bench_<pid>_<n>` on the server of `admin_url`.
    pub fn create(admin_url: &str) -> Result<Database> {
        let name = format!(
            "tsa_bench_{}_{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        psql(admin_url, &format!("CREATE DATABASE \"{name}\""))
            .with_context(|| format!("cannot create the database {name}"))?;
        Ok(Database {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    /// Rows in the archive's `tokens` table.
    pub fn count_rows(&self) -> Option<u64> {
        match psql(&self.url, "SELECT count(*) FROM tokens") {
            Ok(n) => n.parse().ok(),
            Err(e) => {
                eprintln!("tsa-bench: psql could not count: {e:#}");
                None
            }
        }
    }

    /// utime + stime of every server process connected to this database (one per pooled
    /// connection), by pid; `None` if the server is not on this machine (no such processes in
    /// /proc) or cannot be asked.
    pub fn backend_ticks(&self) -> Option<HashMap<u32, u64>> {
        let pids = psql(
            &self.admin_url,
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ),
        )
        .ok()?;
        let mut ticks = HashMap::new();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !comm.starts_with("postgres") {
                return None;
            }
            if let Some(t) = crate::server::cpu_ticks(&format!("/proc/{pid}/stat")) {
                ticks.insert(pid, t);
            }
        }
        Some(ticks)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        ) {
            eprintln!(
                "tsa-bench: could not drop the database {}: {e:#}",
                self.name
            );
        }
    }
}

/// CPU ticks the backends used between two [`Database::backend_ticks`] readings: backends
/// opened meanwhile count from zero; those closed meanwhile are lost (a pool keeps its
/// connections, so few if any).
pub fn ticks_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// `url` with its database (the path) replaced by `name`; user, host, port and parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(a, _)| a);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `url` without a password, for messages and the report.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &rest[userinfo.len() + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's URL differs from the admin URL in the database name only.
    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/test?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
        assert_eq!(with_database("postgres://h?a=b", "x"), "postgres://h/x?a=b");
    }

    /// Passwords never reach the report.
    #[test]
    fn password_is_hidden() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redacted("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
