//! mbox files (mboxrd: lines matching `>*From ` in a message get one more `>`), for bulk
//! signing of statements kept in one file. Reading is mail-parser's; writing is the quoting
//! rule above, which makes reading give back the very bytes that were signed.

/// The messages of an mbox file, unquoted, each without the blank line that separates it from
/// the next.
pub fn read(bytes: &[u8]) -> Vec<Vec<u8>> {
    mail_parser::mailbox::mbox::MessageIterator::new(bytes)
        .filter_map(Result::ok)
        .map(|m| {
            let mut c = m.unwrap_contents();
            if c.ends_with(b"\r\n\r\n") {
                c.truncate(c.len() - 2);
            } else if c.ends_with(b"\n\n") {
                c.truncate(c.len() - 1);
            }
            c
        })
        .collect()
}

/// Appends `message` to an mbox: a `From ` separator line, the message with mboxrd quoting, and
/// the separating blank line.
pub fn append(out: &mut Vec<u8>, message: &[u8], envelope_sender: &str, asctime: &str) {
    out.extend_from_slice(format!("From {envelope_sender} {asctime}\n").as_bytes());
    for line in message.split_inclusive(|b| *b == b'\n') {
        let quotes = line.iter().take_while(|b| **b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !message.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_messages_read_back_byte_for_byte() {
        let a = b"From: a@b\r\n\r\nFrom here\r\n>From there\r\n".to_vec();
        let b = b"From: c@d\r\n\r\nsecond\r\n".to_vec();
        let mut out = Vec::new();
        append(&mut out, &a, "x@y", "Thu Dec  3 17:00:00 2026");
        append(&mut out, &b, "x@y", "Thu Dec  3 17:00:00 2026");
        assert_eq!(read(&out), vec![a, b]);
    }
}
