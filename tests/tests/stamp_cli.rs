//! The `stamp` CLI end to end against a real `tsa serve`: `stamp file` writes replies that
//! openssl and `stamp verify` accept, `stamp inspect` reads them, and a reply that does not
//! answer the request (someone else's token, a replayed nonce) is refused before anything is
//! written.

use sigillum_tests::{
    CannedServer, Run, TsaOptions, TsaServer, openssl, read_file, stamp, write_file,
};
use std::path::Path;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn verify_with_openssl(dir: &Path, data: &Path, tsr: &Path, root: &Path) -> Run {
    // stamp writes the whole TimeStampResp; accept a bare token too, as openssl does with -token_in.
    let bytes = read_file(tsr);
    let mut args = vec![
        "ts",
        "-verify",
        "-data",
        p(data),
        "-in",
        p(tsr),
        "-CAfile",
        p(root),
    ];
    if !pki::tsp::is_response(&bytes) {
        args.push("-token_in");
    }
    openssl(dir, &args)
}

#[test]
fn stamp_file_writes_replies_that_openssl_and_stamp_verify() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let a = write_file(dir, "a.txt", b"first file\n");
    let b = write_file(dir, "b.pdf", b"%PDF-1.7 not really\n");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    stamp(
        dir,
        &[
            "file",
            p(&a),
            p(&b),
            "--tsa",
            &server.url(),
            "--out",
            p(&out),
        ],
    )
    .assert_ok();
    let root = server.root_pem();
    for (data, tsr) in [(&a, out.join("a.txt.tsr")), (&b, out.join("b.pdf.tsr"))] {
        assert!(tsr.is_file(), "{} written", tsr.display());
        let v = verify_with_openssl(dir, data, &tsr, &root);
        assert!(v.stdout.contains("Verification: OK"), "{v}");
        stamp(
            dir,
            &["verify", p(data), "--trust", p(&root), "--token", p(&tsr)],
        )
        .assert_code(0);
        let json = stamp(
            dir,
            &[
                "verify",
                p(data),
                "--trust",
                p(&root),
                "--token",
                p(&tsr),
                "--json",
            ],
        );
        json.assert_code(0);
        let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON report");
        assert_eq!(
            report["verified"],
            serde_json::Value::Bool(true),
            "{report}"
        );
        let inspect = stamp(dir, &["inspect", p(&tsr)]);
        inspect.assert_ok();
        let token = pki::token::ParsedToken::parse(&read_file(&tsr)).expect("token");
        let info = token.info();
        assert!(
            inspect.stdout.contains(&info.policy),
            "inspect shows the policy: {inspect}"
        );
        assert!(
            inspect.stdout.to_lowercase().contains(&info.serial_hex)
                || info
                    .serial
                    .as_deref()
                    .is_some_and(|s| inspect.stdout.contains(s)),
            "inspect shows the serial: {inspect}"
        );
    }
    // The other file does not match a's token.
    stamp(
        dir,
        &[
            "verify",
            p(&b),
            "--trust",
            p(&root),
            "--token",
            p(&out.join("a.txt.tsr")),
        ],
    )
    .assert_code(1);
}

#[test]
fn stamp_file_without_out_writes_beside_and_verify_finds_it() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let f = write_file(dir, "report.pdf", b"report body\n");
    for hash in ["sha256", "sha384", "sha512"] {
        stamp(
            dir,
            &[
                "file",
                p(&f),
                "--tsa",
                &server.url(),
                "--hash",
                hash,
                "--force",
            ],
        )
        .assert_ok();
        let tsr = dir.join("report.pdf.tsr");
        assert!(tsr.is_file());
        let token = pki::token::ParsedToken::parse(&read_file(&tsr)).expect("token");
        assert_eq!(token.info().hash_algorithm, hash);
        stamp(dir, &["verify", p(&f), "--trust", p(&server.root_pem())]).assert_code(0);
    }
    // Change one byte of the data: not verified.
    write_file(dir, "report.pdf", b"report bodY\n");
    stamp(dir, &["verify", p(&f), "--trust", p(&server.root_pem())]).assert_code(1);
    // No token anywhere: a usage/I-O error, not a verdict.
    let lonely = write_file(dir, "lonely.txt", b"never stamped");
    stamp(
        dir,
        &["verify", p(&lonely), "--trust", p(&server.root_pem())],
    )
    .assert_code(2);
}

