//! Squeak's DataStream / ReferenceStream / SmartRefStream object encoding, read into a
//! plain graph ([`ObjectStream`]).
//!
//! Each object starts with a type byte; what follows depends on it (all numbers
//! big-endian):
//!
//! | type | object | encoding after the type byte |
//! | --- | --- | --- |
//! | 1, 2, 3 | nil, true, false | nothing |
//! | 4 | SmallInteger | 4 bytes, signed |
//! | 5 | String (old) | length: 1 byte, or 2 bytes if the first is 192 or more (less 192); the bytes |
//! | 6, 17 | Symbol, String | length: 1 byte, or 4 bytes if the first is 192 or more (less 192); the bytes |
//! | 7 | ByteArray | 4-byte count, the bytes |
//! | 8 | Array | 4-byte count, that many objects |
//! | 9 | an instance | 4-byte field count + 1, the class name (an object: a Symbol or a reference to one), the fields |
//! | 10 | a reference | 4-byte position of an object already read |
//! | 11 | Bitmap | `80` and a compact length and the compressed bytes; or a 4-byte count, negative (or 0) for the old run-coded form of that many words (runs up to a zero byte), else that many words |
//! | 14 | Float | two 4-byte words, most significant first |
//! | 15 | Rectangle | 6 bytes: four 12-bit signed numbers (left, top, right, bottom) |
//! | 16 | an instance, short | 1-byte field count + 1, the class name as a 2-byte position, the fields |
//! | 18, 19 | WordArray, WordArrayForSegment | 4-byte count, that many words (raw: in the writer's byte order) |
//! | 20 | another word-like object | the class name, then as 18 |
//! | 21 | CompiledMethod | 4-byte byte size + 1, the class name, the header (an object), the literals, the bytecodes raw |
//!
//! Types 12 (class) and 13 (user object) are refused: Squeak stopped writing them. A
//! reference position counts from the first byte of the binary stream, and names the type
//! byte of an object read earlier (a ReferenceStream only refers backwards). The object a
//! reference names may still be being read (a cycle): its id exists from its type byte on.
//!
//! Reading is bounded: nesting deeper than [`MAX_DEPTH`] is an error (the real Etoys files
//! nest at most 20 deep: a project's objects are in the segment's words, not nested here), no count is
//! believed beyond the bytes that remain, and a stream of more than [`MAX_OBJECTS`] objects or
//! [`MAX_VALUES`] values is refused, so what a stream decodes to stays within a fixed multiple
//! of a few hundred MiB whatever its bytes.

use crate::error::{Result, SegmentError};
use std::collections::HashMap;

/// How deep objects may nest in the stream before the reader refuses.
pub const MAX_DEPTH: usize = 64;
/// Objects a stream may hold before the reader refuses. The real Etoys files hold a few
/// thousand (a project's objects are in its segment's words); a decoded object takes about 90
/// bytes, so the cap keeps a small stream of tiny objects from growing past about 400 MiB.
pub const MAX_OBJECTS: usize = 1 << 22;
/// Values (objects, immediates, references) a stream may hold, for the same reason: about 8
/// bytes each once decoded, where the stream can spend one byte on each.
pub const MAX_VALUES: usize = 1 << 24;

/// An object of the stream, by its position in [`ObjectStream::objects`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ObjId(u32);

impl ObjId {
    /// The index into [`ObjectStream::objects`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A value in the stream: an immediate, or an object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Val {
    /// nil.
    Nil,
    /// true.
    True,
    /// false.
    False,
    /// A SmallInteger (32-bit in the stream).
    Int(i32),
    /// An object.
    Obj(ObjId),
}

