//! One incremental update (ISO 32000-2 §7.5.6): changed and new objects, a cross-reference
//! section for them in the style of the file's newest section (a table, or a stream for files
//! that use them), and a trailer whose /Prev chains to the previous section. The bytes before
//! the update are never touched.
//!
//! A signature dictionary is written with a fixed-width /ByteRange placeholder and a /Contents
//! hole of a given size; [`Hole::write_byte_range`] writes the range once the update's length
//! is known (before hashing), [`Hole::fill`] the signature.

use crate::Error;
use crate::object::{self, len_i64};
use lopdf::{Dictionary, Object, ObjectId};
use std::collections::BTreeMap;

/// Width of the /ByteRange placeholder: four numbers of up to 10 digits (files up to 9.3 GiB).
const BYTE_RANGE_WIDTH: usize = "[0 0000000000 0000000000 0000000000]".len();

/// Where a signature dictionary's placeholders sit in the update's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Hole {
    /// Offset of the /ByteRange array's `[`.
    byte_range_at: usize,
    /// Offset of the `<` that opens /Contents.
    pub contents_start: usize,
    /// Offset just past the `>` that closes it.
    pub contents_end: usize,
}

impl Hole {
    /// Bytes the hole holds (the DER it can take).
    pub fn capacity(&self) -> usize {
        (self.contents_end - self.contents_start - 2) / 2
    }

    /// The /ByteRange for an update of `update_len` bytes written after `base_len` bytes.
    pub fn byte_range(&self, base_len: usize, update_len: usize) -> [usize; 4] {
        let a = base_len + self.contents_start;
        let b = base_len + self.contents_end;
        [0, a, b, base_len + update_len - b]
    }

    /// Writes the /ByteRange into the finished `update` (before hashing: it is signed).
    pub fn write_byte_range(&self, update: &mut [u8], base_len: usize) -> Result<(), Error> {
        let [_, a, b, c] = self.byte_range(base_len, update.len());
        let range = format!("[0 {a} {b} {c}]");
        if range.len() > BYTE_RANGE_WIDTH {
            return Err(Error::Unsupported(
                "files over 9 GB cannot carry a /ByteRange placeholder of this width".into(),
            ));
        }
        let slot = &mut update[self.byte_range_at..self.byte_range_at + BYTE_RANGE_WIDTH];
        slot.fill(b' ');
        slot[..range.len()].copy_from_slice(range.as_bytes());
        Ok(())
    }

    /// Writes the signature (hex, zero-padded) into the hole.
    pub fn fill(&self, update: &mut [u8], contents: &[u8]) -> Result<(), Error> {
        if contents.len() > self.capacity() {
            return Err(Error::HoleTooSmall {
                needed: contents.len(),
                reserved: self.capacity(),
            });
        }
        let hex = hex::encode_upper(contents);
        let start = self.contents_start + 1;
        update[start..start + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(())
    }
}

/// What the new trailer repeats from the previous one.
#[derive(Clone, Debug)]
pub struct TrailerBase {
    /// Offset of the previous cross-reference section.
    pub prev: usize,
    /// The catalog.
    pub root: ObjectId,
    /// /Info, when the file has one.
    pub info: Option<Object>,
    /// The first (permanent) half of /ID, when the file has one.
    pub id_first: Option<Vec<u8>>,
    /// Whether to write a cross-reference stream rather than a table.
    pub xref_stream: bool,
}

/// An update being written after `base_len` bytes of file.
pub struct UpdateWriter {
    base_len: usize,
    buf: Vec<u8>,
    offsets: BTreeMap<u32, (u16, usize)>,
}

impl UpdateWriter {
    /// Starts an update after `base` bytes whose last byte is `last_byte`.
    pub fn new(base_len: usize, last_byte: Option<u8>) -> UpdateWriter {
        let mut buf = Vec::with_capacity(16 * 1024);
        // The previous %%EOF must stay on a line of its own.
        if !matches!(last_byte, Some(b'\n' | b'\r')) {
            buf.push(b'\n');
        }
        UpdateWriter {
            base_len,
            buf,
            offsets: BTreeMap::new(),
        }
    }

    fn begin(&mut self, id: ObjectId) {
        self.offsets
            .insert(id.0, (id.1, self.base_len + self.buf.len()));
        self.buf
            .extend_from_slice(format!("{} {} obj\n", id.0, id.1).as_bytes());
    }

    fn end(&mut self) {
        self.buf.extend_from_slice(b"\nendobj\n");
    }

    /// Writes object `id`.
    pub fn object(&mut self, id: ObjectId, o: &Object) {
        self.begin(id);
        object::write(&mut self.buf, o);
        self.end();
    }

