//! BER to DER normalisation of lengths and string forms.
//!
//! S/MIME clients and `openssl cms -sign -stream` write CMS in BER: indefinite lengths closed
//! by end-of-contents octets, and the content as a constructed OCTET STRING cut into chunks.
//! `der` (and so `cms`) reads DER only. [`normalize`] rewrites exactly those BER liberties
//! (X.690 §8.1.3, §8.7.3, §8.23) into their DER form and leaves every other byte alone:
//!
//! - indefinite lengths become definite, and long-form lengths minimal;
//! - constructed OCTET STRINGs, possibly nested and of indefinite length, become one primitive
//!   OCTET STRING holding the concatenated chunks; so do constructed character strings
//!   (UTF8String, PrintableString, IA5String, BMPString, ...) and UTCTime/GeneralizedTime.
//!
//! What it does not do, on purpose: SET OF is not re-sorted (the caller hashes signed
//! attributes exactly as received), BOOLEAN, INTEGER and tag encodings are not touched, and
//! primitive contents are never looked into (an OCTET STRING holding `TSTInfo` stays as is).
//! Two BER forms that need a schema are also left alone: a constructed BIT STRING keeps its
//! segments (only its lengths are fixed), and an implicitly tagged string such as
//! `[0] IMPLICIT OCTET STRING` in constructed form stays constructed, since without the
//! schema it cannot be told from an explicit tag.

use std::borrow::Cow;

/// Deepest nesting [`normalize`] accepts: the top-level value is level 1. Real CMS needs
/// about 15 levels; the bound keeps the recursion and the work per byte small.
pub const MAX_DEPTH: usize = 64;

/// Why [`normalize`] rejected its input. Every offset is a byte offset into that input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BerError {
    /// A value runs past the end of the input or of the value enclosing it, or an
    /// indefinite-length value has no end-of-contents octets.
    #[error("truncated input: the value at offset {offset} runs past its end")]
    Truncated {
        /// Offset of the first identifier octet of the incomplete value.
        offset: usize,
    },
    /// Bytes follow the single top-level value.
    #[error("{count} trailing byte(s) after the top-level value at offset {offset}")]
    TrailingBytes {
        /// Offset of the first byte after the top-level value.
        offset: usize,
        /// How many bytes follow it.
        count: usize,
    },
    /// Values are nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels at offset {offset}")]
    TooDeep {
        /// Offset of the value one level too deep.
        offset: usize,
    },
    /// A length does not fit in a `usize`.
    #[error("length of the value at offset {offset} overflows")]
    LengthOverflow {
        /// Offset of the first identifier octet of the value.
        offset: usize,
    },
    /// The length octet 0xff, which X.690 §8.1.3.5 reserves.
    #[error("reserved length octet 0xff in the value at offset {offset}")]
    ReservedLength {
        /// Offset of the first identifier octet of the value.
        offset: usize,
    },
    /// A primitive value with an indefinite length, which BER allows only for constructed
    /// values.
    #[error("indefinite length on the primitive value at offset {offset}")]
    IndefinitePrimitive {
        /// Offset of the first identifier octet of the value.
        offset: usize,
    },
    /// End-of-contents octets (identifier 0x00) outside an indefinite-length value.
    #[error("end-of-contents at offset {offset} outside an indefinite-length value")]
    UnexpectedEndOfContents {
        /// Offset of the 0x00 identifier octet.
        offset: usize,
    },
    /// Identifier 0x00 inside an indefinite-length value, followed by a non-zero length.
    #[error("malformed end-of-contents at offset {offset}")]
    MalformedEndOfContents {
        /// Offset of the 0x00 identifier octet.
        offset: usize,
    },
    /// A high-tag-number identifier that X.690 §8.1.2.4 forbids: padded with a leading
    /// 0x80 octet, or used for a tag number below 31.
    #[error("invalid tag encoding at offset {offset}")]
    InvalidTag {
        /// Offset of the first identifier octet.
        offset: usize,
    },
    /// A tag number above `u32::MAX`.
    #[error("tag number too large at offset {offset}")]
    TagNumberOverflow {
        /// Offset of the first identifier octet.
        offset: usize,
    },
    /// A chunk of a constructed string is not an OCTET STRING or a string of the same type.
    #[error("chunk at offset {offset} of a constructed string has the wrong type")]
    InvalidStringSegment {
        /// Offset of the chunk's first identifier octet.
        offset: usize,
    },
}

