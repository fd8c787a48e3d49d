//! Serials never repeat and genTime never goes back across restarts: the archive, not memory,
//! is the source of truth. The server is killed with SIGKILL (no graceful shutdown, as in a
//! crash or an OOM kill), so whatever it had not committed is lost; every token it answered
//! must still count.

use sigillum_tests::der::ReqSpec;
use sigillum_tests::{TsaOptions, TsaServer, run};
use std::collections::HashSet;
use std::process::Command;

/// Issues `n` tokens one after another; returns (serial hex, genTime in ms) in issue order.
fn issue(server: &TsaServer, n: usize, round: usize) -> Vec<(String, i64)> {
    (0..n)
        .map(|i| {
            let spec = ReqSpec::sha256(format!("round {round} token {i}").as_bytes());
            let token = sigillum_tests::granted_token(&server.post_query(&spec.encode()));
            (token.info().serial_hex, token.gen_time().to_unix_millis())
        })
        .collect()
}

fn assert_unique_and_monotonic(all: &[(String, i64)]) {
    let mut seen = HashSet::new();
    for (serial, _) in all {
        assert!(
            seen.insert(serial.clone()),
            "serial {serial} issued twice: {all:?}"
        );
    }
    for pair in all.windows(2) {
        assert!(
            pair[1].1 >= pair[0].1,
            "genTime went back: {} then {} ({all:?})",
            pair[0].1,
            pair[1].1
        );
    }
}

#[test]
fn no_serial_repeats_and_gen_time_never_goes_back_across_kills() {
    let mut server = TsaServer::start();
    let root_before = std::fs::read(server.root_pem()).expect("root.pem");
    let mut all = Vec::new();
    for round in 0..4 {
        if round > 0 {
            server.restart();
        }
        all.extend(issue(&server, 25, round));
        assert_unique_and_monotonic(&all);
    }
    // The restarted server kept its PKI (a new root would orphan every token issued).
    assert_eq!(
        std::fs::read(server.root_pem()).expect("root.pem"),
        root_before,
        "the dev PKI was recreated"
    );
    assert_eq!(all.len(), 100);
}

#[test]
fn concurrent_requests_then_kill_then_more_never_reuse_a_serial() {
    let mut server = TsaServer::start();
    let mut all: Vec<String> = Vec::new();
    for round in 0..3 {
        if round > 0 {
            server.restart();
        }
        let url = server.url();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let url = url.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            let spec = ReqSpec::sha256(format!("{round}/{t}/{i}").as_bytes());
                            let reply = sigillum_tests::post(
                                &url,
                                "application/timestamp-query",
                                &spec.encode(),
                            );
                            sigillum_tests::granted_token(&reply).info().serial_hex
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            all.extend(t.join().expect("client thread"));
        }
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a serial was issued twice across restarts"
    );
    assert_eq!(all.len(), 300);
}

#[test]
fn a_restart_right_after_a_token_keeps_that_token_archived() {
    // The reply leaves only after the archive has the token: kill immediately after a reply
    // and the next server must continue after that serial, not reissue it.
    let mut server = TsaServer::start();
    let mut all = Vec::new();
    for round in 0..5 {
        if round > 0 {
            server.restart();
        }
        all.extend(issue(&server, 1, round));
    }
    assert_unique_and_monotonic(&all);
}

#[test]
fn sigterm_shuts_down_cleanly_and_the_next_start_continues() {
    let mut server = TsaServer::start();
    let mut all = issue(&server, 10, 0);
    let status = server.terminate();
    assert!(
        status.success(),
        "tsa exited with {status} on SIGTERM:\n{}",
        server.log()
    );
    server.restart();
    all.extend(issue(&server, 10, 1));
    assert_unique_and_monotonic(&all);
}

/// libfaketime, which scripts/test.sh installs (Debian package `faketime`), in the
/// multiarch directory of this machine.
fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib").ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("faketime").join("libfaketimeMT.so.1"))
            .find(|p| p.is_file())
    });
    let path = found.unwrap_or_else(|| {
        panic!("libfaketimeMT.so.1 not found under /usr/lib/*/faketime: `apt-get install faketime` (scripts/test.sh installs it)")
    });
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn gen_time_never_goes_back_when_the_clock_does() {
    // A node ran with its clock an hour fast, then restarts with the right time: it must not
    // issue a genTime earlier than the last one in the archive (timeNotAvailable instead), and
    // /healthz must say it cannot issue so that a load balancer sends clients elsewhere.
    let data = tempfile::tempdir().expect("tempdir");
    // The PKI is made at the real time (a certificate made an hour in the future would not be
    // valid yet after the restart).
    run(Command::new(sigillum_tests::tsa_bin())
        .args(["init", "--data-dir"])
        .arg(data.path()))
    .assert_ok();
    let fast = vec![
        ("LD_PRELOAD".to_owned(), libfaketime()),
        ("FAKETIME".to_owned(), "+1h".to_owned()),
        ("DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
    ];
    let mut server = TsaServer::start_with(TsaOptions {
        data_dir: Some(data.path().to_path_buf()),
        env: fast,
        ..TsaOptions::default()
    });
    let ahead = issue(&server, 3, 0);
    let real_now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits i64");
    let last = ahead.iter().map(|(_, t)| *t).max().expect("three tokens");
    assert!(
        last > real_now_ms + 50 * 60 * 1000,
        "libfaketime did not move the server's clock: {last} vs {real_now_ms}"
    );

    server.options_mut().env.clear();
    server.options_mut().allow_unhealthy = true;
    server.restart();
    let reply = server.post_query(&ReqSpec::sha256(b"after the clock went back").encode());
    let parsed = pki::tsp::parse_response(&reply.body).expect("DER reply");
    assert_ne!(
        parsed.status,
        pki::asn1::PkiStatus::Granted,
        "a token dated before the last one was issued: {parsed:?}"
    );
    assert_eq!(reply.status, 503, "{parsed:?}");
    assert_eq!(
        parsed.fail_info,
        vec![pki::asn1::FailureInfo::TimeNotAvailable],
        "{parsed:?}"
    );
    let health = sigillum_tests::get(&format!("{}healthz", server.url()));
    assert_eq!(
        health.status,
        503,
        "/healthz says the node can issue while it refuses every request (clock behind the last genTime): {}",
        health.text()
    );
}

#[test]
fn killed_again_and_again_under_load_every_received_token_is_archived() {
    // Clients keep requesting while the node is SIGKILLed five times: requests in flight are
    // cut, but every token a client did receive must be in the archive, and each incarnation
    // must continue above the last one's serials and genTime.
    use sigillum_tests::load::{self, Load, Target};
    let mut server = TsaServer::start();
    let target = Target::new(server.url());
    let load = Load::start(std::slice::from_ref(&target), 4);
    let received = load::kill_under_load(
        load,
        &mut server,
        &target,
        5,
        std::time::Duration::from_millis(400),
    );
    let archived = load::sqlite_tokens(&server.data_dir().join("archive.db"));
    load::assert_received_archived(&received, &archived);
}
