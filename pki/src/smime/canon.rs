//! Making a message signable (RFC 8551 §3.1): the MIME entity that is signed is put in
//! canonical form (CRLF line ends) and given transfer encodings that survive 7-bit transports
//! unchanged, because a relay that re-encodes 8-bit text or re-wraps a long line breaks the
//! signature.
//!
//! The message's own header fields stay on the outer message, except the `Content-*` fields,
//! which describe the body and move into the signed entity (RFC 2045 §9). Inside the entity,
//! each leaf part is kept byte for byte when it is already 7-bit safe, and otherwise
//! re-encoded: text as quoted-printable (its line breaks kept as hard CRLF breaks), anything
//! else as base64. Text parts with trailing white space or a line starting with "From " are
//! quoted-printable encoded too: relays strip the one and mbox files escape the other.
//! Multipart containers are walked; a nested message/rfc822 is walked as a message.

use super::mime::{self, Field, seven_bit_safe, split_entity};
use crate::error::{Error, Result};
use base64::Engine;

/// Deepest MIME nesting accepted when signing (containers and nested messages).
pub const MAX_DEPTH: usize = 32;

/// A message split for signing.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The header fields that stay on the outer message, each without its line end, CRLF
    /// inside folded fields. MIME-Version is left out: the signed message writes its own.
    pub outer_fields: Vec<Vec<u8>>,
    /// The entity to sign: the `Content-*` fields and the body, canonical and 7-bit safe.
    pub entity: Vec<u8>,
}

/// Splits `message` (RFC 5322, CRLF or LF line ends) into the outer header fields and the
/// canonical entity to sign.
pub fn prepare(message: &[u8]) -> Result<Prepared> {
    let (block, body) = split_entity(message);
    let all = mime::fields(block).map_err(|e| Error::invalid("message header", e))?;
    if all.is_empty() {
        return Err(Error::invalid(
            "message",
            "no header fields: not an RFC 5322 message",
        ));
    }
    let outer_fields = all
        .iter()
        .filter(|f| !f.is_content() && !f.is("MIME-Version"))
        .map(|f| mime::crlf(f.raw).into_owned())
        .collect();
    let mut content: Vec<Field<'_>> = all.into_iter().filter(Field::is_content).collect();
    let default_ct;
    if !content.iter().any(|f| f.is("Content-Type")) {
        default_ct = if seven_bit_safe(body, false) || std::str::from_utf8(body).is_err() {
            b"Content-Type: text/plain; charset=us-ascii".to_vec()
        } else {
            b"Content-Type: text/plain; charset=utf-8".to_vec()
        };
        content.insert(
            0,
            Field {
                name: "Content-Type",
                raw: &default_ct,
                value: &default_ct[13..],
            },
        );
    }
    let entity = entity(&content, body, 0)?;
    Ok(Prepared {
        outer_fields,
        entity,
    })
}

/// The canonical, 7-bit-safe form of the entity made of `fields` and `body`.
fn entity(fields: &[Field<'_>], body: &[u8], depth: usize) -> Result<Vec<u8>> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid(
            "message",
            format!("MIME parts nested more than {MAX_DEPTH} deep"),
        ));
    }
    let ct = mime::content_type(fields).ok_or_else(|| {
        Error::invalid(
            "message",
            "a Content-Type field is unreadable or given twice",
        )
    })?;
    let cte = mime::transfer_encoding(fields);
    let (new_body, new_cte): (Vec<u8>, String) = if ct.is_multipart() {
        if !matches!(cte.as_str(), "7bit" | "8bit" | "binary") {
            return Err(Error::invalid(
                "message",
                format!(
                    "a {} part is {cte} encoded; RFC 2045 §6.4 forbids it",
                    ct.mime
                ),
            ));
        }
        (multipart(&ct, body, depth)?, "7bit".to_owned())
    } else if matches!(ct.mime.as_str(), "message/rfc822" | "message/global") {
        if seven_bit_safe(body, false) {
            (mime::crlf(body).into_owned(), "7bit".to_owned())
        } else {
            let (b, inner_body) = split_entity(body);
            let inner = mime::fields(b).map_err(|e| Error::invalid("attached message", e))?;
            (entity(&inner, inner_body, depth + 1)?, "7bit".to_owned())
        }
    } else {
        leaf(&ct.mime, &cte, body)?
    };
    let mut out = Vec::with_capacity(new_body.len() + 256);
    for f in fields.iter().filter(|f| !f.is("Content-Transfer-Encoding")) {
        out.extend_from_slice(&mime::crlf(f.raw));
        out.extend_from_slice(b"\r\n");
    }
    // RFC 2045 §6.1: 7bit is the default; write the field when the entity had one or needs one.
    let had_cte = fields.iter().any(|f| f.is("Content-Transfer-Encoding"));
    if new_cte != "7bit" || had_cte {
        out.extend_from_slice(b"Content-Transfer-Encoding: ");
        out.extend_from_slice(new_cte.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&new_body);
    Ok(out)
}

