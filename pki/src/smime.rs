//! S/MIME 4.0 (RFC 8551) signing and verification, with signature timestamps (CAdES-T: a token
//! over the SignerInfo's signature value in the unsigned attribute
//! id-aa-signatureTimeStampToken).
//!
//! * [`sign::sign_message`]: canonicalise ([`canon`]), sign through the `Signer` trait, add a
//!   checked token through the `Timestamper` trait, wrap as multipart/signed or opaque
//!   application/pkcs7-mime.
//! * [`verify::verify_message`]: peel every signature layer, verify each SignerInfo with the
//!   one SignerInfo verifier and its token with the token verifier, bind the From address, and
//!   refuse partially signed and ambiguous messages.
//! * [`encrypt::encrypt_message`] / [`encrypt::decrypt_message`]: application/pkcs7-mime
//!   (auth)enveloped-data with header protection, over [`crate::envelope`].
//!
//! MIME is read by mail-parser (0.11: 1.0 needs a newer Rust than ours); the bytes a signature
//! covers are cut out by [`mime::split_multipart`], exactly as they sit in the message.

pub mod canon;
pub mod encrypt;
pub mod mbox;
pub mod mime;
pub mod sign;
pub mod verify;

pub use encrypt::{DecryptedMessage, EncryptOptions, decrypt_message, encrypt_message};
pub use sign::{SignOptions, SignedMessage, sign_message};
pub use verify::{CheckTime, EmailVerifyOptions, looks_like_message, verify_message};
