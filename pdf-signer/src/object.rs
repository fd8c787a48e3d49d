//! Writing PDF objects (ISO 32000-2 §7.3) for incremental updates, and the text forms the
//! signature dictionary uses (text strings §7.9.2.2, dates §7.9.4).
//!
//! The signer writes its objects itself rather than through lopdf's writer: it must know the
//! byte offset of every object and of the /Contents hole, and it re-writes objects it read
//! (the catalog, a page) exactly as values, so that a verifier comparing revisions sees only
//! the keys that were meant to change.

use lopdf::{Dictionary, Object, StringFormat};

/// Appends `o` to `out`.
pub fn write(out: &mut Vec<u8>, o: &Object) {
    match o {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Object::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Object::Real(r) => write_real(out, *r),
        Object::Name(n) => write_name(out, n),
        Object::String(s, StringFormat::Hexadecimal) => {
            out.push(b'<');
            out.extend_from_slice(hex::encode_upper(s).as_bytes());
            out.push(b'>');
        }
        Object::String(s, StringFormat::Literal) => write_literal(out, s),
        Object::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Object::Dictionary(d) => write_dict(out, d),
        Object::Stream(s) => {
            let mut dict = s.dict.clone();
            dict.set("Length", Object::Integer(len_i64(s.content.len())));
            write_dict(out, &dict);
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(&s.content);
            out.extend_from_slice(b"\nendstream");
        }
        Object::Reference((n, g)) => out.extend_from_slice(format!("{n} {g} R").as_bytes()),
    }
}

/// Appends a dictionary.
pub fn write_dict(out: &mut Vec<u8>, d: &Dictionary) {
    out.extend_from_slice(b"<<");
    for (k, v) in d.iter() {
        write_name(out, k);
        out.push(b' ');
        write(out, v);
    }
    out.extend_from_slice(b">>");
}

/// A length or offset as a PDF integer (files over 2^63 bytes do not exist).
pub fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn write_real(out: &mut Vec<u8>, r: f32) {
    if !r.is_finite() {
        out.push(b'0');
        return;
    }
    // Rust prints the shortest form that reads back as the same f32, never an exponent for
    // the magnitudes PDF allows.
    let s = format!("{r}");
    out.extend_from_slice(s.as_bytes());
}

/// A name, with every byte outside the regular printable range written as `#xx` (§7.3.5).
fn write_name(out: &mut Vec<u8>, n: &[u8]) {
    out.push(b'/');
    for &b in n {
        let delimiter = b"()<>[]{}/%#".contains(&b);
        if (b'!'..=b'~').contains(&b) && !delimiter {
            out.push(b);
        } else {
            out.extend_from_slice(format!("#{b:02X}").as_bytes());
        }
    }
}

/// A literal string with `\`, `(` and `)` escaped, and CR and LF written as escapes so that
/// no reader's end-of-line normalisation can change the value.
fn write_literal(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'(');
    for &b in s {
        match b {
            b'\\' | b'(' | b')' => {
                out.push(b'\\');
                out.push(b);
            }
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b')');
}

/// A text string (§7.9.2.2): PDFDocEncoding when the text is printable ASCII, else UTF-16BE
/// with its byte order mark.
pub fn text_string(s: &str) -> Object {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Object::String(s.as_bytes().to_vec(), StringFormat::Literal)
    } else {
        let mut bytes = vec![0xfe, 0xff];
        for u in s.encode_utf16() {
            bytes.extend_from_slice(&u.to_be_bytes());
        }
        Object::String(bytes, StringFormat::Hexadecimal)
    }
}

/// Reads a text string back (PDFDocEncoding read as Latin-1, which agrees on the printable
/// range; UTF-16BE with a byte order mark; UTF-8 with its mark, PDF 2.0).
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A PDF date (§7.9.4) in UTC: `D:YYYYMMDDHHmmSSZ`.
pub fn pdf_date(unix: i64) -> String {
    let t = pki::gentime::GenTime::from_unix_timestamp(unix, 0)
        .or_else(|_| pki::gentime::GenTime::from_unix_timestamp(0, 0));
    format!("D:{}", t.map(|t| t.compact()).unwrap_or_default())
}

/// Reads a PDF date (`D:YYYYMMDDHHmmSSOHH'mm'`, every part after the year optional), Unix
/// seconds; `None` when it is not one.
pub fn parse_pdf_date(s: &str) -> Option<i64> {
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return None;
    }
    let part = |from: usize, len: usize, default: u32| -> Option<u32> {
        match digits.get(from..from + len) {
            Some(p) => p.parse().ok(),
            None if digits.len() <= from => Some(default),
            None => None,
        }
    };
    let year: i32 = digits.get(0..4)?.parse().ok()?;
    let month = u8::try_from(part(4, 2, 1)?).ok()?;
    let day = u8::try_from(part(6, 2, 1)?).ok()?;
    let hour = u8::try_from(part(8, 2, 0)?).ok()?;
    let minute = u8::try_from(part(10, 2, 0)?).ok()?;
    let second = u8::try_from(part(12, 2, 0)?).ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let t = date.with_hms(hour, minute, second).ok()?.assume_utc();
    let rest = &s[digits.len()..];
    let offset = match rest.as_bytes().first() {
        Some(sign @ (b'+' | b'-')) => {
            let nums: Vec<i64> = rest[1..]
                .split(|c: char| !c.is_ascii_digit())
                .filter(|p| !p.is_empty())
                .take(2)
                .filter_map(|p| p.parse().ok())
                .collect();
            let secs =
                nums.first().copied().unwrap_or(0) * 3600 + nums.get(1).copied().unwrap_or(0) * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => 0,
    };
    Some(t.unix_timestamp() - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(o: &Object) -> String {
        let mut out = Vec::new();
        write(&mut out, o);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn names_and_strings_are_escaped() {
        assert_eq!(text(&Object::Name(b"A B#(".to_vec())), "/A#20B#23#28");
        assert_eq!(
            text(&Object::String(b"a(b)\\\n".to_vec(), StringFormat::Literal)),
            "(a\\(b\\)\\\\\\n)"
        );
        assert_eq!(text(&Object::Real(595.276)), "595.276");
    }

    #[test]
    fn text_strings_round_trip() {
        for s in ["Alice", "Zoë Ünal", "署名"] {
            let Object::String(b, _) = text_string(s) else {
                panic!("not a string");
            };
            assert_eq!(decode_text(&b), s);
        }
    }

    #[test]
    fn dates_round_trip_and_honour_offsets() {
        assert_eq!(pdf_date(1_700_000_000), "D:20231114221320Z");
        assert_eq!(
            parse_pdf_date("D:20231114221320+00'00'"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_pdf_date("D:20231114231320+01'00'"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_pdf_date("D:20231114221320Z"), Some(1_700_000_000));
        assert_eq!(parse_pdf_date("D:2023"), Some(1_672_531_200));
        assert_eq!(parse_pdf_date("yesterday"), None);
    }
}