/// Rewrites one BER-encoded value (a single TLV, nothing after it) with DER lengths and
/// string forms; see the [module documentation](self) for exactly what changes.
///
/// Returns [`Cow::Borrowed`] with the input itself when nothing needs rewriting; that check
/// is a scan that allocates nothing. Otherwise the result is allocated once, at its final
/// size, which is never larger than the input except by up to 6 bytes for each
/// indefinite-length value holding 64 KiB or more (its definite length then needs more octets
/// than `0x80` and the end-of-contents octets took). Each level of nesting may move the bytes
/// below it once, so the work is at most [`MAX_DEPTH`] times the input size. Normalising the
/// result again returns it borrowed.
pub fn normalize(input: &[u8]) -> Result<Cow<'_, [u8]>, BerError> {
    let scan = Walker { input, out: None }.value(0, input.len(), 1, None)?;
    if scan.end != input.len() {
        return Err(BerError::TrailingBytes {
            offset: scan.end,
            count: input.len() - scan.end,
        });
    }
    if !scan.changed {
        return Ok(Cow::Borrowed(input));
    }
    let mut writer = Walker {
        input,
        out: Some(Vec::with_capacity(scan.out_len)),
    };
    writer.value(0, input.len(), 1, None)?;
    Ok(Cow::Owned(writer.out.unwrap_or_default()))
}

/// The length of the one BER value at the start of `input` (definite or indefinite length),
/// whatever follows it: a PDF's /Contents holds a signature followed by zero padding.
pub fn value_len(input: &[u8]) -> Result<usize, BerError> {
    Ok(Walker { input, out: None }
        .value(0, input.len(), 1, None)?
        .end)
}

/// Universal tag numbers whose constructed form is joined into one primitive value: OCTET
/// STRING, ObjectDescriptor, UTF8String, the restricted character strings and the two time
/// types (X.690 §8.23; all are encoded like OCTET STRING).
fn joinable(number: u32) -> bool {
    matches!(number, 4 | 7 | 12 | 18..=28 | 30)
}

/// The identifier and length octets of one value.
struct Head {
    /// Offset of the first identifier octet.
    start: usize,
    /// Offset just past the identifier octets.
    tag_end: usize,
    /// The first identifier octet.
    first: u8,
    /// The tag number, from the low bits or the high-tag-number octets.
    number: u32,
    /// The content length; `None` when indefinite.
    length: Option<usize>,
    /// Whether the length octets are already DER: definite and minimal.
    minimal: bool,
    /// Offset of the first content octet.
    content: usize,
}

impl Head {
    /// Whether the constructed bit is set.
    fn constructed(&self) -> bool {
        self.first & 0x20 != 0
    }

    /// Whether the tag is of universal class.
    fn universal(&self) -> bool {
        self.first & 0xc0 == 0
    }
}

