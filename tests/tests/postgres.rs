//! Several stateless `tsa serve` nodes sharing one PostgreSQL archive: concurrent requests to
//! every node never get the same serial, and the archive holds exactly the tokens that were
//! answered, byte for byte.
//!
//! Each test creates a fresh database on the server named by `TSA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`, the database used for administration; a URL
//! without a database gets `/test`) with `psql`, and drops it afterwards. An unreachable
//! PostgreSQL fails the test with the reason: it is never skipped. scripts/test.sh installs and
//! starts PostgreSQL.

use sigillum_tests::der::ReqSpec;
use sigillum_tests::{TsaOptions, TsaServer, run, tsa_bin};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The admin URL, with `/test` added when it names no database.
fn admin_url() -> String {
    let url = std::env::var("TSA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
    let (base, query) = url
        .split_once('?')
        .map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = if base[after_scheme..].contains('/') {
        base.to_owned()
    } else {
        format!("{base}/test")
    };
    match query {
        Some(q) => format!("{base}?{q}"),
        None => base,
    }
}

/// The admin URL with its database swapped for `db`.
fn url_for(db: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let slash = after_scheme
        + base[after_scheme..]
            .find('/')
            .expect("admin URL has a database");
    let url = format!("{}/{db}", &base[..slash]);
    match query {
        Some(q) => format!("{url}?{q}"),
        None => url,
    }
}

/// Runs one SQL statement with psql; returns its unaligned, tuples-only output.
fn psql(url: &str, sql: &str) -> String {
    let out = run(Command::new("psql").args([
        "-X",
        "-w",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        url,
        "-c",
        sql,
    ]));
    assert!(
        out.ok(),
        "PostgreSQL is needed for this test and `psql` failed on {url}. Start PostgreSQL (scripts/test.sh \
         does) or set TSA_TEST_POSTGRES_URL to a server where this user may CREATE DATABASE.\n{out}"
    );
    out.stdout
}

/// A fresh database, dropped on Drop.
struct FreshDb {
    name: String,
    url: String,
}

impl FreshDb {
    fn create(tag: &str) -> FreshDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("sigillum_it_{tag}_{}_{nanos}", std::process::id());
        psql(&admin_url(), &format!("CREATE DATABASE {name}"));
        FreshDb {
            url: url_for(&name),
            name,
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let _ = run(Command::new("psql").args([
            "-X",
            "-w",
            "-q",
            "-d",
            &admin_url(),
            "-c",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ]));
    }
}

fn node(db: &FreshDb, data_dir: &Path, config: &str) -> TsaServer {
    // Nodes of one CA share its enrolment key (a production configuration on PostgreSQL must
    // name it).
    let config = format!(
        "{config}
[ca]
enrolment_key = \"{}\"
",
        data_dir.join("enrolment.key").display()
    );
    TsaServer::start_with(TsaOptions {
        config: Some(config),
        database_url: Some(db.url.clone()),
        data_dir: Some(data_dir.to_path_buf()),
        allow_unhealthy: false,
        env: Vec::new(),
    })
}

/// Sends `per_thread` requests from each of `threads` threads to every URL at once; returns
/// (serial hex, token DER) for every granted reply.
fn hammer(urls: &[String], threads: usize, per_thread: usize) -> Vec<(String, Vec<u8>)> {
    let handles: Vec<_> = urls
        .iter()
        .enumerate()
        .flat_map(|(n, url)| {
            (0..threads).map(move |t| {
                let url = url.clone();
                std::thread::spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let spec = ReqSpec::sha256(
                                format!("node {n} thread {t} request {i}").as_bytes(),
                            );
                            let reply = sigillum_tests::post(
                                &url,
                                "application/timestamp-query",
                                &spec.encode(),
                            );
                            let token = sigillum_tests::granted_token(&reply);
                            (token.info().serial_hex, token.der)
                        })
                        .collect::<Vec<_>>()
                })
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect()
}

/// Checks serial uniqueness and that the archive holds exactly `issued`, byte for byte.
fn assert_archive_matches(db: &FreshDb, issued: &[(String, Vec<u8>)]) {
    let serials: HashSet<&String> = issued.iter().map(|(s, _)| s).collect();
    assert_eq!(
        serials.len(),
        issued.len(),
        "a serial was issued twice across nodes"
    );
    let count: usize = psql(&db.url, "SELECT count(*) FROM tokens")
        .trim()
        .parse()
        .expect("count");
    assert_eq!(count, issued.len(), "archive rows vs tokens answered");
    let archived = pg_tokens(db);
    for (serial_hex, der) in issued {
        let serial = u64::from_str_radix(serial_hex, 16).expect("serial fits u64");
        let row = archived
            .get(&serial)
            .unwrap_or_else(|| panic!("serial {serial} answered but not archived"));
        assert!(
            row == der,
            "archived token {serial} differs from the one answered"
        );
    }
}

/// Every token of the archive in `db`, read with psql: serial -> DER.
fn pg_tokens(db: &FreshDb) -> HashMap<u64, Vec<u8>> {
    psql(&db.url, "SELECT serial, encode(token, 'hex') FROM tokens")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (serial, token) = l.split_once('|').expect("serial|token");
            (
                serial.parse().expect("serial"),
                hex::decode(token).expect("hex"),
            )
        })
        .collect()
}

