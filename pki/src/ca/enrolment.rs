//! One-time enrolment secrets: derived, never stored. The secret of the code `reference` for
//! `email` is HMAC-SHA256 over both under the CA's enrolment key, so the database keeps only
//! the reference, the address and the secret's SHA-256: a copy of it alone enrols nobody,
//! and changing the key retires every outstanding code.

use zeroize::Zeroizing;

/// Bytes of secret (hex: 30 characters, 120 bits).
const SECRET_BYTES: usize = 15;

/// The secret (lower-case hex, as typed by users and given to `openssl cmp -secret`).
pub fn secret(key: &[u8], reference: &str, email: &str) -> Zeroizing<Vec<u8>> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(b"sigillum enrolment code v1\0");
    ctx.update(reference.as_bytes());
    ctx.update(b"\0");
    ctx.update(email.as_bytes());
    let tag = ctx.sign();
    Zeroizing::new(hex::encode(&tag.as_ref()[..SECRET_BYTES]).into_bytes())
}

/// What is stored of a secret: its SHA-256.
pub fn stored_hash(secret: &[u8]) -> Vec<u8> {
    crate::digest::HashAlg::Sha256.digest(secret)
}

/// Whether `secret` is the one whose hash was stored, compared in constant time.
pub fn matches(secret: &[u8], stored: &[u8]) -> bool {
    #[allow(deprecated)] // ring 0.17 keeps it; the replacement is not public yet.
    ring::constant_time::verify_slices_are_equal(&stored_hash(secret), stored).is_ok()
}

/// `n` random bytes (references, serial numbers, secrets).
pub fn random(n: usize) -> crate::Result<Vec<u8>> {
    crate::rand::bytes(n, "an enrolment value")
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_depend_on_key_reference_and_address_and_only_their_hash_matches() {
        let s = super::secret(b"k1", "ref", "a@b.example");
        assert_eq!(s.len(), 30);
        assert_ne!(*s, *super::secret(b"k2", "ref", "a@b.example"));
        assert_ne!(*s, *super::secret(b"k1", "reg", "a@b.example"));
        assert_ne!(*s, *super::secret(b"k1", "ref", "c@b.example"));
        let h = super::stored_hash(&s);
        assert!(super::matches(&s, &h));
        assert!(!super::matches(b"0123", &h));
    }
}