/// Reads the identifier and length octets at `pos`, seeing no byte at or after `limit`, and
/// checks that a definite length fits before `limit`.
fn head(input: &[u8], pos: usize, limit: usize) -> Result<Head, BerError> {
    let data = input.get(..limit).unwrap_or(input);
    let truncated = BerError::Truncated { offset: pos };
    let first = *data.get(pos).ok_or(truncated.clone())?;
    let mut i = pos + 1;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = 0;
        loop {
            let b = *data.get(i).ok_or(truncated.clone())?;
            if i == pos + 1 && b == 0x80 {
                return Err(BerError::InvalidTag { offset: pos });
            }
            if number > u32::MAX >> 7 {
                return Err(BerError::TagNumberOverflow { offset: pos });
            }
            number = (number << 7) | u32::from(b & 0x7f);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if number < 0x1f {
            return Err(BerError::InvalidTag { offset: pos });
        }
    }
    let tag_end = i;

    let l0 = *data.get(i).ok_or(truncated.clone())?;
    i += 1;
    let (length, minimal) = match l0 {
        0x00..=0x7f => (Some(usize::from(l0)), true),
        0x80 => (None, false),
        0xff => return Err(BerError::ReservedLength { offset: pos }),
        _ => {
            let count = usize::from(l0 & 0x7f);
            let octets = data
                .get(i..i.saturating_add(count))
                .ok_or(truncated.clone())?;
            i += count;
            let mut value = 0usize;
            for &b in octets {
                if value > usize::MAX >> 8 {
                    return Err(BerError::LengthOverflow { offset: pos });
                }
                value = (value << 8) | usize::from(b);
            }
            let minimal = octets.first().is_some_and(|b| *b != 0) && value >= 0x80;
            (Some(value), minimal)
        }
    };
    if let Some(len) = length
        && len > data.len() - i
    {
        return Err(truncated);
    }
    Ok(Head {
        start: pos,
        tag_end,
        first,
        number,
        length,
        minimal,
        content: i,
    })
}

/// Number of octets DER uses for a length: one below 128, else one plus the significant
/// octets.
fn length_octets(len: usize) -> usize {
    let (_, count) = der_length(len);
    count
}

/// The DER length octets for `len`, in the first `count` bytes of the array.
fn der_length(len: usize) -> ([u8; 9], usize) {
    let mut octets = [0u8; 9];
    let Ok(short) = u8::try_from(len) else {
        return long_length(len, octets);
    };
    if short < 0x80 {
        octets[0] = short;
        return (octets, 1);
    }
    long_length(len, octets)
}

/// The long-form DER length octets for `len` (at least 128).
fn long_length(len: usize, mut octets: [u8; 9]) -> ([u8; 9], usize) {
    let be = len.to_be_bytes();
    let skip = be.iter().take_while(|b| **b == 0).count();
    let mut count = 0u8;
    for (slot, b) in octets.iter_mut().skip(1).zip(&be[skip..]) {
        *slot = *b;
        count += 1;
    }
    octets[0] = 0x80 | count;
    (octets, usize::from(count) + 1)
}

/// Adds two output sizes.
fn add(a: usize, b: usize, offset: usize) -> Result<usize, BerError> {
    a.checked_add(b).ok_or(BerError::LengthOverflow { offset })
}

/// What walking one value found.
struct Walked {
    /// Offset just past the value in the input, end-of-contents octets included.
    end: usize,
    /// Size of the value once normalised: the whole TLV, or only the content for a chunk of
    /// a string being joined.
    out_len: usize,
    /// Whether normalising changes any of its bytes.
    changed: bool,
}

/// One pass over the input: a scan when `out` is `None`, otherwise a rewrite into `out`.
struct Walker<'a> {
    /// The whole input.
    input: &'a [u8],
    /// The normalised output, in the rewriting pass.
    out: Option<Vec<u8>>,
}

