//! Bulk signing for banks: `stamp email sign --in-dir/--out-dir` and `--mbox/--out-mbox` sign
//! every statement, a bad one fails alone (named, exit 1) without touching the others, a rerun
//! does only what is left, and every output verifies.

use pki::smime::{EmailVerifyOptions, verify_message};
use sigillum_tests::mail::{MailPki, statement};
use sigillum_tests::{TsaServer, read_file, stamp, write_file};
use std::path::Path;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn options(server: &TsaServer, ca: &Path) -> EmailVerifyOptions {
    EmailVerifyOptions {
        trust: pki::cert::load_certificates(&read_file(ca)).expect("ca"),
        tsa_trust: Some(
            pki::cert::load_certificates(&read_file(&server.root_pem())).expect("root"),
        ),
        ..EmailVerifyOptions::default()
    }
}

#[test]
fn a_directory_is_signed_concurrently_failures_stand_alone_and_reruns_skip_what_is_done() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = MailPki::new(dir, "bank");
    let alice = pki.person("alice@example.com", "ec");
    let inbox = dir.join("in");
    let outbox = dir.join("out");
    std::fs::create_dir_all(&inbox).expect("mkdir");
    for n in 0..24 {
        write_file(
            &inbox,
            &format!("{n:03}.eml"),
            &statement("alice@example.com", n),
        );
    }
    write_file(&inbox, "broken.eml", b"\x00\x01 this is no message\n");
    let args = [
        "email",
        "sign",
        "--in-dir",
        p(&inbox),
        "--out-dir",
        p(&outbox),
        "--key",
        p(&alice.key),
        "--cert",
        p(&alice.cert),
        "--tsa",
        &server.url(),
        "--jobs",
        "6",
        "--json",
    ];
    let run = stamp(dir, &args);
    run.assert_code(1);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect("json summary");
    assert_eq!(summary["signed"], 24, "{run}");
    assert_eq!(summary["skipped"], 0, "{run}");
    let failed = summary["failed"].as_array().expect("failed");
    assert_eq!(failed.len(), 1, "{run}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap_or("")
            .ends_with("broken.eml"),
        "{run}"
    );
    assert!(
        !outbox.join("broken.eml").exists(),
        "no output for a failure"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&outbox)
        .expect("out")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
    let opts = options(&server, &pki.ca);
    for n in 0..24 {
        let name = format!("{n:03}.eml");
        let r = verify_message(&name, &read_file(&outbox.join(&name)), &opts);
        assert!(r.verified, "{name}: {r:#?}");
    }

    // `stamp verify` of many messages (on every core) reports them in input order; one
    // unsigned input among them fails alone.
    let mut files: Vec<String> = (0..24)
        .map(|n| outbox.join(format!("{n:03}.eml")).display().to_string())
        .collect();
    files.insert(7, inbox.join("005.eml").display().to_string());
    let mut verify: Vec<&str> = vec!["verify"];
    verify.extend(files.iter().map(String::as_str));
    let ca = pki.ca.display().to_string();
    let tsa_root = server.root_pem().display().to_string();
    verify.extend(["--trust", &ca, "--tsa-trust", &tsa_root, "--json"]);
    let run = stamp(dir, &verify);
    run.assert_code(1);
    let reports: serde_json::Value = serde_json::from_str(&run.stdout).expect("json reports");
    let reports = reports.as_array().expect("an array");
    assert_eq!(reports.len(), files.len(), "{run}");
    for (r, f) in reports.iter().zip(&files) {
        assert_eq!(r["source"].as_str(), Some(f.as_str()), "input order");
        assert_eq!(r["verified"], !f.contains("/in/"), "{f}: {r}");
    }

    // A rerun signs nothing again and still names the failure.
    let before = read_file(&outbox.join("000.eml"));
    let run = stamp(dir, &args);
    run.assert_code(1);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect("json summary");
    assert_eq!(summary["signed"], 0, "{run}");
    assert_eq!(summary["skipped"], 24, "{run}");
    assert_eq!(
        read_file(&outbox.join("000.eml")),
        before,
        "outputs untouched"
    );

    // Without the broken input, the human summary line and exit 0.
    std::fs::remove_file(inbox.join("broken.eml")).expect("rm");
    write_file(&inbox, "new.eml", &statement("alice@example.com", 99));
    let mut human: Vec<&str> = args.to_vec();
    human.pop();
    let run = stamp(dir, &human);
    run.assert_ok();
    assert!(
        run.stdout.contains("signed 1, skipped 24, failed 0"),
        "{run}"
    );
}

#[test]
fn an_mbox_is_signed_in_order_and_a_rerun_skips_messages_already_signed() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = MailPki::new(dir, "bank");
    let alice = pki.person("alice@example.com", "rsa");
    let mut mbox = Vec::new();
    for n in 0..7 {
        pki::smime::mbox::append(
            &mut mbox,
            &statement("alice@example.com", n),
            "bank@example.com",
            "Thu Dec  3 10:00:00 2026",
        );
    }
    let input = write_file(dir, "statements.mbox", &mbox);
    let output = dir.join("signed.mbox");
    let args = [
        "email",
        "sign",
        "--mbox",
        p(&input),
        "--out-mbox",
        p(&output),
        "--key",
        p(&alice.key),
        "--cert",
        p(&alice.cert),
        "--tsa",
        &server.url(),
        "--opaque",
    ];
    let run = stamp(dir, &args);
    run.assert_ok();
    assert!(
        run.stdout.contains("signed 7, skipped 0, failed 0"),
        "{run}"
    );
    let signed = pki::smime::mbox::read(&read_file(&output));
    assert_eq!(signed.len(), 7);
    let opts = options(&server, &pki.ca);
    for (n, m) in signed.iter().enumerate() {
        let r = verify_message("mbox", m, &opts);
        assert!(r.verified, "message {n}: {r:#?}");
        let id = pki::smime::mime::message_id(m).expect("Message-ID");
        assert_eq!(id, format!("statement-{n}@example.com"), "input order kept");
    }
    let run = stamp(dir, &args);
    run.assert_ok();
    assert!(
        run.stdout.contains("signed 0, skipped 7, failed 0"),
        "{run}"
    );
    assert_eq!(pki::smime::mbox::read(&read_file(&output)).len(), 7);
}
