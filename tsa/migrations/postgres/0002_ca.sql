-- Sigillum CA state, PostgreSQL flavour: issued certificates, revocations, enrolment codes, CMP
-- transactions and nonces. Applied by tsa::archive at connect after 0001_archive.sql; the
-- PostgreSQL flavour, shared by every node; the SQLite flavour lives in ../sqlite/.

-- Every certificate the CA issued. state: 'pending' (awaiting certConf), 'active', or
-- 'rejected' (the requester refused it in certConf, or never confirmed it; listed as revoked).
-- parent_serial: the certificate whose signature authorised this one (cr, p10cr, kur), so a
-- key compromise revokes what the key obtained too.
CREATE TABLE IF NOT EXISTS ca_certificates (
    serial            BYTEA    PRIMARY KEY,
    email             TEXT    NOT NULL,
    usage             TEXT    NOT NULL CHECK (usage IN ('signing', 'encryption')),
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    cert              BYTEA    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'rejected')),
    issued_at         BIGINT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason BIGINT,
    parent_serial     BYTEA
);

CREATE INDEX IF NOT EXISTS ca_certificates_email ON ca_certificates (email);
CREATE INDEX IF NOT EXISTS ca_certificates_revoked ON ca_certificates (revoked_at);
CREATE INDEX IF NOT EXISTS ca_certificates_parent ON ca_certificates (parent_serial);
CREATE INDEX IF NOT EXISTS ca_certificates_pending ON ca_certificates (state, issued_at);

-- One-time enrolment codes (proof of control of an address). The secret is never stored: it
-- is derived from the reference with the CA's enrolment key, and only its SHA-256 is kept.
CREATE TABLE IF NOT EXISTS ca_enrolment_codes (
    reference   TEXT    PRIMARY KEY,
    email       TEXT    NOT NULL,
    secret_hash BYTEA    NOT NULL,
    client      TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE INDEX IF NOT EXISTS ca_enrolment_codes_email ON ca_enrolment_codes (email, created_at);
CREATE INDEX IF NOT EXISTS ca_enrolment_codes_client ON ca_enrolment_codes (client, created_at);

-- CMP transactions: a transactionID is used once; an open one awaits its certConf.
CREATE TABLE IF NOT EXISTS ca_transactions (
    transaction_id BYTEA    PRIMARY KEY,
    created_at     BIGINT NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('open', 'closed')),
    cert_serial    BYTEA,
    reply_nonce    BYTEA,
    reference      TEXT,
    signer_serial  BYTEA
);

-- Every senderNonce seen, so that a replayed message is refused.
CREATE TABLE IF NOT EXISTS ca_nonces (
    nonce   BYTEA    PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS ca_nonces_seen ON ca_nonces (seen_at);

-- One row: the CRL number and the current CRL (regenerated on revocation and before
-- nextUpdate; `revision` moves on every revocation, so every node sees a stale CRL at once).
CREATE TABLE IF NOT EXISTS ca_crl (
    id          SMALLINT PRIMARY KEY CHECK (id = 1),
    number      BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    crl_revision BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    crl         BYTEA
);

INSERT INTO ca_crl (id, number, revision, crl_revision, next_update) VALUES (1, 0, 1, 0, 0) ON CONFLICT (id) DO NOTHING;
