//! The `stamp` client as a library: the TSA client (any digest in, a checked token out) and the
//! report rendering, reused by the CLI and, later, by the email and PDF commands.

pub mod email;
pub mod escape;
pub mod files;
pub mod pool;
pub mod render;
pub mod tsa_client;