impl<'a> Walker<'a> {
    /// Walks the value at `pos`, which must end before `limit`, at nesting level `depth`.
    /// With `join` set to the enclosing string's tag number, the value is a chunk of that
    /// string and only its content is written.
    fn value(
        &mut self,
        pos: usize,
        limit: usize,
        depth: usize,
        join: Option<u32>,
    ) -> Result<Walked, BerError> {
        if depth > MAX_DEPTH {
            return Err(BerError::TooDeep { offset: pos });
        }
        if self.input.get(pos) == Some(&0) {
            return Err(BerError::UnexpectedEndOfContents { offset: pos });
        }
        let h = head(self.input, pos, limit)?;
        if let Some(outer) = join
            && (!h.universal() || (h.number != 4 && h.number != outer))
        {
            return Err(BerError::InvalidStringSegment { offset: pos });
        }

        if !h.constructed() {
            let Some(len) = h.length else {
                return Err(BerError::IndefinitePrimitive { offset: pos });
            };
            let end = h.content + len;
            let content = self.slice(h.content, end)?;
            let whole = self.slice(h.start, end)?;
            let tag = self.slice(h.start, h.tag_end)?;
            let out_len = match join {
                Some(_) => len,
                None => add(h.tag_end - h.start + length_octets(len), len, pos)?,
            };
            if let Some(out) = &mut self.out {
                if join.is_some() {
                    out.extend_from_slice(content);
                } else if h.minimal {
                    out.extend_from_slice(whole);
                } else {
                    out.extend_from_slice(tag);
                    let (octets, count) = der_length(len);
                    out.extend_from_slice(&octets[..count]);
                    out.extend_from_slice(content);
                }
            }
            return Ok(Walked {
                end,
                out_len,
                changed: join.is_some() || !h.minimal,
            });
        }

        // A string being joined: only the content of its chunks is written.
        if join.is_some() {
            return self.children(&h, limit, depth, join);
        }

        let to_join = (h.universal() && joinable(h.number)).then_some(h.number);
        let out_start = self.out.as_ref().map(Vec::len);
        let children = self.children(&h, limit, depth, to_join)?;
        let content_len = children.out_len;
        let (octets, count) = der_length(content_len);
        // A joined string keeps its one-octet universal tag, now primitive.
        let joined_tag = [h.first & !0x20];
        let tag = match to_join {
            Some(_) => &joined_tag[..],
            None => self.slice(h.start, h.tag_end)?,
        };
        let out_len = add(tag.len() + count, content_len, pos)?;
        if let (Some(out), Some(at)) = (&mut self.out, out_start) {
            // The content went out first; its length is known only now.
            out.splice(at..at, tag.iter().chain(&octets[..count]).copied());
        }
        Ok(Walked {
            end: children.end,
            out_len,
            changed: children.changed || !h.minimal || to_join.is_some(),
        })
    }

    /// Walks the values inside the constructed value `h`, up to its end or, when its length
    /// is indefinite, up to its end-of-contents octets, which must come before `limit`.
    fn children(
        &mut self,
        h: &Head,
        limit: usize,
        depth: usize,
        join: Option<u32>,
    ) -> Result<Walked, BerError> {
        let stop = match h.length {
            Some(len) => h.content + len,
            None => limit,
        };
        let mut pos = h.content;
        let mut out_len = 0usize;
        let mut changed = h.length.is_none();
        loop {
            if pos >= stop {
                if h.length.is_some() {
                    return Ok(Walked {
                        end: stop,
                        out_len,
                        changed,
                    });
                }
                return Err(BerError::Truncated { offset: h.start });
            }
            if h.length.is_none() && self.input.get(pos) == Some(&0) {
                return match self.input.get(pos + 1).filter(|_| pos + 1 < stop) {
                    None => Err(BerError::Truncated { offset: h.start }),
                    Some(0) => Ok(Walked {
                        end: pos + 2,
                        out_len,
                        changed,
                    }),
                    Some(_) => Err(BerError::MalformedEndOfContents { offset: pos }),
                };
            }
            let child = self.value(pos, stop, depth + 1, join)?;
            out_len = add(out_len, child.out_len, pos)?;
            changed |= child.changed;
            pos = child.end;
        }
    }

