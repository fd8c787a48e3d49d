//! The CA's state on SQLite and PostgreSQL alike: an issuance records all or nothing, codes
//! are spent once, unconfirmed certificates expire into the CRL, keyCompromise follows what a
//! key obtained, rate limits count per address and per client, and the directory drops a
//! certificate the moment it expires.
use super::test_support::{on_both_backends, open};
use super::*;

fn code(reference: &str, email: &str, client: &str, now: i64) -> EnrolmentCode {
    EnrolmentCode {
        reference: reference.into(),
        email: email.into(),
        secret_hash: vec![7; 32],
        client: client.into(),
        created_at: now,
        expires_at: now + 900,
        used_at: None,
    }
}

fn cert(serial: u8, email: &str, now: i64, parent: Option<u8>) -> CaCertificate {
    CaCertificate {
        serial: vec![serial; 16],
        email: email.into(),
        usage: "signing".into(),
        not_before: now - 60,
        not_after: now + 86_400,
        cert: vec![0x30, 0x00, serial],
        state: CertState::Pending,
        issued_at: now,
        revoked_at: None,
        revocation_reason: None,
        parent_serial: parent.map(|p| vec![p; 16]),
    }
}

fn transaction(id: u8, now: i64) -> Transaction {
    Transaction {
        transaction_id: vec![id; 16],
        created_at: now,
        open: true,
        ..Default::default()
    }
}

const LIMITS: CodeLimits = CodeLimits {
    per_email: 2,
    per_client: 3,
    window: 3600,
};

on_both_backends!(
    an_issuance_records_all_or_nothing,
    unconfirmed_certificates_expire_into_the_crl,
    key_compromise_follows_what_the_key_obtained,
    code_limits_count_per_address_and_per_client,
    concurrent_code_requests_cannot_slip_under_the_limit,
    the_directory_lists_a_certificate_only_within_its_validity
);

async fn an_issuance_records_all_or_nothing(url: &str) {
    let a = open(url).await;
    let now = 1_800_000_000;
    assert_eq!(
        a.insert_enrolment_code(&code("r1", "a@x.example", "c", now), LIMITS)
            .await
            .expect("code"),
        Ok(())
    );
    let first = a
        .record_issuance(
            &transaction(1, now),
            Some("r1"),
            &cert(1, "a@x.example", now, None),
            now,
        )
        .await
        .expect("record");
    assert_eq!(first, Issuance::Recorded);
    // The same code again: nothing of the second issuance is stored, not even its transaction.
    let again = a
        .record_issuance(
            &transaction(2, now),
            Some("r1"),
            &cert(2, "a@x.example", now, None),
            now,
        )
        .await
        .expect("record");
    assert_eq!(again, Issuance::CodeSpent);
    assert!(a.certificate(&[2; 16]).await.expect("read").is_none());
    assert!(a.transaction(&[2; 16]).await.expect("read").is_none());
    // A transactionID used before: nothing stored either.
    let reused = a
        .record_issuance(
            &transaction(1, now),
            None,
            &cert(3, "a@x.example", now, None),
            now,
        )
        .await
        .expect("record");
    assert_eq!(reused, Issuance::TransactionIdInUse);
    assert!(a.certificate(&[3; 16]).await.expect("read").is_none());
    // An expired code is spent too.
    a.insert_enrolment_code(&code("r2", "a@x.example", "c", now - 1000), LIMITS)
        .await
        .expect("code")
        .expect("within limits");
    let late = a
        .record_issuance(
            &transaction(4, now),
            Some("r2"),
            &cert(4, "a@x.example", now, None),
            now,
        )
        .await
        .expect("record");
    assert_eq!(late, Issuance::CodeSpent);
    a.close().await;
}

async fn unconfirmed_certificates_expire_into_the_crl(url: &str) {
    let a = open(url).await;
    let now = 1_800_000_000;
    for (id, at) in [(1u8, now - 700), (2, now - 10)] {
        let r = a
            .record_issuance(
                &transaction(id, at),
                None,
                &cert(id, "b@x.example", at, None),
                at,
            )
            .await
            .expect("record");
        assert_eq!(r, Issuance::Recorded);
    }
    let before = a.crl_state().await.expect("crl").revision;
    assert_eq!(a.expire_pending(now - 600, now).await.expect("expire"), 1);
    let old = a.certificate(&[1; 16]).await.expect("read").expect("row");
    assert_eq!(old.state, CertState::Rejected);
    assert_eq!(
        (old.revoked_at, old.revocation_reason),
        (Some(now), Some(5))
    );
    assert!(
        !a.transaction(&[1; 16])
            .await
            .expect("read")
            .expect("row")
            .open
    );
    let young = a.certificate(&[2; 16]).await.expect("read").expect("row");
    assert_eq!((young.state, young.revoked_at), (CertState::Pending, None));
    assert_eq!(a.crl_state().await.expect("crl").revision, before + 1);
    assert_eq!(a.revoked_certificates().await.expect("list").len(), 1);
    // Nothing more to expire: the revision stays.
    assert_eq!(a.expire_pending(now - 600, now).await.expect("expire"), 0);
    assert_eq!(a.crl_state().await.expect("crl").revision, before + 1);
    a.close().await;
}

