//! A view of DER as raw TLVs, for the places where bytes must stay exactly as received.
//!
//! `der` decodes SET OF by re-sorting it, so a re-encoding of someone else's signed attributes
//! may differ from what they signed. Verification therefore walks the received bytes with this
//! module and hashes slices of them; typed decoding (`cms`, `x509-cert`) is used beside it for
//! the values. Building uses [`tlv`] to wrap pre-encoded parts without decoding them again.

use crate::error::{Error, Result};
use der::{Decode, Encode, Header, Length, Reader, SliceReader, Tag};

/// One TLV inside a buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawTlv<'a> {
    /// The tag.
    pub tag: Tag,
    /// Tag, length and value: the element exactly as encoded.
    pub full: &'a [u8],
    /// The value octets only.
    pub value: &'a [u8],
}

impl<'a> RawTlv<'a> {
    /// Reads the single TLV that fills `input` entirely.
    pub fn parse(input: &'a [u8], what: &'static str) -> Result<RawTlv<'a>> {
        let (tlv, rest) = Self::parse_prefix(input, what)?;
        if !rest.is_empty() {
            return Err(Error::invalid(
                what,
                format!("{} trailing bytes", rest.len()),
            ));
        }
        Ok(tlv)
    }

    /// Reads the first TLV of `input`, returning it and what follows.
    pub fn parse_prefix(input: &'a [u8], what: &'static str) -> Result<(RawTlv<'a>, &'a [u8])> {
        let mut reader = SliceReader::new(input).map_err(Error::decode(what))?;
        let header = Header::decode(&mut reader).map_err(Error::decode(what))?;
        let header_len = usize::try_from(reader.position())
            .map_err(|_| Error::invalid(what, "length overflow"))?;
        let value_len =
            usize::try_from(header.length).map_err(|_| Error::invalid(what, "length overflow"))?;
        let end = header_len
            .checked_add(value_len)
            .filter(|end| *end <= input.len())
            .ok_or_else(|| Error::invalid(what, "truncated"))?;
        Ok((
            RawTlv {
                tag: header.tag,
                full: &input[..end],
                value: &input[header_len..end],
            },
            &input[end..],
        ))
    }

    /// The TLVs inside a constructed value, in order.
    pub fn children(&self, what: &'static str) -> Result<Vec<RawTlv<'a>>> {
        let mut out = Vec::new();
        let mut rest = self.value;
        while !rest.is_empty() {
            let (tlv, next) = RawTlv::parse_prefix(rest, what)?;
            out.push(tlv);
            rest = next;
        }
        Ok(out)
    }

    /// Decodes this element as `T`.
    pub fn decode<T: Decode<'a>>(&self, what: &'static str) -> Result<T> {
        T::from_der(self.full).map_err(Error::decode(what))
    }
}

/// Wraps already-encoded parts in a TLV with `tag`.
pub fn tlv(tag: Tag, parts: &[&[u8]]) -> Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let header =
        Header::new(tag, Length::try_from(len).map_err(Error::Encode)?).map_err(Error::Encode)?;
    let mut out = Vec::with_capacity(len + 6);
    header.encode_to_vec(&mut out).map_err(Error::Encode)?;
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// `[n]` context-specific tag (`n` at most 30, as every tag CMS uses).
pub fn context(n: u8, constructed: bool) -> Tag {
    Tag::ContextSpecific {
        constructed,
        number: der::TagNumber::new(n.min(30)),
    }
}
