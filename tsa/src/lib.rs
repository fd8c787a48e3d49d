pub mod archive;
pub mod serial;
