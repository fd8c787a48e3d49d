//! The `stamp` client as a library: the TSA client (any digest in, a checked token out) and the
//! report rendering, the key loader's front end, and the email and PDF signers the CLI drives.

pub mod archive_verify;
pub mod bulk;
pub mod email;
pub mod escape;
pub mod files;
pub mod http;
pub mod keys;
pub mod pdf;
pub mod pool;
pub mod recipients;
pub mod render;
pub mod tsa_client;
