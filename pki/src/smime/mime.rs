//! The few MIME facts S/MIME needs, on raw bytes: line ends, the header/body split, header
//! fields, and the strict multipart split of RFC 2046 §5.1.1 that says which bytes a
//! multipart/signed signature covers.
//!
//! Structured header values (Content-Type parameters with RFC 2231 continuations and quoting,
//! addresses, dates) are read by mail-parser, never by hand. The multipart split is ours
//! because it must be exact: mail-parser, like most mail readers, also takes a "--boundary"
//! in the middle of a line as a delimiter, and what a verifier hashes must be exactly the
//! entity RFC 1847 §2.1 designates. The verifier compares both readings and refuses a message
//! on which they disagree (a parser-differential attack).

use std::borrow::Cow;

/// The longest line RFC 5322 §2.1.1 allows, without its CRLF.
pub const MAX_LINE: usize = 998;

/// `input` with every bare LF turned into CRLF (RFC 5322 line ends, the canonical form RFC 8551
/// §3.1.1 signs); borrowed when there is none.
pub fn crlf(input: &[u8]) -> Cow<'_, [u8]> {
    let bare = input
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || input[i - 1] != b'\r'));
    if !bare {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    for (i, b) in input.iter().enumerate() {
        if *b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(*b);
    }
    Cow::Owned(out)
}

/// Splits an entity at the empty line after its header block: (header block with its last
/// line end, body). An entity without an empty line is all header block; one that starts
/// with an empty line has no header fields.
pub fn split_entity(entity: &[u8]) -> (&[u8], &[u8]) {
    if entity.starts_with(b"\r\n") {
        return (&entity[..0], &entity[2..]);
    }
    if entity.starts_with(b"\n") {
        return (&entity[..0], &entity[1..]);
    }
    let mut i = 0;
    while let Some(p) = memchr(b'\n', &entity[i..]) {
        let nl = i + p;
        let rest = &entity[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return (&entity[..=nl], &rest[2..]);
        }
        if rest.starts_with(b"\n") {
            return (&entity[..=nl], &rest[1..]);
        }
        i = nl + 1;
    }
    (entity, &entity[entity.len()..])
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// One header field as it sits in the header block.
#[derive(Clone, Debug)]
pub struct Field<'a> {
    /// The field name (as written).
    pub name: &'a str,
    /// The whole field, name, colon, value and folded continuation lines, without its final
    /// line end.
    pub raw: &'a [u8],
    /// The value after the colon (folded lines included), raw.
    pub value: &'a [u8],
}

impl Field<'_> {
    /// Whether the name is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether this is a MIME content field (`Content-*`), which belongs to the entity rather
    /// than to the message (RFC 2045 §9).
    pub fn is_content(&self) -> bool {
        self.name.len() > 8 && self.name[..8].eq_ignore_ascii_case("content-")
    }
}

/// The header fields of a header block, in order. A line that is neither a field nor a
/// continuation is an error naming it.
pub fn fields(block: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    let end_of_field = |from: usize, to: usize| -> Result<Field<'_>, String> {
        let raw = trim_line_end(&block[from..to]);
        let colon = raw
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| format!("header line without a colon: {:?}", preview(raw)))?;
        let name = std::str::from_utf8(&raw[..colon])
            .ok()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b':'))
            .ok_or_else(|| format!("malformed header field name: {:?}", preview(raw)))?;
        Ok(Field {
            name,
            raw,
            value: &raw[colon + 1..],
        })
    };
    while i < block.len() {
        let line_end = memchr(b'\n', &block[i..]).map_or(block.len(), |p| i + p + 1);
        let continuation = matches!(block[i], b' ' | b'\t');
        if !continuation {
            if let Some(s) = start.take() {
                out.push(end_of_field(s, i)?);
            }
            start = Some(i);
        } else if start.is_none() {
            return Err("the header block starts with a continuation line".into());
        }
        i = line_end;
    }
    if let Some(s) = start {
        out.push(end_of_field(s, block.len())?);
    }
    Ok(out)
}

