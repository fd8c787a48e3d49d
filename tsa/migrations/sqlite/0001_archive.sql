-- Sigillum token archive, SQLite flavour (embedded, single node).
-- Applied by tsa::archive at connect; the PostgreSQL flavour lives in ../postgres/.

-- Every token the authority issued, kept for audit (ETSI EN 319 421: serial, genTime and
-- imprint of every token, so that tokens affected by a key compromise can be found).
-- `INTEGER PRIMARY KEY` is SQLite's 64-bit rowid: the same range as BIGINT, without a second
-- index. STRICT makes SQLite refuse values of the wrong type instead of coercing them.
CREATE TABLE IF NOT EXISTS tokens (
    serial      INTEGER PRIMARY KEY CHECK (serial > 0),
    gen_time_ms INTEGER NOT NULL,
    policy      TEXT    NOT NULL,
    hash_alg    TEXT    NOT NULL,
    imprint     BLOB    NOT NULL,
    token       BLOB    NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS tokens_gen_time_ms ON tokens (gen_time_ms);

-- One row: the first serial not yet handed out in a block. Blocks are reserved by moving it
-- forward in one UPDATE, so serials never repeat across restarts.
CREATE TABLE IF NOT EXISTS serial_counter (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    next_serial INTEGER NOT NULL CHECK (next_serial > 0)
) STRICT;

INSERT OR IGNORE INTO serial_counter (id, next_serial) VALUES (1, 1);
