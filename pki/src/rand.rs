//! Random bytes from the operating system's generator, through ring: the one place the crates
//! ask for them (nonces, serial numbers, salts, keys, MIME boundaries, enrolment references).

use crate::error::{Error, Result};

/// Fills `buf`; `what` names it in the error ("a nonce").
pub fn fill(buf: &mut [u8], what: &'static str) -> Result<()> {
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
        .map_err(|_| Error::Randomness(what))
}

/// `N` random bytes.
pub fn array<const N: usize>(what: &'static str) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    fill(&mut b, what)?;
    Ok(b)
}

/// `n` random bytes.
pub fn bytes(n: usize, what: &'static str) -> Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    fill(&mut b, what)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    /// Two draws differ and fill what was asked (a generator that returned zeros or the same
    /// bytes twice would fail here).
    #[test]
    fn draws_are_fresh_and_of_the_asked_length() {
        let (a, b) = (
            super::array::<16>("a test").expect("random bytes"),
            super::array::<16>("a test").expect("random bytes"),
        );
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
        let v = super::bytes(33, "a test").expect("random bytes");
        assert_eq!(v.len(), 33);
        assert_ne!(v, vec![0; 33]);
    }
}
