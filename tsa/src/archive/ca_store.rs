//! The CA's state in the archive database (migration `0002_ca.sql`): issued certificates and
//! their revocation, one-time enrolment codes, CMP transactions and nonces, and the CRL.
//! Everything lives in the database, so several nodes on one PostgreSQL serve the same CA;
//! every statement here suits both backends.

use super::{Archive, ArchiveError, Backend};

/// Where a certificate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertState {
    /// Issued, awaiting the requester's certConf.
    Pending,
    /// Confirmed (or implicitly confirmed): in the directory until revoked or expired.
    Active,
    /// Refused by the requester in certConf; listed as revoked.
    Rejected,
}

impl CertState {
    fn as_str(self) -> &'static str {
        match self {
            CertState::Pending => "pending",
            CertState::Active => "active",
            CertState::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Result<CertState, ArchiveError> {
        match s {
            "pending" => Ok(CertState::Pending),
            "active" => Ok(CertState::Active),
            "rejected" => Ok(CertState::Rejected),
            other => Err(ArchiveError::CorruptCa(format!(
                "certificate state {other:?}"
            ))),
        }
    }
}

/// An issued certificate.
#[derive(Clone, Debug)]
pub struct CaCertificate {
    /// Serial, big-endian magnitude.
    pub serial: Vec<u8>,
    /// The address it binds (lower case).
    pub email: String,
    /// `signing` or `encryption`.
    pub usage: String,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// The certificate, DER.
    pub cert: Vec<u8>,
    /// Pending, active or rejected.
    pub state: CertState,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// When it was revoked, Unix seconds.
    pub revoked_at: Option<i64>,
    /// The CRLReason code, when given.
    pub revocation_reason: Option<i64>,
    /// The certificate whose signature authorised this one (cr, p10cr, kur).
    pub parent_serial: Option<Vec<u8>>,
}

impl CaCertificate {
    /// Whether `now` (Unix seconds) is within the validity: notBefore through notAfter, both
    /// seconds included (RFC 5280 §4.1.2.5), as the directory's query counts them.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// How recording an issuance came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issuance {
    /// Transaction, certificate (and the code's use) committed together.
    Recorded,
    /// The transactionID was used before: nothing recorded.
    TransactionIdInUse,
    /// The enrolment code was spent (or expired) meanwhile: nothing recorded.
    CodeSpent,
}

/// A one-time enrolment code. The secret itself is not stored.
#[derive(Clone, Debug)]
pub struct EnrolmentCode {
    /// The reference (CMP senderKID).
    pub reference: String,
    /// The address it proves (lower case).
    pub email: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Who asked for it (client address, or `operator`).
    pub client: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; not accepted from then on.
    pub expires_at: i64,
    /// When an ir consumed it.
    pub used_at: Option<i64>,
}

/// A CMP transaction.
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    /// transactionID.
    pub transaction_id: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Awaiting certConf.
    pub open: bool,
    /// The certificate it issued.
    pub cert_serial: Option<Vec<u8>>,
    /// The senderNonce of our reply, which the certConf's recipNonce must repeat.
    pub reply_nonce: Option<Vec<u8>>,
    /// The enrolment code that authorised it (MAC protection).
    pub reference: Option<String>,
    /// The certificate that signed it (signature protection).
    pub signer_serial: Option<Vec<u8>>,
}

/// The enrolment-code limits for one address and one client.
#[derive(Clone, Copy, Debug)]
pub struct CodeLimits {
    /// Codes per address within `window`.
    pub per_email: i64,
    /// Codes per client within `window`.
    pub per_client: i64,
    /// Seconds.
    pub window: i64,
}

/// Refused by a rate limit: try again in `retry_after` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeProblem {
    /// Seconds until the oldest counted code leaves the window.
    pub retry_after: i64,
    /// `"address"` or `"client"`.
    pub limit: &'static str,
}

/// The CRL row.
#[derive(Clone, Debug)]
pub struct CrlState {
    /// The last CRL number handed out.
    pub number: i64,
    /// Moves on every revocation.
    pub revision: i64,
    /// The revision the stored CRL reflects.
    pub crl_revision: i64,
    /// The stored CRL's nextUpdate.
    pub next_update: i64,
    /// The stored CRL, DER.
    pub crl: Option<Vec<u8>>,
}

