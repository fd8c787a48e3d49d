//! The appearance of a visible signature (ISO 32000-2 §12.7.4.5, §12.5.5): a form XObject with
//! a frame and a few lines of text in Helvetica (a standard font: nothing to embed), scaled to
//! the widget's rectangle.

use lopdf::{Dictionary, Object, Stream};

/// A form XObject of `width` × `height` points showing `lines`; `font` is the font dictionary's
/// object reference.
pub fn signature_appearance(width: f32, height: f32, lines: &[String], font: Object) -> Object {
    let w = width.max(1.0);
    let h = height.max(1.0);
    let count = u16::try_from(lines.len().max(1)).unwrap_or(u16::MAX);
    // Font size: the lines fill the height with a little leading, and the longest line fits
    // the width (Helvetica averages about half an em per character).
    let longest = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let by_height = (h - 4.0) / (f32::from(count) * 1.25);
    let by_width = (w - 8.0) / (f32::from(u16::try_from(longest).unwrap_or(u16::MAX)) * 0.52);
    let size = by_height.min(by_width).clamp(2.0, 14.0);
    let mut content = format!(
        "q 0.96 0.97 1 rg 0 0 {w} {h} re f 0.2 0.3 0.6 RG 1 w 0.5 0.5 {} {} re S Q\n",
        w - 1.0,
        h - 1.0
    );
    content.push_str(&format!(
        "BT /F1 {size} Tf 0.1 0.1 0.2 rg {} TL 4 {} Td\n",
        size * 1.25,
        h - 2.0 - size
    ));
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            content.push_str("T* ");
        }
        content.push('(');
        content.push_str(&escape_win_ansi(line));
        content.push_str(") Tj\n");
    }
    content.push_str("ET\n");

    let mut fonts = Dictionary::new();
    fonts.set("F1", font);
    let mut resources = Dictionary::new();
    resources.set("Font", Object::Dictionary(fonts));
    let mut dict = Dictionary::new();
    dict.set("Type", Object::Name(b"XObject".to_vec()));
    dict.set("Subtype", Object::Name(b"Form".to_vec()));
    dict.set(
        "BBox",
        Object::Array(vec![
            Object::Integer(0),
            Object::Integer(0),
            Object::Real(w),
            Object::Real(h),
        ]),
    );
    dict.set("Resources", Object::Dictionary(resources));
    Object::Stream(Stream::new(dict, content.into_bytes()))
}

/// An empty appearance for an invisible signature (PDF/A and some viewers want one).
pub fn empty_appearance() -> Object {
    let mut dict = Dictionary::new();
    dict.set("Type", Object::Name(b"XObject".to_vec()));
    dict.set("Subtype", Object::Name(b"Form".to_vec()));
    dict.set("BBox", Object::Array(vec![Object::Integer(0); 4]));
    Object::Stream(Stream::new(dict, Vec::new()))
}

/// Helvetica with WinAnsiEncoding, the font the appearance uses.
pub fn helvetica() -> Object {
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type1".to_vec()));
    font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
    font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
    Object::Dictionary(font)
}

/// A literal-string body in WinAnsiEncoding: Latin-1 characters as their byte, escaped; others
/// as `?` (the standard fonts have no glyphs for them).
fn escape_win_ansi(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{ff}' => out.push_str(&format!("\\{:03o}", u32::from(c))),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_a_literal_string() {
        assert_eq!(escape_win_ansi("a(b)\\ é 署"), "a\\(b\\)\\\\ \\351 ?");
    }

    #[test]
    fn the_appearance_is_a_form_with_the_lines() {
        let Object::Stream(s) =
            signature_appearance(200.0, 50.0, &["Signed by Alice".into()], Object::Null)
        else {
            panic!("not a stream");
        };
        assert!(s.dict.has_type(b"XObject"));
        assert!(String::from_utf8_lossy(&s.content).contains("(Signed by Alice) Tj"));
    }
}
