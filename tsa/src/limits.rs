//! Every limit on untrusted input, in one place, each with the reason for its value.

/// Largest request body read, in bytes.
///
/// The largest sensible TimeStampReq (SHA-512 imprint, a long policy OID, a 64-byte nonce,
/// certReq) is under 250 bytes; 8 KiB leaves room for extensions (which we refuse with a proper
/// failInfo, so the client learns why) while keeping a flood of large bodies from costing more
/// than 8 KiB of memory per connection. A larger body is answered 413 without being read whole.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// The only media type accepted on the timestamp routes (RFC 3161 §3.4).
pub const QUERY_MEDIA_TYPE: &str = "application/timestamp-query";

/// The media type of every reply, granted or rejected (RFC 3161 §3.4).
pub const REPLY_MEDIA_TYPE: &str = "application/timestamp-reply";

/// Longest nonce echoed, in bytes. RFC 3161 sets none; 64 bytes is far beyond the 8 to 20
/// that clients send, and bounds what a request can make us sign and archive.
pub const MAX_NONCE_BYTES: usize = 64;