    /// The input bytes from `start` to `end`.
    fn slice(&self, start: usize, end: usize) -> Result<&'a [u8], BerError> {
        self.input
            .get(start..end)
            .ok_or(BerError::Truncated { offset: start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normalises `input`, checks that the result is owned and equals `expected`, and that
    /// normalising it again changes nothing.
    #[track_caller]
    fn rewrites(input: &[u8], expected: &[u8]) {
        let out = normalize(input).expect("valid BER");
        assert!(matches!(out, Cow::Owned(_)), "expected a rewrite");
        assert_eq!(hex::encode(&*out), hex::encode(expected));
        unchanged(&out);
    }

    /// Checks that `input` comes back borrowed and identical.
    #[track_caller]
    fn unchanged(input: &[u8]) {
        let out = normalize(input).expect("valid DER");
        assert!(matches!(out, Cow::Borrowed(_)), "expected no rewrite");
        assert_eq!(&*out, input);
    }

    #[track_caller]
    fn fails(input: &[u8], expected: BerError) {
        assert_eq!(normalize(input), Err(expected));
    }

    #[test]
    fn joins_streamed_octet_string_in_indefinite_sequence() {
        rewrites(
            &[
                0x30, 0x80, // SEQUENCE, indefinite
                0x24, 0x80, // constructed OCTET STRING, indefinite
                0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, // chunks, EOC
                0x00, 0x00, // EOC
            ],
            &[0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c'],
        );
    }

    #[test]
    fn normalizes_openssl_cms_stream_layout() {
        // The shape `openssl cms -sign -stream` writes: ContentInfo, [0], SignedData and
        // EncapsulatedContentInfo all indefinite, eContent chunked; SET OF left in its
        // (unsorted) received order.
        const SIGNED_DATA: [u8; 11] = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
        ];
        const DATA: [u8; 11] = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
        ];
        let mut ber = vec![0x30, 0x80];
        ber.extend_from_slice(&SIGNED_DATA);
        ber.extend_from_slice(&[0xa0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01]);
        ber.extend_from_slice(&[0x31, 0x06, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01]);
        ber.extend_from_slice(&[0x30, 0x80]);
        ber.extend_from_slice(&DATA);
        ber.extend_from_slice(&[0xa0, 0x80, 0x24, 0x80]);
        ber.extend_from_slice(&[0x04, 0x04, b'H', b'e', b'l', b'l']);
        ber.extend_from_slice(&[0x04, 0x81, 0x03, b'o', b'\r', b'\n']);
        ber.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        ber.extend_from_slice(&[0x31, 0x00]);
        ber.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);

        let mut der = vec![0x30, 0x34];
        der.extend_from_slice(&SIGNED_DATA);
        der.extend_from_slice(&[0xa0, 0x27, 0x30, 0x25, 0x02, 0x01, 0x01]);
        der.extend_from_slice(&[0x31, 0x06, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01]);
        der.extend_from_slice(&[0x30, 0x16]);
        der.extend_from_slice(&DATA);
        der.extend_from_slice(&[0xa0, 0x09, 0x04, 0x07]);
        der.extend_from_slice(b"Hello\r\n");
        der.extend_from_slice(&[0x31, 0x00]);
        rewrites(&ber, &der);
    }