#[test]
fn two_nodes_share_one_archive_without_repeating_a_serial() {
    let db = FreshDb::create("two");
    let shared = tempfile::tempdir().expect("tempdir");
    let config = "allow_unsynced_clock = true\n";
    // The first node creates the development PKI in the shared data dir; the second reuses it,
    // as stateless nodes behind a load balancer share one key.
    let a = node(&db, shared.path(), config);
    let b = node(&db, shared.path(), config);
    let issued = hammer(&[a.url(), b.url()], 4, 40);
    assert_eq!(issued.len(), 320);
    assert_archive_matches(&db, &issued);
    a.assert_healthy();
    b.assert_healthy();
}

#[test]
fn small_serial_blocks_interleave_across_nodes_and_restarts() {
    // serial_block = 3 makes the nodes go back to the database every few tokens, so blocks
    // from the two nodes interleave; a restart throws away the rest of a block, never reuses it.
    let db = FreshDb::create("blocks");
    let shared = tempfile::tempdir().expect("tempdir");
    let config = "allow_unsynced_clock = true\n[archive]\nserial_block = 3\nmax_batch = 8\n";
    let mut a = node(&db, shared.path(), config);
    let b = node(&db, shared.path(), config);
    let mut issued = hammer(&[a.url(), b.url()], 3, 20);
    a.restart();
    issued.extend(hammer(&[a.url(), b.url()], 3, 20));
    assert_eq!(issued.len(), 240);
    assert_archive_matches(&db, &issued);
}

#[test]
fn two_nodes_starting_together_on_a_fresh_database() {
    // Two replicas of a deployment start at the same moment against an empty database: both
    // apply the schema at once and both must come up.
    let db = FreshDb::create("race");
    let shared = tempfile::tempdir().expect("tempdir");
    let init = run(Command::new(tsa_bin())
        .args(["init", "--data-dir"])
        .arg(shared.path()));
    init.assert_ok();
    let config = "allow_unsynced_clock = true\n";
    let (a, b) = std::thread::scope(|s| {
        let ta = s.spawn(|| node(&db, shared.path(), config));
        let tb = s.spawn(|| node(&db, shared.path(), config));
        (ta.join().expect("node a"), tb.join().expect("node b"))
    });
    let issued = hammer(&[a.url(), b.url()], 2, 10);
    assert_archive_matches(&db, &issued);
}

#[test]
fn one_of_two_nodes_killed_again_and_again_under_load_loses_nothing() {
    // Both nodes are under load; one is SIGKILLed four times and restarted. Every token any
    // client received is in the shared archive, serials never repeat across the nodes, and
    // each incarnation of the killed node continues above its earlier serials and genTime.
    use sigillum_tests::load::{self, Load, Target};
    let db = FreshDb::create("kills");
    let shared = tempfile::tempdir().expect("tempdir");
    let config = "allow_unsynced_clock = true\n";
    let mut a = node(&db, shared.path(), config);
    let b = node(&db, shared.path(), config);
    let (ta, tb) = (Target::new(a.url()), Target::new(b.url()));
    let load = Load::start(&[ta.clone(), tb], 3);
    let received =
        load::kill_under_load(load, &mut a, &ta, 4, std::time::Duration::from_millis(400));
    assert!(
        received.iter().any(|r| r.node == 1),
        "the node that was never killed answered nothing"
    );
    load::assert_received_archived(&received, &pg_tokens(&db));
    b.assert_healthy();
}