async fn key_compromise_follows_what_the_key_obtained(url: &str) {
    let a = open(url).await;
    let now = 1_800_000_000;
    // 1 obtained 2 (cr), 2 obtained 3 (kur); 4 is unrelated.
    for (id, parent) in [(1u8, None), (2, Some(1u8)), (3, Some(2)), (4, None)] {
        a.record_issuance(
            &transaction(id, now),
            None,
            &cert(id, "c@x.example", now, parent),
            now,
        )
        .await
        .expect("record");
    }
    // Superseded revokes one certificate only.
    assert_eq!(
        a.revoke_certificate(&[2; 16], now, Some(4))
            .await
            .expect("revoke"),
        1
    );
    assert!(
        a.certificate(&[3; 16])
            .await
            .expect("read")
            .expect("row")
            .revoked_at
            .is_none()
    );
    // keyCompromise of 1 takes 3 too (2 is already revoked and keeps its reason).
    assert_eq!(
        a.revoke_certificate(&[1; 16], now, Some(1))
            .await
            .expect("revoke"),
        2
    );
    let three = a.certificate(&[3; 16]).await.expect("read").expect("row");
    assert_eq!(three.revocation_reason, Some(1));
    let two = a.certificate(&[2; 16]).await.expect("read").expect("row");
    assert_eq!(two.revocation_reason, Some(4));
    assert!(
        a.certificate(&[4; 16])
            .await
            .expect("read")
            .expect("row")
            .revoked_at
            .is_none()
    );
    // Revoking again changes nothing.
    assert_eq!(
        a.revoke_certificate(&[1; 16], now, Some(1))
            .await
            .expect("revoke"),
        0
    );
    a.close().await;
}

async fn code_limits_count_per_address_and_per_client(url: &str) {
    let a = open(url).await;
    let now = 1_800_000_000;
    let add = |r: &'static str, e: &'static str, c: &'static str, at: i64| {
        let a = &a;
        async move {
            a.insert_enrolment_code(&code(r, e, c, at), LIMITS)
                .await
                .expect("insert")
        }
    };
    assert_eq!(add("1", "d@x.example", "ip1", now - 3000).await, Ok(()));
    assert_eq!(add("2", "d@x.example", "ip2", now - 100).await, Ok(()));
    let limited = add("3", "d@x.example", "ip3", now)
        .await
        .expect_err("address limit");
    assert_eq!(limited.limit, "address");
    // The oldest counted code leaves the window in 600 s.
    assert_eq!(limited.retry_after, 600);
    assert_eq!(add("4", "e@x.example", "ip2", now).await, Ok(()));
    assert_eq!(add("5", "f@x.example", "ip2", now).await, Ok(()));
    let limited = add("6", "g@x.example", "ip2", now)
        .await
        .expect_err("client limit");
    assert_eq!(limited.limit, "client");
    assert!(a.enrolment_code("3").await.expect("read").is_none());
    a.close().await;
}

async fn concurrent_code_requests_cannot_slip_under_the_limit(url: &str) {
    let a = open(url).await;
    let now = 1_800_000_000;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move {
                a.insert_enrolment_code(
                    &code(&format!("c{i}"), "h@x.example", &format!("ip{i}"), now),
                    LIMITS,
                )
                .await
                .expect("insert")
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if t.await.expect("task").is_ok() {
            granted += 1;
        }
    }
    assert_eq!(
        granted, LIMITS.per_email,
        "the address limit held under concurrency"
    );
    a.close().await;
}

/// An expired certificate leaves the directory at once, without housekeeping: the directory
/// filters by validity when it is read, and the row itself stays as it was.
async fn the_directory_lists_a_certificate_only_within_its_validity(url: &str) {
    let a = open(url).await;
    let now = 1_800_000_000;
    let email = "i@x.example";
    // 1 expires a day from now, 2 a day later; both active, neither revoked.
    for (id, not_after) in [(1u8, now + 86_400), (2, now + 2 * 86_400)] {
        let c = CaCertificate {
            state: CertState::Active,
            not_after,
            ..cert(id, email, now, None)
        };
        let r = a
            .record_issuance(&transaction(id, now), None, &c, now)
            .await
            .expect("record");
        assert_eq!(r, Issuance::Recorded);
    }
    let listed = |at: i64| {
        let a = &a;
        async move {
            let mut serials: Vec<u8> = a
                .directory(email, at)
                .await
                .expect("directory")
                .into_iter()
                .map(|c| c.serial[0])
                .collect();
            serials.sort_unstable();
            serials
        }
    };
    // Both valid from now - 60.
    assert_eq!(listed(now - 61).await, Vec::<u8>::new(), "before notBefore");
    assert_eq!(listed(now - 60).await, vec![1, 2], "from notBefore");
    assert_eq!(
        listed(now + 86_399).await,
        vec![1, 2],
        "a second before 1 expires"
    );
    // RFC 5280 §4.1.2.5: notAfter's own second is still within the validity.
    assert_eq!(
        listed(now + 86_400).await,
        vec![1, 2],
        "1's notAfter second"
    );
    assert_eq!(listed(now + 86_401).await, vec![2], "1 has expired");
    assert_eq!(
        listed(now + 2 * 86_400 + 1).await,
        Vec::<u8>::new(),
        "both have expired"
    );
    // Still stored, active and unrevoked: only the directory leaves it out.
    let one = a.certificate(&[1; 16]).await.expect("read").expect("row");
    assert_eq!(
        (one.state, one.revoked_at, one.not_after),
        (CertState::Active, None, now + 86_400)
    );
    // The CMP signer check counts the same seconds as the directory.
    let valid: Vec<bool> = [now - 61, now - 60, now + 86_400, now + 86_401]
        .iter()
        .map(|&t| one.valid_at(t))
        .collect();
    assert_eq!(valid, [false, true, true, false]);
    a.close().await;
}
