-- Sigillum CA state, SQLite flavour: issued certificates, revocations, enrolment codes, CMP
-- transactions and nonces. Applied by tsa::archive at connect after 0001_archive.sql; the
-- PostgreSQL flavour lives in ../postgres/.

-- Every certificate the CA issued. state: 'pending' (awaiting certConf), 'active', or
-- 'rejected' (the requester refused it in certConf, or never confirmed it; listed as revoked).
-- parent_serial: the certificate whose signature authorised this one (cr, p10cr, kur), so a
-- key compromise revokes what the key obtained too.
CREATE TABLE IF NOT EXISTS ca_certificates (
    serial            BLOB    PRIMARY KEY,
    email             TEXT    NOT NULL,
    usage             TEXT    NOT NULL CHECK (usage IN ('signing', 'encryption')),
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    cert              BLOB    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'rejected')),
    issued_at         INTEGER NOT NULL,
    revoked_at        INTEGER,
    revocation_reason INTEGER,
    parent_serial     BLOB
) STRICT;

CREATE INDEX IF NOT EXISTS ca_certificates_email ON ca_certificates (email);
CREATE INDEX IF NOT EXISTS ca_certificates_revoked ON ca_certificates (revoked_at);
CREATE INDEX IF NOT EXISTS ca_certificates_parent ON ca_certificates (parent_serial);
CREATE INDEX IF NOT EXISTS ca_certificates_pending ON ca_certificates (state, issued_at);

-- One-time enrolment codes (proof of control of an address). The secret is never stored: it
-- is derived from the reference with the CA's enrolment key, and only its SHA-256 is kept.
CREATE TABLE IF NOT EXISTS ca_enrolment_codes (
    reference   TEXT    PRIMARY KEY,
    email       TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL,
    client      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

CREATE INDEX IF NOT EXISTS ca_enrolment_codes_email ON ca_enrolment_codes (email, created_at);
CREATE INDEX IF NOT EXISTS ca_enrolment_codes_client ON ca_enrolment_codes (client, created_at);

-- CMP transactions: a transactionID is used once; an open one awaits its certConf.
CREATE TABLE IF NOT EXISTS ca_transactions (
    transaction_id BLOB    PRIMARY KEY,
    created_at     INTEGER NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('open', 'closed')),
    cert_serial    BLOB,
    reply_nonce    BLOB,
    reference      TEXT,
    signer_serial  BLOB
) STRICT;

-- Every senderNonce seen, so that a replayed message is refused.
CREATE TABLE IF NOT EXISTS ca_nonces (
    nonce   BLOB    PRIMARY KEY,
    seen_at INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS ca_nonces_seen ON ca_nonces (seen_at);

-- One row: the CRL number and the current CRL (regenerated on revocation and before
-- nextUpdate; `revision` moves on every revocation, so every node sees a stale CRL at once).
CREATE TABLE IF NOT EXISTS ca_crl (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    number      INTEGER NOT NULL,
    revision    INTEGER NOT NULL,
    crl_revision INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    crl         BLOB
) STRICT;

INSERT OR IGNORE INTO ca_crl (id, number, revision, crl_revision, next_update) VALUES (1, 0, 1, 0, 0);
