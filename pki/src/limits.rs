//! Every limit the verifier puts on untrusted input, in one place, each with the reason for it.
//!
//! The cost of verifying `n` bytes must stay about linear. `der` 0.7 decodes a SET OF
//! (`SetOfVec`) by sorting it with an insertion sort that compares re-encoded elements, which is
//! quadratic in the number of elements: a token with a few hundred thousand unsigned attributes
//! (anyone can append them, they are not signed) or a bag certificate whose RDN holds 100 000
//! AVAs took minutes. So:
//!
//! * SignerInfo is walked as raw TLVs ([`crate::signer_info`]); its attribute SETs are never
//!   given to `der`, and unsigned attributes are only counted ([`MAX_LISTED_UNSIGNED_ATTRS`]).
//! * Before `der`/`x509-cert` decode attacker bytes that hold a Name (a certificate, the TSTInfo
//!   `tsa` GeneralName, a SignerInfo's issuerAndSerialNumber, an ESSCertID issuerSerial, a
//!   subjectAltName), [`check_sets`] rejects any SET with more than [`MAX_SET_ELEMENTS`]
//!   elements, which bounds `der`'s sort to a constant number of comparisons per element.

use crate::error::{Error, Result};
use crate::raw::RawTlv;
use der::Tag;

/// Most elements of any SET inside a structure `der` decodes for us.
///
/// The SETs in those structures are RelativeDistinguishedNames (1 to 3 AVAs in practice:
/// multi-valued RDNs are rare, RFC 5280 §4.1.2.4 and the CA/B Forum profiles use one AVA per
/// RDN) and attribute value sets (one value for every attribute RFC 5652 and RFC 5035 define).
/// Eight leaves room for odd but honest encoders and keeps `der`'s insertion sort at no more than
/// 28 comparisons per SET.
pub const MAX_SET_ELEMENTS: usize = 8;

/// Deepest nesting [`check_sets`] follows. A certificate's deepest structure (an AVA value inside
/// an RDN inside a Name inside TBSCertificate) is under 10 levels; 32 bounds the recursion.
pub const MAX_DEPTH: usize = 32;

/// Most unsigned-attribute OIDs listed for display ([`crate::signer_info::SignerInfoView`]);
/// the rest are only counted. Unsigned attributes are not signed: anyone may append them.
pub const MAX_LISTED_UNSIGNED_ATTRS: usize = 16;

/// Most signature timestamps kept from one SignerInfo's unsigned attributes: CAdES-T needs one,
/// a re-timestamped archive signature a few; the rest are counted with the other attributes.
pub const MAX_SIGNATURE_TIMESTAMPS: usize = 4;

/// Most certificates between the signer and a trust anchor that path pre-filtering
/// ([`crate::path`]) follows. Real TSA chains have one or two intermediates; webpki itself stops
/// at six.
pub const MAX_PATH_DEPTH: usize = 8;

/// Checks that no SET (universal tag 17) in the DER element `der` has more than
/// [`MAX_SET_ELEMENTS`] elements and that nesting stays under [`MAX_DEPTH`], walking only
/// constructed elements. Linear in the input's length.
pub fn check_sets(der: &[u8], what: &'static str) -> Result<()> {
    let tlv = RawTlv::parse(der, what)?;
    walk(&tlv, what, 0)
}

fn walk(tlv: &RawTlv<'_>, what: &'static str, depth: usize) -> Result<()> {
    if !tlv.tag.is_constructed() {
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Err(Error::invalid(
            what,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let mut count = 0usize;
    let mut rest = tlv.value;
    while !rest.is_empty() {
        let (child, next) = RawTlv::parse_prefix(rest, what)?;
        count += 1;
        if tlv.tag == Tag::Set && count > MAX_SET_ELEMENTS {
            return Err(Error::invalid(
                what,
                format!("a SET holds more than {MAX_SET_ELEMENTS} elements"),
            ));
        }
        walk(&child, what, depth + 1)?;
        rest = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::tlv;

    fn set_of(n: usize) -> Vec<u8> {
        let ava = tlv(
            Tag::Sequence,
            &[&[0x06, 0x03, 0x55, 0x04, 0x03], &[0x0c, 0x01, b'a']],
        )
        .expect("ava");
        let parts: Vec<&[u8]> = std::iter::repeat_n(ava.as_slice(), n).collect();
        let rdn = tlv(Tag::Set, &parts).expect("rdn");
        tlv(Tag::Sequence, &[&rdn]).expect("name")
    }

    /// Why: RDNs of up to the cap must pass, or honest certificates would be refused.
    #[test]
    fn set_guard_accepts_sets_up_to_the_cap() {
        check_sets(&set_of(1), "name").expect("one AVA");
        check_sets(&set_of(MAX_SET_ELEMENTS), "name").expect("cap AVAs");
    }

    /// Why: one element more than the cap is what keeps der's quadratic SET sort away.
    #[test]
    fn set_guard_rejects_a_set_over_the_cap() {
        let e = check_sets(&set_of(MAX_SET_ELEMENTS + 1), "name").expect_err("over the cap");
        assert!(e.to_string().contains("more than 8"), "{e}");
    }

    /// Why: recursion on attacker nesting must stop before the stack does.
    #[test]
    fn set_guard_rejects_deep_nesting() {
        let mut v = vec![0x05, 0x00];
        for _ in 0..(MAX_DEPTH + 1) {
            v = tlv(Tag::Sequence, &[&v]).expect("nest");
        }
        let e = check_sets(&v, "deep").expect_err("too deep");
        assert!(e.to_string().contains("nested deeper"), "{e}");
    }

    /// Why: truncated input is an error, not a panic or a pass.
    #[test]
    fn set_guard_rejects_truncation() {
        let mut v = set_of(2);
        v.pop();
        check_sets(&v, "name").expect_err("truncated");
    }
}