/// What an object of the stream holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// A String (types 5 and 17).
    String(Vec<u8>),
    /// A Symbol.
    Symbol(Vec<u8>),
    /// A ByteArray.
    ByteArray(Vec<u8>),
    /// An Array.
    Array(Vec<Val>),
    /// An instance of a named class (types 9 and 16): its fields, named ones first.
    Instance {
        /// The class name.
        class: String,
        /// The fields.
        fields: Vec<Val>,
    },
    /// A Bitmap, kept as stored.
    Bitmap {
        /// Whether `data` is in a compressed form.
        compressed: bool,
        /// The bytes after the length: the compressed bytes, the runs of the old form (its
        /// ending zero byte included), or the raw words.
        data: Vec<u8>,
    },
    /// A Float's 64 bits.
    Float(u64),
    /// A Rectangle: left, top, right, bottom.
    Rectangle([i16; 4]),
    /// A word array (type 18, 19 or 20): the class name and the raw words as they were in
    /// the stream.
    Words {
        /// `WordArray`, `WordArrayForSegment` or the class named (type 20).
        class: String,
        /// The words' bytes, unconverted.
        data: Vec<u8>,
        /// Position of the first word in the binary stream: after the type byte and the
        /// count, and for type 20 after the class name too.
        data_at: u64,
    },
    /// A CompiledMethod.
    Method {
        /// The class name.
        class: String,
        /// The header.
        header: Val,
        /// The literals.
        literals: Vec<Val>,
        /// The bytecodes (and trailer).
        bytes: Vec<u8>,
    },
}

/// One object of the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Position of its type byte.
    pub at: u64,
    /// Its contents.
    pub body: Body,
}

/// A decoded stream: every object, and the top-level values in order.
#[derive(Clone, Debug, Default)]
pub struct ObjectStream {
    /// Every object, in the order their type bytes appear.
    pub objects: Vec<Object>,
    /// The top-level values.
    pub top: Vec<Val>,
    /// Bytes of binary stream read (up to the closing `!`).
    pub len: usize,
}

impl ObjectStream {
    /// The object `id`.
    pub fn get(&self, id: ObjId) -> Option<&Object> {
        self.objects.get(id.index())
    }

    /// The body of `v` if it is an object.
    pub fn body(&self, v: Val) -> Option<&Body> {
        match v {
            Val::Obj(id) => self.get(id).map(|o| &o.body),
            _ => None,
        }
    }