#[test]
fn losing_the_database_is_system_failure_never_an_unarchived_token() {
    // Our own fault, not the client's: HTTP 503 with Retry-After (another node may answer)
    // and a DER systemFailure, /healthz 503, and no token handed out that the archive does not
    // hold.
    let db = FreshDb::create("loss");
    let shared = tempfile::tempdir().expect("tempdir");
    let server = node(&db, shared.path(), "allow_unsynced_clock = true\n");
    let first = hammer(&[server.url()], 1, 3);
    assert_archive_matches(&db, &first);
    psql(
        &admin_url(),
        &format!("DROP DATABASE {} WITH (FORCE)", db.name),
    );
    let reply = server.post_query(&ReqSpec::sha256(b"after the database is gone").encode());
    assert_eq!(
        reply.status,
        503,
        "HTTP status with the archive gone: {}",
        reply.text()
    );
    assert_eq!(reply.retry_after.as_deref(), Some("1"), "Retry-After");
    let parsed = pki::tsp::parse_response(&reply.body).expect("a DER TimeStampResp even now");
    assert_eq!(parsed.status, pki::asn1::PkiStatus::Rejection, "{parsed:?}");
    assert_eq!(
        parsed.fail_info,
        vec![pki::asn1::FailureInfo::SystemFailure],
        "{parsed:?}"
    );
    assert!(parsed.token.is_none());
    assert_eq!(
        server.healthz(),
        503,
        "/healthz must report the archive unreachable"
    );
}

