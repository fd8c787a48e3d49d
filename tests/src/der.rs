//! A few lines of DER writing, enough to build TimeStampReqs that well-behaved libraries refuse
//! to build (MD5, unknown OIDs, odd parameters, huge nonces, extensions). Tests only: the
//! product's ASN.1 lives in `pki`.

/// The OID of SHA-256.
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
/// The OID of SHA-384.
pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
/// The OID of SHA-512.
pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";
/// The OID of SHA-1.
pub const SHA1: &str = "1.3.14.3.2.26";
/// The OID of MD5.
pub const MD5: &str = "1.2.840.113549.2.5";
/// The development policy the server uses by default.
pub const DEV_POLICY: &str = "1.3.6.1.4.1.55555.1.1";

/// One TLV with a definite, minimal length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).expect("short form length"));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let used = &bytes[skip..];
        out.push(0x80 | u8::try_from(used.len()).expect("at most 8 length bytes"));
        out.extend_from_slice(used);
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of the concatenated parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// OBJECT IDENTIFIER from dotted text.
pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| a.parse().expect("numeric arc"))
        .collect();
    assert!(arcs.len() >= 2, "an OID has at least two arcs: {dotted}");
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![seven_bits(v)];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | seven_bits(v));
            v >>= 7;
        }
        tmp.reverse();
        body.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push(*arc);
    }
    tlv(0x06, &body)
}

fn seven_bits(v: u64) -> u8 {
    u8::try_from(v & 0x7f).expect("seven bits fit a byte")
}

/// INTEGER from big-endian magnitude bytes, made positive and minimal.
pub fn uint(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let mut body = magnitude[start..].to_vec();
    if body.first().is_none_or(|b| b & 0x80 != 0) {
        body.insert(0, 0);
    }
    tlv(0x02, &body)
}

/// OCTET STRING.
pub fn octets(content: &[u8]) -> Vec<u8> {
    tlv(0x04, content)
}

/// NULL.
pub fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

/// BOOLEAN TRUE (DER: 0xFF).
pub fn true_() -> Vec<u8> {
    vec![0x01, 0x01, 0xff]
}

/// A TimeStampReq (RFC 3161 §2.4.1) with every field under the test's control.
///
/// ```text
/// TimeStampReq ::= SEQUENCE  {
///    version          INTEGER  { v1(1) },
///    messageImprint   MessageImprint,
///    reqPolicy        TSAPolicyId              OPTIONAL,
///    nonce            INTEGER                  OPTIONAL,
///    certReq          BOOLEAN                  DEFAULT FALSE,
///    extensions       [0] IMPLICIT Extensions  OPTIONAL  }
/// ```
#[derive(Debug, Clone)]
pub struct ReqSpec {
    /// Hash algorithm OID (dotted).
    pub hash_oid: String,
    /// Encoded AlgorithmIdentifier parameters; `None` leaves them out.
    pub hash_params: Option<Vec<u8>>,
    /// The imprint bytes.
    pub imprint: Vec<u8>,
    /// reqPolicy (dotted).
    pub policy: Option<String>,
    /// Nonce magnitude.
    pub nonce: Option<Vec<u8>>,
    /// Nonce INTEGER contents used verbatim (negative or zero nonces); wins over `nonce`.
    pub nonce_content: Option<Vec<u8>>,
    /// certReq.
    pub cert_req: bool,
    /// Extensions: (OID, critical, extnValue contents).
    pub extensions: Vec<(String, bool, Vec<u8>)>,
}

impl ReqSpec {
    /// A plain SHA-256 request for `data`: NULL parameters, an 8-byte nonce, certReq true.
    pub fn sha256(data: &[u8]) -> ReqSpec {
        ReqSpec {
            hash_oid: SHA256.into(),
            hash_params: Some(null()),
            imprint: ring::digest::digest(&ring::digest::SHA256, data)
                .as_ref()
                .to_vec(),
            policy: None,
            nonce: Some(vec![0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71]),
            nonce_content: None,
            cert_req: true,
            extensions: Vec::new(),
        }
    }