#[test]
fn stamp_file_refuses_a_reply_for_other_data() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    // A genuine, valid reply, but for other data.
    let other = sigillum_tests::der::ReqSpec::sha256(b"other data").encode();
    let reply = server.post_query(&other);
    sigillum_tests::granted_token(&reply);
    let fake = CannedServer::start(200, "application/timestamp-reply", reply.body, 4);
    let f = write_file(dir, "mine.txt", b"my data");
    let run = stamp(dir, &["file", p(&f), "--tsa", &fake.url()]);
    assert!(!run.ok(), "a reply for other data was accepted: {run}");
    assert!(
        !dir.join("mine.txt.tsr").exists(),
        "nothing may be written for a bad reply"
    );
}

#[test]
fn stamp_file_refuses_a_replayed_nonce() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let f = write_file(dir, "mine.txt", b"my data");
    // A genuine reply for the same data, but to an earlier request with another nonce.
    let spec = sigillum_tests::der::ReqSpec {
        imprint: pki::HashAlg::Sha256.digest(b"my data"),
        nonce: Some(vec![0x42; 8]),
        ..sigillum_tests::der::ReqSpec::sha256(b"")
    };
    let reply = server.post_query(&spec.encode());
    sigillum_tests::granted_token(&reply);
    let fake = CannedServer::start(200, "application/timestamp-reply", reply.body, 4);
    let run = stamp(dir, &["file", p(&f), "--tsa", &fake.url()]);
    assert!(
        !run.ok(),
        "a replayed reply (wrong nonce) was accepted: {run}"
    );
    assert!(
        !dir.join("mine.txt.tsr").exists(),
        "nothing may be written for a bad reply"
    );
}

#[test]
fn stamp_file_reports_a_rejection_and_writes_nothing() {
    // A server that cannot issue (unsynchronised clock, no opt-in) or, if this machine's clock is
    // synchronised, one that refuses the hash: either way a rejection.
    let clock_synced = sysclock::status().is_ok_and(|s| s.synchronized);
    let config = if clock_synced {
        "allow_unsynced_clock = false\n[policy]\ndefault = \"1.2.3.4.1\"\nhash_algorithms = [\"sha512\"]\n"
    } else {
        "allow_unsynced_clock = false\n"
    };
    let server = TsaServer::start_with(TsaOptions {
        config: Some(config.into()),
        allow_unhealthy: true,
        ..TsaOptions::default()
    });
    let dir = server.work_dir();
    let f = write_file(dir, "f.txt", b"data");
    let run = stamp(
        dir,
        &["file", p(&f), "--tsa", &server.url(), "--hash", "sha256"],
    );
    assert_eq!(
        run.code,
        Some(1),
        "a rejection is 'not verified' (exit 1): {run}"
    );
    assert!(!dir.join("f.txt.tsr").exists());
    // An authority that is not there: an I/O error.
    let nobody = format!("http://127.0.0.1:{}/", sigillum_tests::free_port());
    let run = stamp(dir, &["file", p(&f), "--tsa", &nobody]);
    assert_eq!(run.code, Some(2), "unreachable authority: {run}");
    assert!(!dir.join("f.txt.tsr").exists());
}