type CertRow = (
    Vec<u8>,
    String,
    String,
    i64,
    i64,
    Vec<u8>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<Vec<u8>>,
);

/// Marks the stored CRL stale: every revocation moves the revision, inside its own
/// transaction, so every node regenerates the CRL at once.
const CRL_STALE: &str = "UPDATE ca_crl SET revision = revision + 1 WHERE id = 1";

/// Serialises enrolment-code issuance across PostgreSQL nodes (a transaction-scoped advisory
/// lock; the key is arbitrary but fixed: "SIGC").
const CODE_LOCK: &str = "SELECT pg_advisory_xact_lock(1397311811)";

const CERT_COLUMNS: &str = "serial, email, usage, not_before, not_after, cert, state, \
     issued_at, revoked_at, revocation_reason, parent_serial";

fn cert_from_row(r: CertRow) -> Result<CaCertificate, ArchiveError> {
    Ok(CaCertificate {
        serial: r.0,
        email: r.1,
        usage: r.2,
        not_before: r.3,
        not_after: r.4,
        cert: r.5,
        state: CertState::parse(&r.6)?,
        issued_at: r.7,
        revoked_at: r.8,
        revocation_reason: r.9,
        parent_serial: r.10,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Archive {
    /// Stores a new enrolment code unless the address or the client has had `limits` codes
    /// within the window. Counting and inserting are one transaction that holds the write lock
    /// (SQLite `BEGIN IMMEDIATE`; a transaction-scoped advisory lock on PostgreSQL), so
    /// concurrent requests, on one node or several, cannot both slip under a limit.
    pub async fn insert_enrolment_code(
        &self,
        code: &EnrolmentCode,
        limits: CodeLimits,
    ) -> Result<Result<(), CodeProblem>, ArchiveError> {
        let since = code.created_at - limits.window;
        let begin = self.inner.backend.begin_sql();
        let lock = match &self.inner.backend {
            Backend::Postgres(_) => Some(CODE_LOCK),
            Backend::Sqlite(_) => None,
        };
        let outcome = on_pool!(&self.inner.backend, pool => {
            async {
                let mut tx = pool.begin_with(begin).await?;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                for (column, value, max, limit) in [
                    ("email", &code.email, limits.per_email, "address"),
                    ("client", &code.client, limits.per_client, "client"),
                ] {
                    let sql = format!(
                        "SELECT COUNT(*), MIN(created_at) FROM ca_enrolment_codes \
                         WHERE {column} = $1 AND created_at > $2"
                    );
                    let (count, oldest): (i64, Option<i64>) =
                        sqlx::query_as(sqlx::AssertSqlSafe(sql))
                            .bind(value)
                            .bind(since)
                            .fetch_one(&mut *tx)
                            .await?;
                    if count >= max {
                        let retry_after =
                            oldest.map_or(limits.window, |o| o + limits.window - code.created_at);
                        return Ok(Err(CodeProblem {
                            retry_after: retry_after.max(1),
                            limit,
                        }));
                    }
                }
                sqlx::query(
                    "INSERT INTO ca_enrolment_codes \
                     (reference, email, secret_hash, client, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&code.reference)
                .bind(&code.email)
                .bind(&code.secret_hash)
                .bind(&code.client)
                .bind(code.created_at)
                .bind(code.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(Ok(()))
            }
            .await
        })
        .map_err(ArchiveError::database("storing an enrolment code"))?;
        Ok(outcome)
    }

    /// The enrolment code with this reference.
    pub async fn enrolment_code(
        &self,
        reference: &str,
    ) -> Result<Option<EnrolmentCode>, ArchiveError> {
        type Row = (String, String, Vec<u8>, String, i64, i64, Option<i64>);
        let row: Option<Row> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(
                "SELECT reference, email, secret_hash, client, created_at, expires_at, used_at \
                 FROM ca_enrolment_codes WHERE reference = $1",
            )
            .bind(reference)
            .fetch_optional(pool)
            .await
        })
        .map_err(ArchiveError::database("reading an enrolment code"))?;
        Ok(row.map(|r| EnrolmentCode {
            reference: r.0,
            email: r.1,
            secret_hash: r.2,
            client: r.3,
            created_at: r.4,
            expires_at: r.5,
            used_at: r.6,
        }))
    }

    /// Marks the code used, if it was unused and unexpired at `now`; false when another
    /// request took it first (one use, also across nodes).
    pub async fn consume_enrolment_code(
        &self,
        reference: &str,
        now: i64,
    ) -> Result<bool, ArchiveError> {
        let done = on_pool!(&self.inner.backend, pool => {
            sqlx::query(
                "UPDATE ca_enrolment_codes SET used_at = $2 \
                 WHERE reference = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(reference)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(ArchiveError::database("consuming an enrolment code"))?;
        Ok(done == 1)
    }

    /// Records a senderNonce; false when it was seen before (a replay).
    pub async fn record_nonce(&self, nonce: &[u8], now: i64) -> Result<bool, ArchiveError> {
        let result = on_pool!(&self.inner.backend, pool => {
            sqlx::query("INSERT INTO ca_nonces (nonce, seen_at) VALUES ($1, $2)")
                .bind(nonce)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        });
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(ArchiveError::database("recording a nonce")(e)),
        }
    }

    /// Starts a transaction; false when its transactionID was used before.
    pub async fn open_transaction(&self, t: &Transaction) -> Result<bool, ArchiveError> {
        let result = on_pool!(&self.inner.backend, pool => {
            sqlx::query(
                "INSERT INTO ca_transactions (transaction_id, created_at, state, cert_serial, \
                 reply_nonce, reference, signer_serial) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&t.transaction_id)
            .bind(t.created_at)
            .bind(if t.open { "open" } else { "closed" })
            .bind(&t.cert_serial)
            .bind(&t.reply_nonce)
            .bind(&t.reference)
            .bind(&t.signer_serial)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        });
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(ArchiveError::database("opening a CMP transaction")(e)),
        }
    }

    /// The transaction with this ID.
    pub async fn transaction(&self, id: &[u8]) -> Result<Option<Transaction>, ArchiveError> {
        type Row = (
            Vec<u8>,
            i64,
            String,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<String>,
            Option<Vec<u8>>,
        );
        let row: Option<Row> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(
                "SELECT transaction_id, created_at, state, cert_serial, reply_nonce, reference, \
                 signer_serial FROM ca_transactions WHERE transaction_id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(ArchiveError::database("reading a CMP transaction"))?;
        Ok(row.map(|r| Transaction {
            transaction_id: r.0,
            created_at: r.1,
            open: r.2 == "open",
            cert_serial: r.3,
            reply_nonce: r.4,
            reference: r.5,
            signer_serial: r.6,
        }))
    }

    /// Closes an open transaction; false when it was not open (a second certConf).
    pub async fn close_transaction(&self, id: &[u8]) -> Result<bool, ArchiveError> {
        let n = on_pool!(&self.inner.backend, pool => {
            sqlx::query(
                "UPDATE ca_transactions SET state = 'closed' \
                 WHERE transaction_id = $1 AND state = 'open'",
            )
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(ArchiveError::database("closing a CMP transaction"))?;
        Ok(n == 1)
    }

    /// Records an issuance in one database transaction: the CMP transaction `t` (its
    /// transactionID used once), the use of the enrolment code `code` (unused and unexpired at
    /// `now`), and the certificate. Either all of it commits or none.
    pub async fn record_issuance(
        &self,
        t: &Transaction,
        code: Option<&str>,
        c: &CaCertificate,
        now: i64,
    ) -> Result<Issuance, ArchiveError> {
        let outcome = on_pool!(&self.inner.backend, pool => {
            async {
                let mut tx = pool.begin().await?;
                let opened = sqlx::query(
                    "INSERT INTO ca_transactions (transaction_id, created_at, state, cert_serial, \
                     reply_nonce, reference, signer_serial) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&t.transaction_id)
                .bind(t.created_at)
                .bind(if t.open { "open" } else { "closed" })
                .bind(&t.cert_serial)
                .bind(&t.reply_nonce)
                .bind(&t.reference)
                .bind(&t.signer_serial)
                .execute(&mut *tx)
                .await;
                match opened {
                    Err(e) if is_unique_violation(&e) => return Ok(Issuance::TransactionIdInUse),
                    other => other?,
                };
                if let Some(reference) = code {
                    let used = sqlx::query(
                        "UPDATE ca_enrolment_codes SET used_at = $2 \
                         WHERE reference = $1 AND used_at IS NULL AND expires_at > $2",
                    )
                    .bind(reference)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if used != 1 {
                        return Ok(Issuance::CodeSpent);
                    }
                }
                sqlx::query(
                    "INSERT INTO ca_certificates (serial, email, usage, not_before, not_after, \
                     cert, state, issued_at, revoked_at, revocation_reason, parent_serial) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&c.serial)
                .bind(&c.email)
                .bind(&c.usage)
                .bind(c.not_before)
                .bind(c.not_after)
                .bind(&c.cert)
                .bind(c.state.as_str())
                .bind(c.issued_at)
                .bind(c.revoked_at)
                .bind(c.revocation_reason)
                .bind(&c.parent_serial)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<Issuance, sqlx::Error>(Issuance::Recorded)
            }
            .await
        })
        .map_err(ArchiveError::database("recording an issuance"))?;
        Ok(outcome)
    }

    /// Moves a pending certificate to `state`.
    pub async fn confirm_certificate(
        &self,
        serial: &[u8],
        state: CertState,
    ) -> Result<(), ArchiveError> {
        on_pool!(&self.inner.backend, pool => {
            sqlx::query("UPDATE ca_certificates SET state = $2 WHERE serial = $1 AND state = 'pending'")
                .bind(serial)
                .bind(state.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(ArchiveError::database("confirming a certificate"))?;
        Ok(())
    }

    /// The certificate with this serial.
    pub async fn certificate(&self, serial: &[u8]) -> Result<Option<CaCertificate>, ArchiveError> {
        let sql = format!("SELECT {CERT_COLUMNS} FROM ca_certificates WHERE serial = $1");
        let row: Option<CertRow> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(serial).fetch_optional(pool).await
        })
        .map_err(ArchiveError::database("reading a certificate"))?;
        row.map(cert_from_row).transpose()
    }

    /// The address's active, unrevoked certificates valid at `now` (notBefore through notAfter,
    /// both included, as RFC 5280 §4.1.2.5 counts them), newest first.
    pub async fn directory(
        &self,
        email: &str,
        now: i64,
    ) -> Result<Vec<CaCertificate>, ArchiveError> {
        let sql = format!(
            "SELECT {CERT_COLUMNS} FROM ca_certificates WHERE email = $1 AND state = 'active' \
             AND revoked_at IS NULL AND not_before <= $2 AND not_after >= $2 \
             ORDER BY issued_at DESC"
        );
        let rows: Vec<CertRow> = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(email).bind(now).fetch_all(pool).await
        })
        .map_err(ArchiveError::database("reading the directory"))?;
        rows.into_iter().map(cert_from_row).collect()
    }

    /// Revokes a certificate at `at` and marks the CRL stale; on keyCompromise (1) also every
    /// certificate its key obtained (cr, p10cr, kur), transitively. Returns how many were
    /// revoked (0: it was already revoked or is unknown).
    pub async fn revoke_certificate(
        &self,
        serial: &[u8],
        at: i64,
        reason: Option<i64>,
    ) -> Result<u64, ArchiveError> {
        let n = on_pool!(&self.inner.backend, pool => {
            async {
                let mut tx = pool.begin().await?;
                let mut queue = vec![serial.to_vec()];
                let mut seen = std::collections::HashSet::new();
                let mut revoked = 0u64;
                while let Some(s) = queue.pop() {
                    if !seen.insert(s.clone()) {
                        continue;
                    }
                    let n = sqlx::query(
                        "UPDATE ca_certificates SET revoked_at = $2, revocation_reason = $3 \
                         WHERE serial = $1 AND revoked_at IS NULL",
                    )
                    .bind(&s)
                    .bind(at)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 0 && seen.len() == 1 {
                        // The certificate asked for was revoked already: nothing to follow.
                        break;
                    }
                    revoked += n;
                    if reason == Some(1) {
                        // Through revoked descendants too: what they obtained came from the
                        // compromised key as well.
                        let children: Vec<Vec<u8>> = sqlx::query_scalar(
                            "SELECT serial FROM ca_certificates WHERE parent_serial = $1",
                        )
                        .bind(&s)
                        .fetch_all(&mut *tx)
                        .await?;
                        queue.extend(children);
                    }
                }
                if revoked > 0 {
                    sqlx::query(CRL_STALE)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(revoked)
            }
            .await
        })
        .map_err(ArchiveError::database("revoking a certificate"))?;
        Ok(n)
    }

    /// Rejects certificates still awaiting their certConf that were issued before `before`
    /// (RFC 9483 §4.1.1: a missing confirmation is a rejection): listed as revoked
    /// (cessationOfOperation) at `now`. Returns how many.
    pub async fn expire_pending(&self, before: i64, now: i64) -> Result<u64, ArchiveError> {
        let n = on_pool!(&self.inner.backend, pool => {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE ca_certificates SET state = 'rejected', revoked_at = $2, \
                     revocation_reason = 5 \
                     WHERE state = 'pending' AND issued_at < $1 AND revoked_at IS NULL",
                )
                .bind(before)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE ca_transactions SET state = 'closed' \
                     WHERE state = 'open' AND created_at < $1",
                )
                .bind(before)
                .execute(&mut *tx)
                .await?;
                if n > 0 {
                    sqlx::query(CRL_STALE)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(n)
            }
            .await
        })
        .map_err(ArchiveError::database("expiring unconfirmed certificates"))?;
        Ok(n)
    }

    /// Every revoked certificate: serial, time, reason.
    pub async fn revoked_certificates(
        &self,
    ) -> Result<Vec<(Vec<u8>, i64, Option<i64>)>, ArchiveError> {
        let rows: Vec<(Vec<u8>, Option<i64>, Option<i64>)> =
            on_pool!(&self.inner.backend, pool => {
                sqlx::query_as(
                    "SELECT serial, revoked_at, revocation_reason FROM ca_certificates \
                     WHERE revoked_at IS NOT NULL ORDER BY revoked_at",
                )
                .fetch_all(pool)
                .await
            })
            .map_err(ArchiveError::database("listing revocations"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, at, r)| at.map(|at| (s, at, r)))
            .collect())
    }

    /// The CRL row.
    pub async fn crl_state(&self) -> Result<CrlState, ArchiveError> {
        let r: (i64, i64, i64, i64, Option<Vec<u8>>) = on_pool!(&self.inner.backend, pool => {
            sqlx::query_as(
                "SELECT number, revision, crl_revision, next_update, crl FROM ca_crl WHERE id = 1",
            )
            .fetch_one(pool)
            .await
        })
        .map_err(ArchiveError::database("reading the CRL state"))?;
        Ok(CrlState {
            number: r.0,
            revision: r.1,
            crl_revision: r.2,
            next_update: r.3,
            crl: r.4,
        })
    }

    /// Takes the next CRL number (never handed out twice, across nodes).
    pub async fn next_crl_number(&self) -> Result<i64, ArchiveError> {
        on_pool!(&self.inner.backend, pool => {
            sqlx::query_scalar("UPDATE ca_crl SET number = number + 1 WHERE id = 1 RETURNING number")
                .fetch_one(pool)
                .await
        })
        .map_err(ArchiveError::database("taking a CRL number"))
    }

    /// Stores a CRL built from `revision`, unless a newer one is stored already.
    pub async fn store_crl(
        &self,
        revision: i64,
        next_update: i64,
        crl: &[u8],
    ) -> Result<(), ArchiveError> {
        on_pool!(&self.inner.backend, pool => {
            sqlx::query(
                "UPDATE ca_crl SET crl_revision = $1, next_update = $2, crl = $3 \
                 WHERE id = 1 AND (crl_revision < $1 OR next_update < $2)",
            )
            .bind(revision)
            .bind(next_update)
            .bind(crl)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(ArchiveError::database("storing the CRL"))?;
        Ok(())
    }

    /// Forgets nonces older than `before` (a replay older than that fails on its
    /// transactionID or messageTime anyway).
    pub async fn prune_nonces(&self, before: i64) -> Result<(), ArchiveError> {
        on_pool!(&self.inner.backend, pool => {
            sqlx::query("DELETE FROM ca_nonces WHERE seen_at < $1").bind(before).execute(pool).await.map(|r| r.rows_affected())
        })
        .map_err(ArchiveError::database("pruning nonces"))?;
        Ok(())
    }
}