    /// Writes a signature dictionary: `entries`, then a /ByteRange placeholder and a /Contents
    /// hole for `capacity` bytes of DER.
    pub fn signature(&mut self, id: ObjectId, entries: &Dictionary, capacity: usize) -> Hole {
        self.begin(id);
        self.buf.extend_from_slice(b"<<");
        for (k, v) in entries.iter() {
            object::write(&mut self.buf, &Object::Name(k.clone()));
            self.buf.push(b' ');
            object::write(&mut self.buf, v);
        }
        self.buf.extend_from_slice(b"/ByteRange ");
        let byte_range_at = self.buf.len();
        self.buf.extend_from_slice(&[b' '; BYTE_RANGE_WIDTH]);
        self.buf.extend_from_slice(b"/Contents ");
        let contents_start = self.buf.len();
        self.buf.push(b'<');
        self.buf.resize(self.buf.len() + 2 * capacity, b'0');
        self.buf.push(b'>');
        let contents_end = self.buf.len();
        self.buf.extend_from_slice(b">>");
        self.end();
        Hole {
            byte_range_at,
            contents_start,
            contents_end,
        }
    }

    /// Writes the cross-reference section and trailer. `size` is the trailer's /Size before
    /// this update's cross-reference stream (which, when written, takes object number `size`).
    pub fn finish(mut self, size: u32, t: &TrailerBase) -> (Vec<u8>, usize) {
        let mut trailer = Dictionary::new();
        let size = if t.xref_stream { size + 1 } else { size };
        trailer.set("Size", Object::Integer(i64::from(size)));
        trailer.set("Root", Object::Reference(t.root));
        if let Some(info) = &t.info {
            trailer.set("Info", info.clone());
        }
        trailer.set("Prev", Object::Integer(len_i64(t.prev)));
        let id_second = self.id_second();
        let id_first = t.id_first.clone().unwrap_or_else(|| id_second.clone());
        trailer.set(
            "ID",
            Object::Array(vec![
                Object::String(id_first, lopdf::StringFormat::Hexadecimal),
                Object::String(id_second, lopdf::StringFormat::Hexadecimal),
            ]),
        );
        let xref_at = self.base_len + self.buf.len();
        if t.xref_stream {
            let id = (size - 1, 0);
            self.offsets.insert(id.0, (0, xref_at));
            let max = self.offsets.values().map(|(_, o)| *o).max().unwrap_or(0);
            let width = (1..=8).find(|w| (max >> (8 * w)) == 0).unwrap_or(8).max(4);
            let mut data = Vec::new();
            for (gen_, off) in self.offsets.values() {
                data.push(1u8);
                data.extend_from_slice(&off.to_be_bytes()[8 - width..]);
                data.extend_from_slice(&gen_.to_be_bytes());
            }
            trailer.set("Type", Object::Name(b"XRef".to_vec()));
            trailer.set(
                "W",
                Object::Array(vec![
                    Object::Integer(1),
                    Object::Integer(len_i64(width)),
                    Object::Integer(2),
                ]),
            );
            trailer.set("Index", Object::Array(self.index()));
            let stream = Object::Stream(lopdf::Stream::new(trailer, data));
            self.begin(id);
            object::write(&mut self.buf, &stream);
            self.end();
        } else {
            self.buf.extend_from_slice(b"xref\n");
            for (start, run) in self.runs() {
                self.buf
                    .extend_from_slice(format!("{start} {}\n", run.len()).as_bytes());
                for (gen_, off) in run {
                    self.buf
                        .extend_from_slice(format!("{off:010} {gen_:05} n\r\n").as_bytes());
                }
            }
            self.buf.extend_from_slice(b"trailer\n");
            object::write_dict(&mut self.buf, &trailer);
            self.buf.push(b'\n');
        }
        self.buf
            .extend_from_slice(format!("startxref\n{xref_at}\n%%EOF\n").as_bytes());
        (self.buf, xref_at)
    }

    /// Consecutive object numbers, as cross-reference subsections.
    fn runs(&self) -> Vec<(u32, Vec<(u16, usize)>)> {
        let mut out: Vec<(u32, Vec<(u16, usize)>)> = Vec::new();
        for (&n, &entry) in &self.offsets {
            match out.last_mut() {
                Some((start, run)) if *start + u32::try_from(run.len()).unwrap_or(0) == n => {
                    run.push(entry);
                }
                _ => out.push((n, vec![entry])),
            }
        }
        out
    }

    fn index(&self) -> Vec<Object> {
        self.runs()
            .into_iter()
            .flat_map(|(start, run)| {
                [
                    Object::Integer(i64::from(start)),
                    Object::Integer(len_i64(run.len())),
                ]
            })
            .collect()
    }

    /// The changing half of /ID (§14.4): a digest of this update's objects and where they go.
    fn id_second(&self) -> Vec<u8> {
        let mut h = pki::HashAlg::Sha256.hasher();
        h.update(&self.base_len.to_be_bytes());
        h.update(&self.buf);
        h.update(&pki::gentime::unix_now().to_be_bytes());
        h.finish().as_ref()[..16].to_vec()
    }
}