#[test]
fn stamp_verify_usage_errors_exit_2() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let f = write_file(dir, "f.txt", b"data");
    stamp(dir, &["file", p(&f), "--tsa", &server.url()]).assert_ok();
    let tsr = dir.join("f.txt.tsr");
    stamp(
        dir,
        &[
            "verify",
            p(&f),
            "--trust",
            p(&dir.join("nope.pem")),
            "--token",
            p(&tsr),
        ],
    )
    .assert_code(2);
    stamp(
        dir,
        &[
            "verify",
            p(&dir.join("nope.txt")),
            "--trust",
            p(&server.root_pem()),
            "--token",
            p(&tsr),
        ],
    )
    .assert_code(2);
    stamp(dir, &["verify", "--bogus-flag"]).assert_code(2);
    stamp(dir, &["inspect", p(&dir.join("nope.tsr"))]).assert_code(2);
}

#[test]
fn stamp_verify_at_checks_a_token_s_path_at_that_moment_and_says_it_is_not_proven() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let f = write_file(dir, "minutes.txt", b"minutes\n");
    stamp(dir, &["file", p(&f), "--tsa", &server.url()]).assert_ok();
    let root = server.root_pem();
    let verify = |at: &str| {
        let run = stamp(
            dir,
            &["verify", p(&f), "--trust", p(&root), "--at", at, "--json"],
        );
        let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json report");
        let path = json["signatures"][0]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == "certificate-path")
            .expect("certificate-path")
            .clone();
        (run, path)
    };
    // Today, inside the development certificates' life: verified, marked as not proven.
    let today = pki::gentime::unix_rfc3339(pki::gentime::unix_now());
    let (run, path) = verify(&today);
    run.assert_ok();
    assert!(
        path["detail"]
            .as_str()
            .unwrap_or("")
            .contains("given with --at (not proven)"),
        "{run}"
    );
    // Long after the TSA certificate expired (5 years): not verified.
    let (run, path) = verify("2045-01-01T00:00:00Z");
    run.assert_code(1);
    assert_eq!(path["outcome"], "failed", "{run}");
    // `claimed` leaves a token at its genTime.
    let (run, path) = verify("claimed");
    run.assert_ok();
    assert!(
        path["detail"].as_str().unwrap_or("").contains("at genTime"),
        "{run}"
    );
    // Not a time: a usage error.
    stamp(
        dir,
        &["verify", p(&f), "--trust", p(&root), "--at", "yesterday"],
    )
    .assert_code(2);
}

#[test]
fn stamp_file_stamps_many_files_at_once_and_prints_them_in_input_order() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let names: Vec<String> = (0..120)
        .map(|i| {
            let f = write_file(
                dir,
                &format!("f{i:03}.txt"),
                format!("file {i}\n").as_bytes(),
            );
            p(&f).to_owned()
        })
        .collect();
    let url = server.url();
    let out = dir.join("tokens");
    let mut args = vec!["file", "--tsa", &url, "--jobs", "16", "--out", p(&out)];
    args.extend(names.iter().map(String::as_str));
    let run = stamp(dir, &args);
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 120, "{run}");
    let mut serials = std::collections::HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&names[i]),
            "line {i} is not f{i:03}.txt's: {line}"
        );
        let serial = line.rsplit("serial 0x").next().expect("serial");
        assert!(serials.insert(serial.to_owned()), "serial repeated: {line}");
    }
    // Each token is for its own file (a sample; all 120 exist).
    let root = server.root_pem();
    for i in [0, 37, 119] {
        let token = out.join(format!("f{i:03}.txt.tsr"));
        stamp(
            dir,
            &[
                "verify",
                &names[i],
                "--token",
                p(&token),
                "--trust",
                p(&root),
            ],
        )
        .assert_code(0);
    }
    assert_eq!(std::fs::read_dir(&out).expect("out").count(), 120);
    // A second run refuses before any request: the outputs exist.
    let again = stamp(dir, &args);
    again.assert_code(2);
    assert!(again.stderr.contains("exists; pass --force"), "{again}");
}
