//! Escaping of untrusted text for a terminal.
//!
//! A token's statusString, its TSA name, certificate DNs and anything derived from them are
//! chosen by whoever made the token. Printed raw, an escape sequence (`ESC [2K`, a carriage
//! return) could erase "NOT VERIFIED" and paint "VERIFIED" in its place, and a bidi override
//! could reorder what is shown. Human output therefore shows every C0 control, DEL and C1
//! control as `\xNN` (newlines inside a field included), and every Unicode bidi embedding,
//! override, isolate and mark as `\u{NNNN}`. JSON output is serde_json's exact encoding and is
//! never passed through here.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is a bidi control: embeddings and overrides (U+202A..U+202E), isolates
/// (U+2066..U+2069), and the marks U+200E, U+200F, U+061C.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// `s` with control characters and bidi controls made visible; borrowed when nothing needed it.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            // C0, DEL and C1 are all below U+0100: two hex digits suffice.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else if is_bidi_control(c) {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    /// Why: the repaint attack must show as inert text, on one line.
    #[test]
    fn escape_sequences_and_newlines_become_visible() {
        assert_eq!(
            escape("\u{1b}[2K\rVERIFIED\n"),
            "\\x1b[2K\\x0dVERIFIED\\x0a"
        );
        assert_eq!(escape("a\u{7f}b\u{9b}c\u{0}"), "a\\x7fb\\x9bc\\x00");
    }

    /// Why: bidi overrides and isolates reorder what a reader sees.
    #[test]
    fn bidi_controls_become_visible() {
        assert_eq!(
            escape("x\u{202e}DEIFIREV\u{2066}y\u{2069}"),
            "x\\u{202e}DEIFIREV\\u{2066}y\\u{2069}"
        );
    }

    /// Why: ordinary names (accents, CJK, RFC 4514 escapes) must print unchanged.
    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["CN=Zoë Ærø,O=株式会社,C=JP", "CN=a\\,b", ""] {
            assert!(matches!(escape(s), std::borrow::Cow::Borrowed(b) if b == s));
        }
    }
}