fn multipart(ct: &mime::ContentType, body: &[u8], depth: usize) -> Result<Vec<u8>> {
    let boundary = ct
        .param("boundary")
        .ok_or_else(|| Error::invalid("message", format!("a {} part has no boundary", ct.mime)))?;
    let mp = mime::split_multipart(body, boundary).map_err(|e| Error::invalid("message", e))?;
    let mut out = Vec::with_capacity(body.len() + 256);
    // A preamble or epilogue is not shown to anyone; keep it only when it is 7-bit safe.
    if !mp.preamble.is_empty() && seven_bit_safe(mp.preamble, false) {
        out.extend_from_slice(&mime::crlf(mp.preamble));
        out.extend_from_slice(b"\r\n");
    }
    for part in &mp.parts {
        let (b, part_body) = split_entity(part);
        let f = mime::fields(b).map_err(|e| Error::invalid("message part", e))?;
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&entity(&f, part_body, depth + 1)?);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    if !mp.epilogue.is_empty() && seven_bit_safe(mp.epilogue, false) {
        out.extend_from_slice(&mime::crlf(mp.epilogue));
    }
    // Re-encoding must not have put a delimiter line into a part (quoted-printable wraps
    // lines, which could move a "--boundary" inside the text to the start of a line).
    let again = mime::split_multipart(&out, boundary).map_err(|e| Error::invalid("message", e))?;
    if again.parts.len() != mp.parts.len() {
        return Err(Error::invalid(
            "message",
            format!(
                "re-encoding a part of a {} put its boundary at the start of a line",
                ct.mime
            ),
        ));
    }
    Ok(out)
}

/// A leaf's new body and transfer encoding.
fn leaf(mime_type: &str, cte: &str, body: &[u8]) -> Result<(Vec<u8>, String)> {
    let text = mime_type.starts_with("text/");
    match cte {
        "base64" | "quoted-printable" if seven_bit_safe(body, false) => {
            Ok((mime::crlf(body).into_owned(), cte.to_owned()))
        }
        "base64" | "quoted-printable" => {
            let raw =
                mime::decode_transfer(cte, body).map_err(|e| Error::invalid("message part", e))?;
            Ok(encode(text, &raw))
        }
        "7bit" | "8bit" | "binary" => {
            if seven_bit_safe(body, text) {
                Ok((mime::crlf(body).into_owned(), "7bit".to_owned()))
            } else {
                Ok(encode(text, body))
            }
        }
        // x-uuencode and the like, already 7-bit: kept as they are, encoding label included.
        other if seven_bit_safe(body, false) => {
            Ok((mime::crlf(body).into_owned(), other.to_owned()))
        }
        other => Err(Error::invalid(
            "message part",
            format!("unknown Content-Transfer-Encoding {other:?} on 8-bit content"),
        )),
    }
}

/// Text as quoted-printable with CRLF hard line breaks; anything else as base64.
fn encode(text: bool, raw: &[u8]) -> (Vec<u8>, String) {
    if text {
        (
            quoted_printable_text(&mime::crlf(raw)),
            "quoted-printable".to_owned(),
        )
    } else {
        (base64_lines(raw), "base64".to_owned())
    }
}

/// Quoted-printable (RFC 2045 §6.7) of CRLF text, line breaks kept as hard breaks, and a
/// line-initial "From " written as "=46rom " so that no mbox writer alters it.
pub fn quoted_printable_text(text: &[u8]) -> Vec<u8> {
    let encoded = quoted_printable::encode(text);
    let mut out = Vec::with_capacity(encoded.len() + 16);
    for (i, line) in encoded.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        match line.strip_prefix(b"From ") {
            Some(rest) => {
                out.extend_from_slice(b"=46rom ");
                out.extend_from_slice(rest);
            }
            None => out.extend_from_slice(line),
        }
    }
    mime::crlf(&out).into_owned()
}

/// Base64 in lines of 76 characters, each ended by CRLF (RFC 2045 §6.8).
pub fn base64_lines(raw: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38 + 2);
    for chunk in text.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(m: &[u8]) -> Prepared {
        prepare(m).expect("prepares")
    }

    #[test]
    fn lf_only_seven_bit_text_becomes_crlf_and_keeps_its_bytes() {
        let p = prepared(b"From: a@b\nSubject: x\nContent-Type: text/plain\n\nhello\nworld\n");
        assert_eq!(
            p.outer_fields,
            vec![b"From: a@b".to_vec(), b"Subject: x".to_vec()]
        );
        assert_eq!(
            p.entity,
            b"Content-Type: text/plain\r\n\r\nhello\r\nworld\r\n"
        );
    }

    #[test]
    fn eight_bit_text_becomes_quoted_printable() {
        let p = prepared(
            "From: a@b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nZürich\nFrom here\n"
                .as_bytes(),
        );
        let e = String::from_utf8(p.entity).expect("ascii");
        assert!(
            e.contains("Content-Transfer-Encoding: quoted-printable\r\n"),
            "{e}"
        );
        assert!(e.contains("Z=C3=BCrich\r\n=46rom here\r\n"), "{e}");
        assert!(!e.contains("8bit"));
    }

    #[test]
    fn binary_attachment_becomes_base64_and_long_lines_are_wrapped() {
        let long = "x".repeat(1200);
        let m = format!(
            "From: a@b\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\n\n{long}\n--zz\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n\u{0}\u{1}\u{ff}\n--zz--\n"
        );
        let p = prepared(m.as_bytes());
        let e = String::from_utf8(p.entity).expect("ascii");
        assert!(e.lines().all(|l| l.len() <= 998), "{e}");
        assert!(
            e.contains("Content-Transfer-Encoding: base64\r\n\r\nAAHDvw==\r\n"),
            "{e}"
        );
        assert!(
            e.contains("Content-Transfer-Encoding: quoted-printable"),
            "{e}"
        );
        assert!(e.ends_with("--zz--\r\n"), "{e}");
        assert!(
            !e.contains("\r\r") && !e.replace("\r\n", "").contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn other_seven_bit_encodings_keep_their_label() {
        let p = prepared(
            b"From: a@b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n`\nend\n",
        );
        let e = String::from_utf8(p.entity).expect("ascii");
        assert!(
            e.contains("Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n"),
            "{e}"
        );
    }

    #[test]
    fn message_without_content_type_gets_the_default() {
        let p = prepared(b"From: a@b\n\nhi\n");
        assert_eq!(
            p.entity,
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhi\r\n"
        );
    }
}