    /// The DER encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut alg = oid(&self.hash_oid);
        if let Some(p) = &self.hash_params {
            alg.extend_from_slice(p);
        }
        let imprint = seq(&[&tlv(0x30, &alg), &octets(&self.imprint)]);
        let mut body = uint(&[1]);
        body.extend(imprint);
        if let Some(p) = &self.policy {
            body.extend(oid(p));
        }
        if let Some(n) = &self.nonce_content {
            body.extend(tlv(0x02, n));
        } else if let Some(n) = &self.nonce {
            body.extend(uint(n));
        }
        if self.cert_req {
            body.extend(true_());
        }
        if !self.extensions.is_empty() {
            let mut exts = Vec::new();
            for (id, critical, value) in &self.extensions {
                let mut ext = oid(id);
                if *critical {
                    ext.extend(true_());
                }
                ext.extend(octets(value));
                exts.extend(tlv(0x30, &ext));
            }
            body.extend(tlv(0xa0, &exts));
        }
        tlv(0x30, &body)
    }
}

/// Splits one TLV off the front of `bytes`: (tag, contents, rest). Single-byte tags and
/// definite lengths only (DER input).
pub fn split_tlv(bytes: &[u8]) -> (u8, &[u8], &[u8]) {
    assert!(bytes.len() >= 2, "truncated TLV");
    let tag = bytes[0];
    let (len, header) = if bytes[1] < 0x80 {
        (usize::from(bytes[1]), 2)
    } else {
        let n = usize::from(bytes[1] & 0x7f);
        assert!((1..=4).contains(&n), "unsupported length of length {n}");
        let len = bytes[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (tag, &bytes[header..header + len], &bytes[header + len..])
}

/// The TLVs inside a constructed value's contents, each as whole encoded bytes.
pub fn children(mut contents: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (_, _, rest) = split_tlv(contents);
        out.push(&contents[..contents.len() - rest.len()]);
        contents = rest;
    }
    out
}

fn indefinite(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// Re-encodes a DER timestamp token the way streaming BER encoders write one: ContentInfo,
/// SignedData and EncapsulatedContentInfo with indefinite lengths, and the eContent OCTET
/// STRING as a constructed string of small chunks. SignerInfos (and so the signed attributes,
/// which are signed as DER) stay as they were.
pub fn token_to_ber(token: &[u8]) -> Vec<u8> {
    let (_, ci, _) = split_tlv(token);
    let ci = children(ci);
    let (_, explicit, _) = split_tlv(ci[1]);
    let (_, signed_data, _) = split_tlv(explicit);
    let sd = children(signed_data);
    let (_, encap, _) = split_tlv(sd[2]);
    let encap = children(encap);
    let (_, econtent, _) = split_tlv(encap[1]);
    let (_, tst_info, _) = split_tlv(econtent);
    let mut chunks = vec![0x24, 0x80];
    for chunk in tst_info.chunks(7) {
        chunks.extend(tlv(0x04, chunk));
    }
    chunks.extend_from_slice(&[0, 0]);
    let new_encap = indefinite(0x30, &[encap[0], &indefinite(0xa0, &[&chunks])]);
    let mut sd_parts: Vec<&[u8]> = vec![sd[0], sd[1], &new_encap];
    sd_parts.extend_from_slice(&sd[3..]);
    let new_sd = indefinite(0x30, &sd_parts);
    indefinite(0x30, &[ci[0], &indefinite(0xa0, &[&new_sd])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_pki_build_request() {
        // The hand-written encoder must agree with the product's for a plain request, or the
        // rejection tests would test the encoder instead of the server.
        let spec = ReqSpec::sha256(b"x");
        let ours = spec.encode();
        let theirs = pki::tsp::build_request(
            pki::HashAlg::Sha256,
            &spec.imprint,
            spec.nonce.as_deref(),
            true,
            None,
        )
        .expect("build_request");
        assert_eq!(hex::encode(ours), hex::encode(theirs));
    }

    #[test]
    fn long_lengths_and_big_arcs() {
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(
            oid("1.2.840.113549"),
            vec![0x06, 0x06, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]
        );
        assert_eq!(uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(uint(&[0, 0, 1]), vec![0x02, 0x01, 0x01]);
    }
}