fn trim_line_end(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn preview(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned()
}

/// A Content-Type, read by mail-parser: `type/subtype` in lower case and the parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower case.
    pub mime: String,
    /// Parameters, names in lower case, values as given (RFC 2231 decoded).
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// RFC 2045 §5.2: what a missing Content-Type means.
    pub fn default_text() -> ContentType {
        ContentType {
            mime: "text/plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
        }
    }

    /// Reads a Content-Type field value.
    pub fn parse(value: &[u8]) -> Option<ContentType> {
        let mut field = b"Content-Type:".to_vec();
        field.extend_from_slice(value);
        field.extend_from_slice(b"\r\n\r\n");
        let msg = mail_parser::MessageParser::new().parse_headers(&field)?;
        let ct = msg
            .root_part()
            .headers
            .iter()
            .find_map(|h| h.value.as_content_type())?;
        Some(ContentType::from_parsed(ct))
    }

    /// From mail-parser's reading.
    pub fn from_parsed(ct: &mail_parser::ContentType<'_>) -> ContentType {
        let mime = match ct.subtype() {
            Some(s) => format!("{}/{}", ct.ctype(), s),
            None => ct.ctype().to_owned(),
        }
        .to_ascii_lowercase();
        let params = ct
            .attributes()
            .unwrap_or_default()
            .iter()
            .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
            .collect();
        ContentType { mime, params }
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a `multipart/*` type.
    pub fn is_multipart(&self) -> bool {
        self.mime.starts_with("multipart/")
    }
}

/// The Content-Type of an entity's fields (the RFC 2045 default when there is none; `None` when
/// the field is there but unreadable, or given twice).
pub fn content_type(fields: &[Field<'_>]) -> Option<ContentType> {
    let mut found = fields.iter().filter(|f| f.is("Content-Type"));
    match (found.next(), found.next()) {
        (None, _) => Some(ContentType::default_text()),
        (Some(f), None) => ContentType::parse(f.value),
        (Some(_), Some(_)) => None,
    }
}

/// The Content-Transfer-Encoding, lower case (`7bit` when absent, RFC 2045 §6.1).
pub fn transfer_encoding(fields: &[Field<'_>]) -> String {
    fields
        .iter()
        .find(|f| f.is("Content-Transfer-Encoding"))
        .map(|f| String::from_utf8_lossy(f.value).trim().to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into())
}

/// A message's Message-ID (without angle brackets), read by mail-parser.
pub fn message_id(message: &[u8]) -> Option<String> {
    let (block, _) = split_entity(message);
    mail_parser::MessageParser::new()
        .parse_headers(block)?
        .message_id()
        .map(str::to_owned)
}

/// The addresses of a message's To and Cc fields, in order, without duplicates (compared
/// without regard to case): whom a statement is encrypted to when no recipient is named.
pub fn recipient_addresses(message: &[u8]) -> Vec<String> {
    let (block, _) = split_entity(message);
    let Some(parsed) = mail_parser::MessageParser::new().parse_headers(block) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for list in [parsed.to(), parsed.cc()].into_iter().flatten() {
        for addr in list.iter() {
            if let Some(a) = addr.address()
                && !out.iter().any(|o| o.eq_ignore_ascii_case(a))
            {
                out.push(a.to_owned());
            }
        }
    }
    out
}

/// The content of a body in the transfer encoding `cte` (lower case): base64 (white space
/// ignored) and quoted-printable are decoded, anything else is the body itself.
pub fn decode_transfer<'a>(cte: &str, body: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
    use base64::Engine;
    match cte {
        "base64" => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map(Cow::Owned)
                .map_err(|e| format!("bad base64: {e}"))
        }
        "quoted-printable" => quoted_printable::decode(body, quoted_printable::ParseMode::Robust)
            .map(Cow::Owned)
            .map_err(|e| format!("bad quoted-printable: {e}")),
        _ => Ok(Cow::Borrowed(body)),
    }
}

/// A multipart body split at its delimiter lines (RFC 2046 §5.1.1).
#[derive(Clone, Debug)]
pub struct Multipart<'a> {
    /// Bytes before the first delimiter line (not including the line end before it).
    pub preamble: &'a [u8],
    /// Each body part: from after its delimiter line's line end to before the line end that
    /// precedes the next delimiter line (RFC 2046: that line end belongs to the delimiter).
    pub parts: Vec<&'a [u8]>,
    /// Bytes after the close-delimiter line (its line end included), or empty.
    pub epilogue: &'a [u8],
    /// Whether the close delimiter (`--boundary--`) was found.
    pub closed: bool,
}

