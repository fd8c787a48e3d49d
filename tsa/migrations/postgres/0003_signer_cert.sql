-- Sigillum token archive: the SHA-256 of the certificate that signed each token, so that the
-- tokens affected by a key compromise can be listed (ETSI EN 319 421; `tsa archive list
-- --signer-cert FILE`). Rows archived before this migration have none.
ALTER TABLE tokens ADD COLUMN signer_cert_sha256 BYTEA;

CREATE INDEX IF NOT EXISTS tokens_signer_cert ON tokens (signer_cert_sha256);
