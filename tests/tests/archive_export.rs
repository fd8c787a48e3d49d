//! `tsa archive export` and `stamp verify --archive`: the tokens of a running authority come
//! out as a tar that GNU tar lists and whose tokens `openssl ts -verify` accepts against their
//! files; `stamp verify --archive` verifies them all and names every token that was changed,
//! removed or misdescribed; periods and signing certificates select what is exported or listed.

use sigillum_tests::openssl_ca::path_str as p;
use sigillum_tests::{TsaServer, openssl, run, stamp, tsa_bin};
use std::path::Path;
use std::process::Command;

fn tsa(dir: &Path, args: &[&str]) -> sigillum_tests::Run {
    run(Command::new(tsa_bin())
        .current_dir(dir)
        .args(args)
        .env_remove("TSA_CONFIG")
        .env_remove("TSA_DATA_DIR")
        .env_remove("TSA_DATABASE_URL"))
}

fn python(script: &str, args: &[&str]) -> sigillum_tests::Run {
    run(Command::new("python3").arg("-c").arg(script).args(args))
}

#[test]
fn an_export_lists_in_tar_verifies_in_openssl_and_in_stamp_and_tampering_is_named() {
    let server = TsaServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let names: Vec<String> = (0..12).map(|i| format!("statement-{i}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        std::fs::write(d.join(n), format!("statement {i}\n")).expect("write");
    }
    let mut args = vec!["file", "--tsa"];
    let url = server.url();
    args.push(&url);
    args.extend(names.iter().map(String::as_str));
    stamp(d, &args).assert_ok();
    let data = server.data_dir().to_str().unwrap_or_default().to_owned();
    let root = server.root_pem();

    // The export, while the authority runs.
    tsa(
        d,
        &["archive", "export", "--data-dir", &data, "-o", "all.tar"],
    )
    .assert_ok();
    let listing = run(Command::new("tar").arg("tf").arg(d.join("all.tar")));
    listing.assert_ok();
    let entries: Vec<&str> = listing.stdout.lines().collect();
    assert_eq!(entries.len(), 13, "{}", listing.stdout);
    assert_eq!(entries.last(), Some(&"manifest.csv"));
    assert!(
        entries[..12].iter().all(|e| e.ends_with(".tst")),
        "{entries:?}"
    );
    let manifest = run(Command::new("tar")
        .arg("xOf")
        .arg(d.join("all.tar"))
        .arg("manifest.csv"));
    let lines: Vec<&str> = manifest.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "serial,gen_time,policy,hash_algorithm,imprint,signer_cert_sha256"
    );
    assert_eq!(lines.len(), 13);
    let tsa_cert_sha256 = {
        let der = sigillum_tests::openssl_ca::pem_cert_der(&server.tsa_pem());
        hex_sha256(&der)
    };
    assert!(
        lines[1..].iter().all(|l| l.ends_with(&tsa_cert_sha256)),
        "{}",
        manifest.stdout
    );

    // openssl verifies exported tokens against the files whose imprints the manifest lists.
    run(Command::new("tar").current_dir(d).args(["xf", "all.tar"])).assert_ok();
    for line in &lines[1..4] {
        let f: Vec<&str> = line.split(',').collect();
        let file = names
            .iter()
            .find(|n| hex_sha256(&std::fs::read(d.join(n)).expect("read")) == f[4])
            .expect("a file with the manifest's imprint");
        let tst = format!("{}.tst", f[0]);
        let v = openssl(
            d,
            &[
                "ts",
                "-verify",
                "-in",
                &tst,
                "-token_in",
                "-data",
                file,
                "-CAfile",
                p(&root),
            ],
        );
        assert!(v.stdout.contains("Verification: OK"), "{v}");
    }

    // stamp verifies the whole export.
    let v = stamp(d, &["verify", "--archive", "all.tar", "--trust", p(&root)]);
    v.assert_ok();
    assert!(
        v.stdout.contains("12 tokens, 12 verified, 0 failed"),
        "{}",
        v.stdout
    );
    // Not under another anchor.
    let other = sigillum_tests::openssl_ca::new_key(d, "ec", "other.key");
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-key",
            p(&other),
            "-subj",
            "/CN=Other",
            "-days",
            "2",
            "-out",
            "other.pem",
        ],
    )
    .assert_ok();
    let v = stamp(
        d,
        &["verify", "--archive", "all.tar", "--trust", "other.pem"],
    );
    v.assert_code(1);
    assert!(v.stdout.contains("12 failed"), "{}", v.stdout);

    // Tampering, with Python's tarfile: a changed token byte, a removed token, a manifest that
    // says another imprint. Each is named by serial.
    let first = lines[1].split(',').next().unwrap_or_default().to_owned();
    let second = lines[2].split(',').next().unwrap_or_default().to_owned();
    let third = lines[3].split(',').next().unwrap_or_default().to_owned();
    let fourth = lines[4].split(',').next().unwrap_or_default().to_owned();
    let script = r#"