#[test]
fn a_node_recovers_after_its_database_connections_are_killed() {
    // A PostgreSQL restart or failover drops every connection. Requests in that moment may
    // fail (with systemFailure), but the node must come back by itself, and every token it
    // did answer must be in the archive.
    let db = FreshDb::create("blip");
    let shared = tempfile::tempdir().expect("tempdir");
    let server = node(&db, shared.path(), "allow_unsynced_clock = true\n");
    let mut issued = hammer(&[server.url()], 1, 3);
    psql(
        &admin_url(),
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
            db.name
        ),
    );
    let mut failures = 0;
    let mut granted_after = 0;
    for i in 0..40 {
        let reply =
            server.post_query(&ReqSpec::sha256(format!("after the blip {i}").as_bytes()).encode());
        let parsed = pki::tsp::parse_response(&reply.body).expect("DER reply");
        if parsed.status == pki::asn1::PkiStatus::Granted {
            let token = sigillum_tests::granted_token(&reply);
            issued.push((token.info().serial_hex, token.der));
            granted_after += 1;
            if granted_after >= 5 {
                break;
            }
        } else {
            assert_eq!(reply.status, 503, "{parsed:?}");
            assert_eq!(
                parsed.fail_info,
                vec![pki::asn1::FailureInfo::SystemFailure],
                "{parsed:?}"
            );
            failures += 1;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    eprintln!("{failures} request(s) failed while the connections were re-established");
    assert_eq!(
        granted_after,
        5,
        "the node never recovered after {failures} failures:\n{}",
        server.log()
    );
    assert_archive_matches(&db, &issued);
    server.assert_healthy();
}

/// Runs `openssl cmp` with `args` against `node`'s CMP endpoint, its replies checked against
/// the shared root; returns the combined output.
fn cmp(node: &TsaServer, dir: &Path, args: &[&str]) -> String {
    let server = format!("127.0.0.1:{}", node.port());
    let root = node.root_pem();
    let mut all = vec![
        "cmp",
        "-server",
        &server,
        "-path",
        "/.well-known/cmp",
        "-srvcert",
        root.to_str().unwrap_or_default(),
        "-msg_timeout",
        "10",
        "-total_timeout",
        "20",
    ];
    all.extend_from_slice(args);
    let out = sigillum_tests::openssl(dir, &all);
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn two_nodes_serve_one_ca_enrolment_codes_directory_revocation_ocsp_and_crl() {
    let db = FreshDb::create("ca");
    let shared = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let config = "allow_unsynced_clock = true\n";
    let a = node(&db, shared.path(), config);
    let b = node(&db, shared.path(), config);
    // An operator's code, made against the shared database.
    let code = run(Command::new(sigillum_tests::tsa_bin()).args([
        "enroll-code",
        "--data-dir",
        shared.path().to_str().unwrap_or_default(),
        "--database-url",
        &db.url,
        "--email",
        "erin@bank.example",
    ]));
    code.assert_ok();
    let field = |k: &str| {
        code.stdout
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {k} in {}", code.stdout))
            .to_owned()
    };
    let (reference, secret) = (field("reference:"), format!("pass:{}", field("secret:")));
    sigillum_tests::openssl_ca::new_key(w, "ec", "k.pem");
    // Enrolled on node A...
    let out = cmp(
        &a,
        w,
        &[
            "-cmd", "ir", "-ref", &reference, "-secret", &secret, "-newkey", "k.pem", "-subject",
            "/CN=Erin", "-certout", "erin.pem",
        ],
    );
    assert!(out.contains("received PKICONF"), "{out}\n{}", a.log());
    // ...the code is spent on node B too...
    let out = cmp(
        &b,
        w,
        &[
            "-cmd",
            "ir",
            "-ref",
            &reference,
            "-secret",
            &secret,
            "-newkey",
            "k.pem",
            "-subject",
            "/CN=Erin",
            "-certout",
            "again.pem",
        ],
    );
    assert!(
        out.contains("notAuthorized") && out.contains("already used"),
        "{out}"
    );
    // ...node B's directory serves the certificate...
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let dir_b = format!("{}directory/erin@bank.example", b.url());
    let mut r = agent.get(&dir_b).call().expect("directory");
    assert_eq!(r.status().as_u16(), 200);
    let pem = r.body_mut().read_to_string().expect("pem");
    let issued = std::fs::read_to_string(w.join("erin.pem")).expect("erin.pem");
    assert!(pem.contains(issued.lines().nth(1).unwrap_or("?")), "{pem}");
    // ...node B revokes it (signed by its own key)...
    let out = cmp(
        &b,
        w,
        &[
            "-cmd", "rr", "-cert", "erin.pem", "-key", "k.pem", "-oldcert", "erin.pem",
        ],
    );
    assert!(out.contains("received RP"), "{out}\n{}", b.log());
    // ...and node A knows at once: OCSP, CRL and directory.
    let root = a.root_pem();
    let ocsp_url = format!("{}ocsp", a.url());
    let out = sigillum_tests::openssl(
        w,
        &[
            "ocsp",
            "-issuer",
            root.to_str().unwrap_or_default(),
            "-cert",
            "erin.pem",
            "-url",
            &ocsp_url,
            "-CAfile",
            root.to_str().unwrap_or_default(),
        ],
    );
    assert!(
        out.stdout.contains("erin.pem: revoked") && out.stderr.contains("Response verify OK"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let mut crl = agent.get(format!("{}crl", a.url())).call().expect("crl");
    let crl = crl.body_mut().read_to_vec().expect("crl body");
    std::fs::write(w.join("crl.der"), &crl).expect("write crl");
    let listed = sigillum_tests::openssl(
        w,
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    let serial = sigillum_tests::openssl(w, &["x509", "-in", "erin.pem", "-noout", "-serial"]);
    let serial = serial
        .stdout
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    assert!(
        listed.stdout.contains(&serial),
        "{serial} not in\n{}",
        listed.stdout
    );
    let r = agent
        .get(format!("{}directory/erin@bank.example", a.url()))
        .call()
        .expect("directory");
    assert_eq!(r.status().as_u16(), 404);
    // Every CA row is in the one database.
    assert_eq!(
        psql(
            &db.url,
            "SELECT count(*) FROM ca_certificates WHERE revoked_at IS NOT NULL"
        )
        .trim(),
        "1"
    );
}

#[test]
fn two_nodes_export_every_token_of_the_shared_archive_and_stamp_verifies_them() {
    let db = FreshDb::create("export");
    let shared = tempfile::tempdir().expect("tempdir");
    let config = "allow_unsynced_clock = true\n";
    let a = node(&db, shared.path(), config);
    let b = node(&db, shared.path(), config);
    let issued = hammer(&[a.url(), b.url()], 2, 15);
    assert_eq!(issued.len(), 60);
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    run(Command::new(tsa_bin())
        .current_dir(w)
        .args([
            "archive",
            "export",
            "--database-url",
            &db.url,
            "-o",
            "month.tar",
        ])
        .env_remove("TSA_CONFIG"))
    .assert_ok();
    let root = a.root_pem();
    let v = sigillum_tests::stamp(
        w,
        &[
            "verify",
            "--archive",
            "month.tar",
            "--trust",
            root.to_str().unwrap_or_default(),
        ],
    );
    v.assert_ok();
    assert!(
        v.stdout.contains("60 tokens, 60 verified, 0 failed"),
        "{}",
        v.stdout
    );
    // Every token a client received is in the export, byte for byte.
    run(Command::new("tar").current_dir(w).args(["xf", "month.tar"])).assert_ok();
    for (serial, der) in &issued {
        let name = format!("{}.tst", serial.trim_start_matches('0'));
        let exported = std::fs::read(w.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&exported, der, "{name}");
    }
}
