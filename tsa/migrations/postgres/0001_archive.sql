-- Sigillum token archive, PostgreSQL flavour (several nodes share one database).
-- Applied by tsa::archive at connect; the SQLite flavour lives in ../sqlite/.

-- Every token the authority issued, kept for audit (ETSI EN 319 421: serial, genTime and
-- imprint of every token, so that tokens affected by a key compromise can be found).
CREATE TABLE IF NOT EXISTS tokens (
    serial      BIGINT PRIMARY KEY CHECK (serial > 0),
    gen_time_ms BIGINT NOT NULL,
    policy      TEXT   NOT NULL,
    hash_alg    TEXT   NOT NULL,
    imprint     BYTEA  NOT NULL,
    token       BYTEA  NOT NULL
);

CREATE INDEX IF NOT EXISTS tokens_gen_time_ms ON tokens (gen_time_ms);

-- One row: the first serial not yet handed out in a block. Every node reserves its blocks by
-- moving it forward in one UPDATE; the row lock orders concurrent nodes, so blocks never overlap.
CREATE TABLE IF NOT EXISTS serial_counter (
    id          SMALLINT PRIMARY KEY CHECK (id = 1),
    next_serial BIGINT   NOT NULL CHECK (next_serial > 0)
);

INSERT INTO serial_counter (id, next_serial) VALUES (1, 1) ON CONFLICT (id) DO NOTHING;