    #[test]
    fn der_input_is_borrowed() {
        unchanged(&[0x05, 0x00]);
        unchanged(&[0x04, 0x00]);
        unchanged(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xff]);
        // SET OF in unsorted order stays as it is.
        unchanged(&[0x31, 0x06, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01]);
        // High tag numbers: [31] primitive, [128] constructed, [APPLICATION u32::MAX].
        unchanged(&[
            0x30, 0x09, 0x9f, 0x1f, 0x00, 0xbf, 0x81, 0x00, 0x02, 0x05, 0x00,
        ]);
        unchanged(&[0x5f, 0x8f, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x2a]);
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend_from_slice(&[0xab; 256]);
        unchanged(&long);
    }

    #[test]
    fn minimizes_long_form_lengths() {
        rewrites(
            &[0x04, 0x81, 0x05, b'h', b'e', b'l', b'l', b'o'],
            &[0x04, 0x05, b'h', b'e', b'l', b'l', b'o'],
        );
        rewrites(&[0x04, 0x82, 0x00, 0x01, b'x'], &[0x04, 0x01, b'x']);
        rewrites(&[0x04, 0x81, 0x00], &[0x04, 0x00]);
        // Ten length octets, nine of them zero padding: valid BER.
        let mut padded = vec![0x04, 0x8a];
        padded.extend_from_slice(&[0; 9]);
        padded.extend_from_slice(&[0x01, b'x']);
        rewrites(&padded, &[0x04, 0x01, b'x']);
        // Constructed values too, and a high-tag-number identifier is kept as it is.
        rewrites(
            &[0xbf, 0x81, 0x00, 0x81, 0x03, 0x02, 0x01, 0x07],
            &[0xbf, 0x81, 0x00, 0x03, 0x02, 0x01, 0x07],
        );
        let mut long = vec![0x04, 0x83, 0x00, 0x01, 0x00];
        long.extend_from_slice(&[0xab; 256]);
        let mut minimal = vec![0x04, 0x82, 0x01, 0x00];
        minimal.extend_from_slice(&[0xab; 256]);
        rewrites(&long, &minimal);
    }

    #[test]
    fn joins_nested_and_definite_chunks() {
        rewrites(
            &[
                0x24, 0x80, 0x24, 0x80, 0x04, 0x01, b'a', 0x00, 0x00, 0x24, 0x03, 0x04, 0x01, b'b',
                0x04, 0x00, 0x00, 0x00,
            ],
            &[0x04, 0x02, b'a', b'b'],
        );
        rewrites(
            &[0x24, 0x06, 0x04, 0x01, b'a', 0x04, 0x01, b'b'],
            &[0x04, 0x02, b'a', b'b'],
        );
        rewrites(&[0x24, 0x80, 0x00, 0x00], &[0x04, 0x00]);
        rewrites(&[0x24, 0x00], &[0x04, 0x00]);
    }

    #[test]
    fn joins_constructed_character_strings() {
        // UTF8String chunks may be OCTET STRINGs (X.690 §8.23.5) or UTF8Strings.
        rewrites(
            &[0x2c, 0x80, 0x04, 0x01, b'a', 0x0c, 0x01, b'b', 0x00, 0x00],
            &[0x0c, 0x02, b'a', b'b'],
        );
        rewrites(
            &[0x36, 0x05, 0x16, 0x03, b'a', b'@', b'b'],
            &[0x16, 0x03, b'a', b'@', b'b'],
        );
    }

    #[test]
    fn leaves_schema_dependent_forms_constructed() {
        // BIT STRING chunks carry unused-bit counts: only the lengths change.
        rewrites(
            &[0x23, 0x80, 0x03, 0x02, 0x00, 0xff, 0x00, 0x00],
            &[0x23, 0x04, 0x03, 0x02, 0x00, 0xff],
        );
        // [0] IMPLICIT OCTET STRING cannot be told from an explicit tag without the schema.
        rewrites(
            &[0xa0, 0x80, 0x04, 0x01, b'a', 0x04, 0x01, b'b', 0x00, 0x00],
            &[0xa0, 0x06, 0x04, 0x01, b'a', 0x04, 0x01, b'b'],
        );
        // Primitive contents are never parsed, even when they look like BER.
        unchanged(&[0x04, 0x04, 0x30, 0x80, 0x00, 0x00]);
    }

    #[test]
    fn large_indefinite_value_gets_long_length() {
        let n = 70_000;
        let mut ber = vec![0x30, 0x80, 0x04, 0x83, 0x01, 0x11, 0x70];
        ber.resize(ber.len() + n, 0x5a);
        ber.extend_from_slice(&[0x00, 0x00]);
        let mut der = vec![0x30, 0x83, 0x01, 0x11, 0x75, 0x04, 0x83, 0x01, 0x11, 0x70];
        der.resize(der.len() + n, 0x5a);
        assert_eq!(der.len(), ber.len() + 1);
        rewrites(&ber, &der);
    }

    #[test]
    fn depth_limit() {
        let nested = |levels: usize| {
            let mut v = Vec::new();
            for _ in 0..levels {
                v.extend_from_slice(&[0x30, 0x80]);
            }
            for _ in 0..levels {
                v.extend_from_slice(&[0x00, 0x00]);
            }
            v
        };
        assert!(normalize(&nested(MAX_DEPTH)).is_ok());
        fails(
            &nested(MAX_DEPTH + 1),
            BerError::TooDeep {
                offset: 2 * MAX_DEPTH,
            },
        );
        // Chunks of a string count as levels too.
        let mut chunks = vec![0x30, 0x80];
        for _ in 1..MAX_DEPTH {
            chunks.extend_from_slice(&[0x24, 0x80]);
        }
        chunks.extend_from_slice(&[0x04, 0x00]);
        chunks.resize(chunks.len() + 2 * MAX_DEPTH, 0x00);
        fails(
            &chunks,
            BerError::TooDeep {
                offset: 2 * MAX_DEPTH,
            },
        );
    }

    #[test]
    fn truncated() {
        fails(&[], BerError::Truncated { offset: 0 });
        fails(&[0x30], BerError::Truncated { offset: 0 });
        fails(&[0x30, 0x05, 0x02, 0x01], BerError::Truncated { offset: 0 });
        fails(&[0x04, 0x82, 0x01], BerError::Truncated { offset: 0 });
        fails(&[0x9f, 0x81], BerError::Truncated { offset: 0 });
        // Missing, or half of, the end-of-contents octets.
        fails(&[0x30, 0x80, 0x05, 0x00], BerError::Truncated { offset: 0 });
        fails(
            &[0x30, 0x80, 0x05, 0x00, 0x00],
            BerError::Truncated { offset: 0 },
        );
        // A child longer than its parent, though not than the input.
        fails(
            &[0x30, 0x03, 0x04, 0x05, b'a', b'b', b'c', b'd', b'e'],
            BerError::Truncated { offset: 2 },
        );
        // End-of-contents beyond a definite-length parent does not close the child.
        fails(
            &[0x30, 0x02, 0x30, 0x80, 0x00, 0x00],
            BerError::Truncated { offset: 2 },
        );
        fails(
            &[0x04, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            BerError::Truncated { offset: 0 },
        );
    }

    #[test]
    fn trailing_bytes() {
        fails(
            &[0x05, 0x00, 0x00],
            BerError::TrailingBytes {
                offset: 2,
                count: 1,
            },
        );
        fails(
            &[0x30, 0x80, 0x00, 0x00, 0x00, 0x00],
            BerError::TrailingBytes {
                offset: 4,
                count: 2,
            },
        );
    }

    #[test]
    fn length_overflow() {
        let mut huge = vec![0x04, 0x89, 0x01];
        huge.extend_from_slice(&[0; 8]);
        fails(&huge, BerError::LengthOverflow { offset: 0 });
    }

    #[test]
    fn misplaced_end_of_contents() {
        fails(
            &[0x00, 0x00],
            BerError::UnexpectedEndOfContents { offset: 0 },
        );
        fails(
            &[0x30, 0x02, 0x00, 0x00],
            BerError::UnexpectedEndOfContents { offset: 2 },
        );
        fails(
            &[0x30, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00],
            BerError::MalformedEndOfContents { offset: 2 },
        );
    }

    #[test]
    fn bad_lengths_and_tags() {
        fails(
            &[0x04, 0x80, b'a', 0x00, 0x00],
            BerError::IndefinitePrimitive { offset: 0 },
        );
        fails(&[0x04, 0xff], BerError::ReservedLength { offset: 0 });
        fails(
            &[0x1f, 0x80, 0x21, 0x00],
            BerError::InvalidTag { offset: 0 },
        );
        fails(&[0x1f, 0x05, 0x00], BerError::InvalidTag { offset: 0 });
        fails(
            &[0x1f, 0x90, 0x80, 0x80, 0x80, 0x00, 0x00],
            BerError::TagNumberOverflow { offset: 0 },
        );
    }

    #[test]
    fn invalid_string_segments() {
        fails(
            &[0x24, 0x80, 0x02, 0x01, 0x00, 0x00, 0x00],
            BerError::InvalidStringSegment { offset: 2 },
        );
        fails(
            &[0x24, 0x03, 0x84, 0x01, b'a'],
            BerError::InvalidStringSegment { offset: 2 },
        );
        fails(
            &[0x2c, 0x03, 0x13, 0x01, b'a'],
            BerError::InvalidStringSegment { offset: 2 },
        );
    }

    #[test]
    fn error_messages_are_lowercase() {
        let err = normalize(&[0x05, 0x00, 0x00]).expect_err("trailing");
        assert_eq!(
            err.to_string(),
            "1 trailing byte(s) after the top-level value at offset 2"
        );
        let err = normalize(&[]).expect_err("empty");
        assert_eq!(
            err.to_string(),
            "truncated input: the value at offset 0 runs past its end"
        );
    }
}