    /// The text of `v` if it is a Symbol or a String.
    pub fn text(&self, v: Val) -> Option<String> {
        match self.body(v)? {
            Body::Symbol(b) | Body::String(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The class name and fields of `v` if it is an instance.
    pub fn instance(&self, v: Val) -> Option<(&str, &[Val])> {
        match self.body(v)? {
            Body::Instance { class, fields } => Some((class, fields)),
            _ => None,
        }
    }

    /// The elements of `v` if it is an Array.
    pub fn array(&self, v: Val) -> Option<&[Val]> {
        match self.body(v)? {
            Body::Array(a) => Some(a),
            _ => None,
        }
    }

    /// SmartRefStream's class structures: for each class named in the stream, its
    /// instance variable names (all of them, inherited first), from the
    /// `'class structure'` dictionary the stream starts with. Empty for a plain
    /// DataStream. Time: O(size of the dictionary).
    ///
    /// # Errors
    /// [`SegmentError::TooLarge`] if the names would take more than four times the stream's
    /// bytes and a mebibyte (a `String` each counted with its text): a stream's own
    /// dictionary names each class once, while a hostile one can name one long array of
    /// names from a million Associations, each a reference of 5 bytes.
    pub fn class_structures(&self) -> Result<HashMap<String, Vec<String>>> {
        let limit = self.len.saturating_mul(4).saturating_add(1 << 20);
        let mut held = 0usize;
        let text_len = |v: Val| match self.body(v) {
            Some(Body::Symbol(b) | Body::String(b)) => b.len() + std::mem::size_of::<String>(),
            _ => 0,
        };
        let mut out = HashMap::new();
        for &t in &self.top {
            let Some(items) = self.array(t) else { continue };
            let mut it = items.iter();
            while let Some(&k) = it.next() {
                let Some(&dict) = it.next() else { break };
                if self.text(k).as_deref() != Some("class structure") {
                    continue;
                }
                let Some((_, fields)) = self.instance(dict) else {
                    continue;
                };
                let Some(assocs) = fields.get(1).and_then(|&a| self.array(a)) else {
                    continue;
                };
                for &a in assocs {
                    let Some((_, kv)) = self.instance(a) else {
                        continue;
                    };
                    let (Some(name), Some(info)) = (
                        kv.first().and_then(|&k| self.text(k)),
                        kv.get(1).and_then(|&v| self.array(v)),
                    ) else {
                        continue;
                    };
                    // Element 0 is the class version; the rest are the names.
                    held = info
                        .iter()
                        .skip(1)
                        .fold(held.saturating_add(name.len()), |n, &v| {
                            n.saturating_add(text_len(v))
                        });
                    if held > limit {
                        return Err(SegmentError::TooLarge {
                            what: "the class structures' names",
                            len: held as u64,
                            limit: limit as u64,
                        });
                    }
                    let names = info.iter().skip(1).filter_map(|&n| self.text(n)).collect();
                    out.insert(name, names);
                }
            }
        }
        Ok(out)
    }
}

/// Reads the binary stream `data` (the bytes after the text preamble). Time: O(len).
///
/// # Errors
/// [`SegmentError::StreamTruncated`], [`SegmentError::UnknownType`],
/// [`SegmentError::BadReference`], [`SegmentError::BadStream`],
/// [`SegmentError::NestedObjectsTooDeep`].
pub fn read(data: &[u8]) -> Result<ObjectStream> {
    read_bounded(data, MAX_OBJECTS, MAX_VALUES)
}

/// [`read`] with its bounds given.
fn read_bounded(data: &[u8], max_objects: usize, max_values: usize) -> Result<ObjectStream> {
    let mut r = Reader {
        max_objects,
        max_values,
        d: data,
        pos: 0,
        objects: Vec::new(),
        at: HashMap::new(),
        depth: 0,
        values: 0,
    };
    let mut top = Vec::new();
    while let Some(&b) = r.d.get(r.pos) {
        if b == b'!' {
            break;
        }
        top.push(r.next()?);
    }
    if r.pos >= r.d.len() {
        return Err(SegmentError::StreamTruncated {
            what: "the closing `!`",
            at: r.pos as u64,
            need: 1,
        });
    }
    Ok(ObjectStream {
        objects: r.objects,
        top,
        len: r.pos,
    })
}

struct Reader<'a> {
    /// [`MAX_OBJECTS`] and [`MAX_VALUES`], or smaller bounds in tests.
    max_objects: usize,
    max_values: usize,
    d: &'a [u8],
    pos: usize,
    objects: Vec<Object>,
    at: HashMap<u32, ObjId>,
    depth: usize,
    /// Values read so far, against [`MAX_VALUES`].
    values: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.d.len());
        let Some(end) = end else {
            return Err(SegmentError::StreamTruncated {
                what,
                at: self.pos as u64,
                need: (self.pos as u64)
                    .saturating_add(n as u64)
                    .saturating_sub(self.d.len() as u64),
            });
        };
        let s = &self.d[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count of items each taking at least `unit` bytes: refused if the rest of the
    /// stream cannot hold them.
    fn count(&mut self, n: u64, unit: u64, what: &'static str) -> Result<usize> {
        let rest = (self.d.len() - self.pos) as u64;
        match n.checked_mul(unit) {
            Some(need) if need <= rest => Ok(n as usize),
            _ => Err(SegmentError::StreamTruncated {
                what,
                at: self.pos as u64,
                need: n.saturating_mul(unit).saturating_sub(rest),
            }),
        }
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<Vec<u8>> {
        Ok(self.take(n, what)?.to_vec())
    }

    /// A new object at `at`, its body to be filled in.
    fn begin(&mut self, at: usize, body: Body) -> Result<ObjId> {
        if self.objects.len() >= self.max_objects {
            return Err(SegmentError::TooLarge {
                what: "objects in a stream",
                len: self.objects.len() as u64 + 1,
                limit: self.max_objects as u64,
            });
        }
        let id = ObjId(
            u32::try_from(self.objects.len()).map_err(|_| SegmentError::BadStream {
                at: at as u64,
                problem: "more than 2^32 objects",
            })?,
        );
        self.objects.push(Object {
            at: at as u64,
            body,
        });
        // Positions fit in u32: references are 4-byte positions.
        if let Ok(p) = u32::try_from(at) {
            self.at.insert(p, id);
        }
        Ok(id)
    }

    fn set(&mut self, id: ObjId, body: Body) {
        if let Some(o) = self.objects.get_mut(id.index()) {
            o.body = body;
        }
    }

    fn deref(&self, target: u32, at: usize) -> Result<Val> {
        self.at
            .get(&target)
            .map(|&id| Val::Obj(id))
            .ok_or(SegmentError::BadReference {
                at: at as u64,
                target: target.into(),
            })
    }

    /// A class name: the next object must be a Symbol or String.
    fn class_name(&self, v: Val, at: usize) -> Result<String> {
        match v {
            Val::Obj(id) => match self.objects.get(id.index()).map(|o| &o.body) {
                Some(Body::Symbol(b) | Body::String(b)) => {
                    Ok(String::from_utf8_lossy(b).into_owned())
                }
                _ => Err(SegmentError::BadStream {
                    at: at as u64,
                    problem: "a class name that is not a Symbol",
                }),
            },
            _ => Err(SegmentError::BadStream {
                at: at as u64,
                problem: "a class name that is not a Symbol",
            }),
        }
    }

    fn next(&mut self) -> Result<Val> {
        if self.depth >= MAX_DEPTH {
            return Err(SegmentError::NestedObjectsTooDeep {
                limit: MAX_DEPTH,
                at: self.pos as u64,
            });
        }
        if self.values >= self.max_values {
            return Err(SegmentError::TooLarge {
                what: "values in a stream",
                len: self.values as u64 + 1,
                limit: self.max_values as u64,
            });
        }
        self.values += 1;
        self.depth += 1;
        let v = self.next_inner();
        self.depth -= 1;
        v
    }

    fn fields(&mut self, n: usize) -> Result<Vec<Val>> {
        // Room for what a count claims only up to a page or so: the fields are read one by
        // one, and a claim the stream does not bear out (at every level of nesting at once)
        // must not reserve memory first.
        let mut out = Vec::with_capacity(n.min(512));
        for _ in 0..n {
            out.push(self.next()?);
        }
        Ok(out)
    }

    fn next_inner(&mut self) -> Result<Val> {
        let at = self.pos;
        let t = self.u8("a type byte")?;
        let obj = |r: &mut Self, body| r.begin(at, body).map(Val::Obj);
        match t {
            1 => Ok(Val::Nil),
            2 => Ok(Val::True),
            3 => Ok(Val::False),
            4 => Ok(Val::Int(self.u32("an integer")? as i32)),
            5 => {
                let mut n = usize::from(self.u8("a string length")?);
                if n >= 192 {
                    n = (n - 192) * 256 + usize::from(self.u8("a string length")?);
                }
                let s = self.bytes(n, "a string")?;
                obj(self, Body::String(s))
            }
            6 | 17 => {
                let mut n = u64::from(self.u8("a string length")?);
                if n >= 192 {
                    n -= 192;
                    for _ in 0..3 {
                        n = n * 256 + u64::from(self.u8("a string length")?);
                    }
                }
                let n = self.count(n, 1, "a string")?;
                let s = self.bytes(n, "a string")?;
                obj(
                    self,
                    if t == 6 {
                        Body::Symbol(s)
                    } else {
                        Body::String(s)
                    },
                )
            }
            7 => {
                let n = self.u32("a byte array length")?;
                let n = self.count(n.into(), 1, "a byte array")?;
                let b = self.bytes(n, "a byte array")?;
                obj(self, Body::ByteArray(b))
            }
            8 => {
                let n = self.u32("an array length")?;
                let n = self.count(n.into(), 1, "an array")?;
                let id = self.begin(at, Body::Array(Vec::new()))?;
                let f = self.fields(n)?;
                self.set(id, Body::Array(f));
                Ok(Val::Obj(id))
            }
            9 | 16 => {
                let size = if t == 9 {
                    self.u32("an instance size")?
                } else {
                    self.u8("an instance size")?.into()
                };
                let n = size.checked_sub(1).ok_or(SegmentError::BadStream {
                    at: at as u64,
                    problem: "an instance size of 0 (it counts the class)",
                })?;
                let id = self.begin(at, Body::Array(Vec::new()))?;
                let class = if t == 9 {
                    let c = self.next()?;
                    self.class_name(c, at)?
                } else {
                    let p = self.u16("a class name position")?;
                    let c = self.deref(p.into(), at)?;
                    self.class_name(c, at)?
                };
                let n = self.count(n.into(), 1, "an instance's fields")?;
                let fields = self.fields(n)?;
                self.set(id, Body::Instance { class, fields });
                Ok(Val::Obj(id))
            }
            10 => {
                let p = self.u32("a reference")?;
                if p == u32::MAX || p == 0x3FFF_FFFF {
                    // The vacant reference: nil.
                    return Ok(Val::Nil);
                }
                self.deref(p, at)
            }
            11 => {
                let first = *self.d.get(self.pos).ok_or(SegmentError::StreamTruncated {
                    what: "a bitmap",
                    at: self.pos as u64,
                    need: 1,
                })?;
                let (compressed, data) = if first == 0x80 {
                    self.pos += 1;
                    let n = self.compact_int()?;
                    let n = self.count(n, 1, "a bitmap")?;
                    (true, self.bytes(n, "a bitmap")?)
                } else {
                    let n = self.u32("a bitmap length")? as i32;
                    if n <= 0 {
                        // The old run-coded form: `-n` words, then runs up to a zero byte.
                        let runs = self.old_bitmap_runs(u64::from(n.unsigned_abs()) * 4)?;
                        (true, runs)
                    } else {
                        let n = self.count(n as u64, 4, "a bitmap")?;
                        (false, self.bytes(n * 4, "a bitmap")?)
                    }
                };
                obj(self, Body::Bitmap { compressed, data })
            }
            14 => {
                let hi = self.u32("a float")?;
                let lo = self.u32("a float")?;
                obj(self, Body::Float((u64::from(hi) << 32) | u64::from(lo)))
            }
            15 => {
                let b = self.take(6, "a rectangle")?;
                let a = u32::from_be_bytes([0, b[0], b[1], b[2]]);
                let c = u32::from_be_bytes([0, b[3], b[4], b[5]]);
                let s = |x: u32| (((x & 0xFFF) as i16) << 4) >> 4;
                obj(self, Body::Rectangle([s(a >> 12), s(a), s(c >> 12), s(c)]))
            }
            18 | 19 => {
                let class = if t == 18 {
                    "WordArray"
                } else {
                    "WordArrayForSegment"
                };
                let id = self.begin(at, Body::Array(Vec::new()))?;
                let (data_at, data) = self.words()?;
                self.set(
                    id,
                    Body::Words {
                        class: class.to_owned(),
                        data,
                        data_at,
                    },
                );
                Ok(Val::Obj(id))
            }
            20 => {
                let id = self.begin(at, Body::Array(Vec::new()))?;
                let c = self.next()?;
                let class = self.class_name(c, at)?;
                let (data_at, data) = self.words()?;
                self.set(
                    id,
                    Body::Words {
                        class,
                        data,
                        data_at,
                    },
                );
                Ok(Val::Obj(id))
            }
            21 => {
                let size = self.u32("a method size")?;
                let size = size.checked_sub(1).ok_or(SegmentError::BadStream {
                    at: at as u64,
                    problem: "a method size of 0",
                })? as usize;
                let id = self.begin(at, Body::Array(Vec::new()))?;
                let c = self.next()?;
                let class = self.class_name(c, at)?;
                let header = self.next()?;
                let Val::Int(h) = header else {
                    return Err(SegmentError::BadStream {
                        at: at as u64,
                        problem: "a method header that is not an integer",
                    });
                };
                let lits = ((h >> 9) & 0xFF) as usize;
                let n = size
                    .checked_sub((lits + 1) * 4)
                    .ok_or(SegmentError::BadStream {
                        at: at as u64,
                        problem: "a method with more literals than its size",
                    })?;
                let literals = self.fields(lits)?;
                let bytes = self.bytes(n, "a method's bytecodes")?;
                self.set(
                    id,
                    Body::Method {
                        class,
                        header,
                        literals,
                        bytes,
                    },
                );
                Ok(Val::Obj(id))
            }
            _ => Err(SegmentError::UnknownType {
                type_id: t,
                at: at as u64,
            }),
        }
    }

    /// A word array's count and words, with the position of its first word: `80` would be
    /// a compressed form no writer uses.
    fn words(&mut self) -> Result<(u64, Vec<u8>)> {
        if self.d.get(self.pos) == Some(&0x80) {
            return Err(SegmentError::BadStream {
                at: self.pos as u64,
                problem: "a compressed word array",
            });
        }
        let n = self.u32("a word array length")?;
        let n = self.count(n.into(), 4, "a word array")?;
        let at = self.pos as u64;
        Ok((at, self.bytes(n * 4, "a word array")?))
    }

    /// The runs of a Bitmap in the old compressed form (`Bitmap>>readCompressedFrom:`), up
    /// to and including the zero byte that ends them, as stored. Each run is a count byte
    /// `n`: 1-127, `n + 3` copies of the next byte; 128-191, the next `n - 127` bytes as
    /// they are; 192-255, `n - 190` copies of the next 4 bytes. The runs must fill exactly
    /// `bytes` bytes, the Bitmap's words (Squeak's "Decompression size error" otherwise);
    /// nothing is expanded here, so a few bytes of runs cost only their own length.
    fn old_bitmap_runs(&mut self, bytes: u64) -> Result<Vec<u8>> {
        let start = self.pos;
        let mut filled = 0u64;
        loop {
            let n = self.u8("a bitmap run")?;
            let (fills, skip) = match n {
                0 => break,
                1..=127 => (u64::from(n) + 3, 1),
                128..=191 => (u64::from(n) - 127, usize::from(n) - 127),
                192..=255 => ((u64::from(n) - 190) * 4, 4),
            };
            self.take(skip, "a bitmap run")?;
            filled += fills;
            if filled > bytes {
                break;
            }
        }
        if filled != bytes {
            return Err(SegmentError::BadStream {
                at: start as u64,
                problem: "a run-coded bitmap whose runs do not fill its words",
            });
        }
        Ok(self.d[start..self.pos].to_vec())
    }

    /// Bitmap's compact length: one byte below 224; two bytes up to 254; else four.
    fn compact_int(&mut self) -> Result<u64> {
        let b = self.u8("a bitmap length")?;
        Ok(match b {
            0..=223 => b.into(),
            224..=254 => u64::from(b - 224) * 256 + u64::from(self.u8("a bitmap length")?),
            255 => self.u32("a bitmap length")?.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediates_strings_arrays_and_references() {
        // #(1 'ab' #ab <ref to 'ab'>) then the array itself by reference.
        let mut s = vec![8, 0, 0, 0, 4];
        s.extend([4, 0xff, 0xff, 0xff, 0xfe]); // -2
        s.extend([17, 2, b'a', b'b']); // at 10
        s.extend([6, 2, b'a', b'b']);
        s.extend([10, 0, 0, 0, 10]);
        s.extend([10, 0, 0, 0, 0]);
        s.push(b'!');
        let st = read(&s).unwrap();
        assert_eq!(st.top.len(), 2);
        let a = st.array(st.top[0]).unwrap();
        assert_eq!(a[0], Val::Int(-2));
        assert_eq!(st.text(a[1]).as_deref(), Some("ab"));
        assert!(matches!(st.body(a[2]), Some(Body::Symbol(_))));
        assert_eq!(a[3], a[1]);
        assert_eq!(st.top[1], st.top[0]);
    }

    #[test]
    fn instances_name_their_class_by_symbol_or_position() {
        let mut s = vec![9, 0, 0, 0, 3, 6, 5];
        s.extend(b"Point");
        s.extend([4, 0, 0, 0, 3, 4, 0, 0, 0, 4]);
        // short instance naming the class by the position of #Point (5).
        s.extend([16, 3, 0, 5, 1, 2]);
        s.extend([15, 0x80, 0x00, 0x01, 0x00, 0x20, 0x03]);
        s.push(b'!');
        let st = read(&s).unwrap();
        let (c, f) = st.instance(st.top[0]).unwrap();
        assert_eq!((c, f), ("Point", &[Val::Int(3), Val::Int(4)][..]));
        let (c, f) = st.instance(st.top[1]).unwrap();
        assert_eq!((c, f), ("Point", &[Val::Nil, Val::True][..]));
        assert_eq!(st.body(st.top[2]), Some(&Body::Rectangle([-2048, 1, 2, 3])));
    }

    /// A class-structure dictionary of `n` Associations, each naming `long` (an Array of
    /// names, each the one `len`-byte String) under its own class name, in a stream of
    /// `stream_len` bytes.
    fn structures(n: u32, len: usize, stream_len: usize) -> ObjectStream {
        let obj = |i: u32| Val::Obj(ObjId(i));
        let o = |body| Object { at: 0, body };
        let mut objects = vec![
            o(Body::String(b"class structure".to_vec())),
            o(Body::String(vec![b'x'; len])),
            o(Body::Array(vec![Val::Int(1), obj(1), obj(1), obj(1)])),
        ];
        let first = objects.len() as u32 + 2;
        objects.push(o(Body::Array(
            (first..first + 2 * n).step_by(2).map(obj).collect(),
        )));
        objects.push(o(Body::Instance {
            class: "Dictionary".into(),
            fields: vec![Val::Int(n as i32), obj(3)],
        }));
        for k in 0..n {
            let at = objects.len() as u32;
            objects.push(o(Body::Instance {
                class: "Association".into(),
                fields: vec![obj(at + 1), obj(2)],
            }));
            objects.push(o(Body::Symbol(format!("C{k}").into_bytes())));
        }
        let top = objects.len() as u32;
        objects.push(o(Body::Array(vec![obj(0), obj(4)])));
        ObjectStream {
            objects,
            top: vec![obj(top)],
            len: stream_len,
        }
    }

    #[test]
    fn class_structures_grow_with_the_stream_not_its_references() {
        // Three classes of three 20-byte names: read.
        let st = structures(3, 20, 1000);
        let names = st.class_structures().unwrap();
        assert_eq!(names.len(), 3);
        assert_eq!(names["C2"], vec!["x".repeat(20); 3]);
        // A thousand classes, each naming one 4 KiB String three times, from a stream that
        // holds it once: 12 MiB of copies are refused.
        let st = structures(1000, 4096, 16 << 10);
        assert!(matches!(
            st.class_structures(),
            Err(SegmentError::TooLarge { len, limit, .. }) if len > limit
        ));
    }

    #[test]
    fn bad_input_is_typed() {
        assert!(matches!(
            read(&[8, 0, 0, 0, 9, 1]),
            Err(SegmentError::StreamTruncated { .. })
        ));
        assert!(matches!(
            read(&[10, 0, 0, 0, 7, b'!']),
            Err(SegmentError::BadReference { target: 7, .. })
        ));
        assert!(matches!(
            read(&[12, b'!']),
            Err(SegmentError::UnknownType { type_id: 12, .. })
        ));
        assert!(matches!(
            read(&[8, 0xff, 0xff, 0xff, 0xff, b'!']),
            Err(SegmentError::StreamTruncated { .. })
        ));
        let mut deep = Vec::new();
        for _ in 0..MAX_DEPTH + 1 {
            deep.extend([8, 0, 0, 0, 1]);
        }
        deep.extend([1, b'!']);
        assert!(matches!(
            read(&deep),
            Err(SegmentError::NestedObjectsTooDeep { .. })
        ));
        assert!(matches!(
            read(&[1]),
            Err(SegmentError::StreamTruncated { .. })
        ));
    }

    #[test]
    fn streams_past_the_bounds_are_refused() {
        // Ten empty strings (two bytes each) and ten nils at the top level.
        let mut strings = [5u8, 0].repeat(10);
        strings.push(b'!');
        let nils = [[1u8; 10].as_slice(), b"!"].concat();
        assert_eq!(read_bounded(&strings, 10, 10).unwrap().objects.len(), 10);
        assert!(matches!(
            read_bounded(&strings, 9, 100),
            Err(SegmentError::TooLarge {
                what: "objects in a stream",
                len: 10,
                limit: 9
            })
        ));
        assert_eq!(read_bounded(&nils, 0, 10).unwrap().top.len(), 10);
        assert!(matches!(
            read_bounded(&nils, 0, 9),
            Err(SegmentError::TooLarge {
                what: "values in a stream",
                len: 10,
                limit: 9
            })
        ));
        // Values inside an array count too: an array of nine nils is ten values.
        let array = [[8u8, 0, 0, 0, 9].as_slice(), &[1; 9], b"!"].concat();
        assert!(read_bounded(&array, 1, 10).is_ok());
        assert!(matches!(
            read_bounded(&array, 1, 9),
            Err(SegmentError::TooLarge {
                what: "values in a stream",
                ..
            })
        ));
    }
}