/// Splits `body` at the lines that are exactly `--boundary` or `--boundary--`, each optionally
/// followed by spaces or tabs (transport padding), at the start of a line. A line that merely
/// starts with the delimiter and goes on is content, as RFC 2046 says; so is a delimiter in the
/// middle of a line. Accepts CRLF and bare-LF line ends (for signing input saved on Unix).
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Multipart<'a>, String> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(format!(
            "the multipart boundary is {} characters long; RFC 2046 allows 1 to 70",
            boundary.len()
        ));
    }
    let delim = [b"--".as_slice(), boundary.as_bytes()].concat();
    // (start of the line end before the delimiter line or of the line itself, start of the
    // delimiter line, end of the delimiter line including its line end, is it the close).
    let mut lines: Vec<(usize, usize, usize, bool)> = Vec::new();
    let mut line_start = 0;
    while line_start <= body.len() {
        let next_nl = memchr(b'\n', &body[line_start..]).map(|p| line_start + p);
        let line_end = next_nl.map_or(body.len(), |p| p + 1);
        let line = trim_line_end(&body[line_start..line_end]);
        if let Some(rest) = line.strip_prefix(delim.as_slice()) {
            let (close, pad) = match rest.strip_prefix(b"--") {
                Some(p) => (true, p),
                None => (false, rest),
            };
            if pad.iter().all(|b| matches!(b, b' ' | b'\t')) {
                let before = if line_start >= 2 && &body[line_start - 2..line_start] == b"\r\n" {
                    line_start - 2
                } else if line_start >= 1 && body[line_start - 1] == b'\n' {
                    line_start - 1
                } else {
                    line_start
                };
                lines.push((before, line_start, line_end, close));
                if close {
                    break;
                }
            }
        }
        match next_nl {
            Some(p) => line_start = p + 1,
            None => break,
        }
    }
    let Some(first) = lines.first() else {
        return Err(format!(
            "no delimiter line --{boundary} in the multipart body"
        ));
    };
    if first.3 {
        return Err("the multipart body closes before its first part".into());
    }
    let preamble = &body[..first.0];
    let mut parts = Vec::with_capacity(lines.len());
    for w in lines.windows(2) {
        // Two delimiter lines in a row share one line end: the part between them is empty.
        parts.push(&body[w[0].2..w[1].0.max(w[0].2)]);
    }
    let last = lines[lines.len() - 1];
    let (closed, epilogue) = if last.3 {
        (true, &body[last.2..])
    } else {
        // No close delimiter: the last part runs to the end.
        parts.push(&body[last.2..]);
        (false, &body[body.len()..])
    };
    Ok(Multipart {
        preamble,
        parts,
        epilogue,
        closed,
    })
}

/// Whether `body` can travel as 7bit text unchanged (RFC 2045 §2.7): ASCII without NUL, CR
/// only in CRLF, lines of at most [`MAX_LINE`] octets. `strict_text` also refuses what relays
/// are known to alter (trailing spaces or tabs, a line starting with "From " that mbox files
/// escape), so that such a text part is quoted-printable encoded before signing.
pub fn seven_bit_safe(body: &[u8], strict_text: bool) -> bool {
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE || line.iter().any(|b| *b == 0 || *b == b'\r' || *b >= 0x80) {
            return false;
        }
        if strict_text
            && (line.ends_with(b" ") || line.ends_with(b"\t") || line.starts_with(b"From "))
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_turns_bare_lf_only() {
        assert_eq!(&*crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert!(matches!(crlf(b"a\r\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn split_multipart_takes_the_line_end_before_a_delimiter_as_the_delimiter_s() {
        let body = b"pre\r\n--b\r\nA\r\n\r\n--b  \r\npart2\r\n--b--\r\nepi";
        let m = split_multipart(body, "b").expect("splits");
        assert_eq!(m.preamble, b"pre");
        assert_eq!(m.parts, vec![b"A\r\n".as_slice(), b"part2".as_slice()]);
        assert_eq!(m.epilogue, b"epi");
        assert!(m.closed);
    }

    #[test]
    fn split_multipart_ignores_delimiters_mid_line_and_longer_boundaries() {
        let body = b"--b\r\nx --b\r\n--bb\r\n--b-x\r\n--b--\r\n";
        let m = split_multipart(body, "b").expect("splits");
        assert_eq!(m.parts, vec![b"x --b\r\n--bb\r\n--b-x".as_slice()]);
        let m = split_multipart(b"--b\r\n--b\r\n--b--", "b").expect("splits");
        assert_eq!(m.parts, vec![b"".as_slice(), b"".as_slice()]);
    }

    #[test]
    fn fields_keep_folded_lines() {
        let f = fields(b"A: 1\r\nContent-Type: text/plain;\r\n charset=x\r\n").expect("fields");
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].raw, b"Content-Type: text/plain;\r\n charset=x");
        assert!(f[1].is_content());
        let ct = content_type(&f).expect("content type");
        assert_eq!(ct.mime, "text/plain");
        assert_eq!(ct.param("charset"), Some("x"));
    }
}