import io, sys, tarfile
src, dst, flip, drop, lie, shift = sys.argv[1:7]
out = tarfile.open(dst, "w")
for m in tarfile.open(src):
    data = tarfile.open(src).extractfile(m.name).read()
    if m.name == flip + ".tst":
        data = data[:-40] + bytes([data[-40] ^ 1]) + data[-39:]
    if m.name == drop + ".tst":
        continue
    if m.name == "manifest.csv":
        rows = data.decode().splitlines(True)
        for i, r in enumerate(rows):
            f = r.split(",")
            if f[0] == lie:
                f[4] = "00" * 32
                rows[i] = ",".join(f)
            if f[0] == shift:
                f[1] = "2001-01-01T00:00:00.000Z"
                rows[i] = ",".join(f)
        data = "".join(rows).encode()
    m.size = len(data)
    out.addfile(m, io.BytesIO(data))
out.close()
"#;
    python(
        script,
        &[
            p(&d.join("all.tar")),
            p(&d.join("bad.tar")),
            &first,
            &second,
            &third,
            &fourth,
        ],
    )
    .assert_ok();
    let v = stamp(d, &["verify", "--archive", "bad.tar", "--trust", p(&root)]);
    v.assert_code(1);
    assert!(
        v.stdout.contains("11 tokens, 8 verified, 4 failed"),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains(&format!("{first}: FAILED")),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains(&format!(
            "{second}: FAILED: listed in manifest.csv, but its token is not in the archive"
        )),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains(&format!(
            "{third}: FAILED: its imprint differs from the manifest's"
        )),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains(&format!(
            "{fourth}: FAILED: its genTime differs from the manifest's"
        )),
        "{}",
        v.stdout
    );
}

#[test]
fn periods_and_signing_certificates_select_what_is_exported_or_listed() {
    let server = TsaServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("a.txt"), "a\n").expect("write");
    stamp(d, &["file", "--tsa", &server.url(), "a.txt"]).assert_ok();
    let data = server.data_dir().to_str().unwrap_or_default().to_owned();
    let tsa_pem = server.tsa_pem();
    let root = server.root_pem();
    let list = tsa(
        d,
        &[
            "archive",
            "list",
            "--data-dir",
            &data,
            "--signer-cert",
            p(&tsa_pem),
        ],
    );
    list.assert_ok();
    assert_eq!(list.stdout.lines().count(), 1, "{}", list.stdout);
    assert!(list.stderr.contains("1 tokens"), "{}", list.stderr);
    let none = tsa(
        d,
        &[
            "archive",
            "list",
            "--data-dir",
            &data,
            "--signer-cert",
            p(&root),
        ],
    );
    none.assert_ok();
    assert_eq!(none.stdout, "");
    // A period in the future holds nothing; an empty export verifies nothing (exit 1).
    tsa(
        d,
        &[
            "archive",
            "export",
            "--data-dir",
            &data,
            "--from",
            "2999-01-01",
            "-o",
            "later.tar",
        ],
    )
    .assert_ok();
    let v = stamp(
        d,
        &["verify", "--archive", "later.tar", "--trust", p(&root)],
    );
    v.assert_code(1);
    assert!(
        v.stdout.contains("0 tokens") && v.stdout.contains("nothing to verify"),
        "{}",
        v.stdout
    );
    tsa(
        d,
        &[
            "archive",
            "export",
            "--data-dir",
            &data,
            "--to",
            "2999-01-01",
            "-o",
            "until.tar",
        ],
    )
    .assert_ok();
    stamp(
        d,
        &["verify", "--archive", "until.tar", "--trust", p(&root)],
    )
    .assert_ok();
    // Bad input: an unparsable time, a missing certificate file.
    let bad = tsa(
        d,
        &[
            "archive",
            "export",
            "--data-dir",
            &data,
            "--from",
            "soon",
            "-o",
            "x.tar",
        ],
    );
    bad.assert_code(2);
    assert!(bad.stderr.contains("RFC 3339"), "{}", bad.stderr);
    assert!(!d.join("x.tar").exists());
    let bad = tsa(
        d,
        &[
            "archive",
            "list",
            "--data-dir",
            &data,
            "--signer-cert",
            "nope.pem",
        ],
    );
    bad.assert_code(2);
    assert!(bad.stderr.contains("nope.pem"), "{}", bad.stderr);
}

fn hex_sha256(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
