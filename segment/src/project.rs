//! Etoys project files: the wrapping, the SmartRefStream, the ImageSegment instance, its
//! out-pointers and its V3 segment words.
//!
//! ```no_run
//! let p = cowheap_segment::Project::open("JustPaintedCar.013.pr")?;
//! println!("{}", p.report());
//! assert_eq!(p.segment_bytes(), p.segment.to_bytes()?.as_slice());
//! # Ok::<(), cowheap_segment::SegmentError>(())
//! ```

use crate::container::{self, Layer};
use crate::datastream::{self, Body, ObjectStream, Val};
use crate::error::{Result, SegmentError};
use crate::v3::{ClassRef, V3Segment};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// Out-pointers a project's segment may have. Each is described once ([`OutPointer`], 72
/// bytes) and bound once ([`crate::bind::Bindings`]), where the stream may spend one byte on
/// it (a nil): without a bound of their own, the 2^24 values a stream may hold
/// ([`datastream::MAX_VALUES`]: 16 MiB inflated, a few kilobytes gzipped) would be 1.2 GB of
/// descriptions. The real projects have about a hundred.
pub const MAX_OUT_POINTERS: usize = 1 << 20;

/// Where an out-pointer leads, as the stream describes it.
#[derive(Clone, Debug, PartialEq)]
pub enum OutPointer {
    /// nil.
    Nil,
    /// true.
    True,
    /// false.
    False,
    /// A SmallInteger.
    Int(i32),
    /// A Symbol, by its bytes' text ([`crate::bind::byte_text`]).
    Symbol(String),
    /// A class, by name (a `DiskProxy` for `Smalltalk at: name`, with the class version the
    /// writer had).
    Class {
        /// The class name.
        name: String,
        /// The writer's class version, when given.
        version: Option<i32>,
    },
    /// A global's value, by name (a `DiskProxy` with no constructor).
    Global(String),
    /// An object the importing image makes: `global selector args` (a `DiskProxy` such as
    /// `TextConstants at: #DefaultTabsArray` or `TTCFont familyName:pointSize:emphasis:`).
    /// A proxy with a pre-selector, which is sent to the global first, has it before the
    /// constructor's in `selector` (`Smalltalk class`, `Point class withClassVersion:`).
    Constructed {
        /// The receiver, a global's name.
        global: String,
        /// The selector.
        selector: String,
        /// The arguments, printed.
        args: Vec<String>,
    },
    /// A String carried by value in the stream.
    String(String),
    /// Another object carried in the stream (an instance, an array, ...), by its class
    /// name; `stream` is its position in the [`ObjectStream`].
    Object {
        /// Its class name.
        class: String,
        /// Its id in the stream.
        stream: datastream::ObjId,
    },
}

impl OutPointer {
    /// The bytes of text the description holds (an argument's `String` counted too).
    fn text_len(&self) -> usize {
        match self {
            OutPointer::Nil | OutPointer::True | OutPointer::False | OutPointer::Int(_) => 0,
            OutPointer::Symbol(t) | OutPointer::Global(t) | OutPointer::String(t) => t.len(),
            OutPointer::Class { name, .. } => name.len(),
            OutPointer::Object { class, .. } => class.len(),
            OutPointer::Constructed {
                global,
                selector,
                args,
            } => args.iter().fold(global.len() + selector.len(), |n, a| {
                n + a.len() + std::mem::size_of::<String>()
            }),
        }
    }

    /// The kind's name, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            OutPointer::Nil | OutPointer::True | OutPointer::False => "well-known",
            OutPointer::Int(_) => "integer",
            OutPointer::Symbol(_) => "symbol",
            OutPointer::Class { .. } => "class",
            OutPointer::Global(_) => "global",
            OutPointer::Constructed { .. } => "constructed",
            OutPointer::String(_) => "string",
            OutPointer::Object { .. } => "object",
        }
    }
}

impl fmt::Display for OutPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutPointer::Nil => f.write_str("nil"),
            OutPointer::True => f.write_str("true"),
            OutPointer::False => f.write_str("false"),
            OutPointer::Int(i) => write!(f, "{i}"),
            OutPointer::Symbol(s) => write!(f, "#{s}"),
            OutPointer::Class { name, .. } => write!(f, "class {name}"),
            OutPointer::Global(g) => write!(f, "global {g}"),
            OutPointer::Constructed {
                global,
                selector,
                args,
            } => write!(f, "{global} {selector} {}", args.join(" ")),
            OutPointer::String(s) => write!(f, "'{s}'"),
            OutPointer::Object { class, .. } => write!(f, "a {class}"),
        }
    }
}

/// A decoded Etoys project file.
#[derive(Clone, Debug)]
pub struct Project {
    /// How the stream was wrapped, outermost first.
    pub layers: Vec<Layer>,
    /// Bytes of the inflated stream (text preamble and binary stream).
    pub inflated_len: usize,
    /// Byte position of the binary stream in the inflated bytes.
    pub binary_at: usize,
    /// The decoded object stream.
    pub stream: ObjectStream,
    /// The ImageSegment instance's class name.
    pub segment_class: String,
    /// Its `state`, when a Symbol (`imported`, `onFile`, ...).
    pub state: Option<String>,
    /// Its `userRootCnt`, when an integer.
    pub user_roots: Option<i32>,
    /// Byte position of the segment words in the binary stream (after the type byte, the
    /// class name of a type 20 word object, and the length).
    pub segment_at: usize,
    /// The segment's raw bytes as in the file.
    segment_raw: Vec<u8>,
    /// The decoded segment.
    pub segment: V3Segment,
    /// The out-pointer table, in order (out-pointer `k` is element `k - 1`).
    pub out_pointers: Vec<OutPointer>,
    /// Instance variable names per class, from the stream's class structures.
    pub structures: HashMap<String, Vec<String>>,
}

impl Project {
    /// Reads the project file at `path`. Time: O(file + inflated size).
    ///
    /// # Errors
    /// [`SegmentError::Io`], else as [`Project::from_bytes`].
    pub fn open(path: impl AsRef<Path>) -> Result<Project> {
        let path = path.as_ref();
        let bytes = cowheap_heap::file::read_regular(path).map_err(|source| SegmentError::Io {
            path: path.to_owned(),
            source,
        })?;
        Project::from_bytes(&bytes)
    }

    /// Decodes a project file held in memory: the wrapping, the object stream, the
    /// ImageSegment and its words. Time: O(size).
    ///
    /// # Errors
    /// Any [`SegmentError`] of the layers: a corrupt wrapper, a malformed stream, no
    /// ImageSegment, a malformed segment.
    pub fn from_bytes(bytes: &[u8]) -> Result<Project> {
        let u = container::unwrap(bytes)?;
        let binary = u.stream.get(u.binary_at..).unwrap_or(&[]);
        let stream = datastream::read(binary)?;
        let (class, fields) = stream
            .top
            .iter()
            .find_map(|&t| {
                stream
                    .instance(t)
                    .filter(|(c, f)| c.ends_with("ImageSegment") && f.len() >= 3)
            })
            .ok_or(SegmentError::NoSegment(
                "no ImageSegment instance at the top",
            ))?;
        let names = stream.class_structures()?;
        // Fields by name where the stream says them, else Squeak's order
        // (arrayOfRoots segment outPointers state segmentName fileName endMarker userRootCnt).
        let field = |name: &str, default: usize| -> Option<Val> {
            let i = names
                .get(class)
                .and_then(|n| n.iter().position(|x| x == name))
                .unwrap_or(default);
            fields.get(i).copied()
        };
        let seg_val = field("segment", 1).ok_or(SegmentError::NoSegment("no segment field"))?;
        let (segment_at, segment_raw) = match stream.body(seg_val) {
            Some(Body::Words { data, data_at, .. }) => (*data_at as usize, data.clone()),
            _ => {
                return Err(SegmentError::NoSegment(
                    "the segment field holds no word array",
                ));
            }
        };
        let outs = field("outPointers", 2)
            .and_then(|v| stream.array(v))
            .ok_or(SegmentError::NoSegment(
                "the outPointers field holds no Array",
            ))?;
        if outs.len() > MAX_OUT_POINTERS {
            return Err(SegmentError::TooLarge {
                what: "out-pointers in a segment",
                len: outs.len() as u64,
                limit: MAX_OUT_POINTERS as u64,
            });
        }
        let out_pointers = describe_all(&stream, outs, binary.len())?;
        let segment = V3Segment::parse(&segment_raw, out_pointers.len())?;
        let state = field("state", 3).and_then(|v| stream.text(v));
        let user_roots = match field("userRootCnt", 7) {
            Some(Val::Int(i)) => Some(i),
            _ => None,
        };
        Ok(Project {
            layers: u.layers,
            inflated_len: u.stream.len(),
            binary_at: u.binary_at,
            segment_class: class.to_owned(),
            state,
            user_roots,
            segment_at,
            segment_raw,
            segment,
            out_pointers,
            structures: names,
            stream,
        })
    }

    /// The segment's words as they were in the file.
    pub fn segment_bytes(&self) -> &[u8] {
        &self.segment_raw
    }

    /// The out-pointer `k` (1-based).
    pub fn out_pointer(&self, k: u32) -> Option<&OutPointer> {
        self.out_pointers.get((k as usize).checked_sub(1)?)
    }

    /// The writer's compact classes by index (element `k` names compact class `k`; element
    /// 0 is always `None`), when the last out-pointer is an Array of at most 31 class
    /// proxies and nils (what an Etoys export appends). Time: O(31).
    pub fn writer_compact_classes(&self) -> Option<Vec<Option<String>>> {
        let Some(OutPointer::Object { stream, .. }) = self.out_pointers.last() else {
            return None;
        };
        let items = self.stream.array(Val::Obj(*stream))?;
        if items.len() > 31 {
            return None;
        }
        let mut out = vec![None];
        for &v in items {
            match describe(&self.stream, v) {
                OutPointer::Nil => out.push(None),
                OutPointer::Class { name, .. } => out.push(Some(name)),
                _ => return None,
            }
        }
        Some(out)
    }

    /// What the project holds, for printing. Time: O(objects).
    pub fn report(&self) -> ProjectReport {
        let stats = self.segment.stats();
        let mut by_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
        for o in &self.out_pointers {
            *by_kind.entry(o.kind()).or_default() += 1;
        }
        let mut classes: BTreeMap<String, usize> = BTreeMap::new();
        let compact = self.writer_compact_classes();
        for o in &self.segment.objects {
            let name = match o.vm_class() {
                ClassRef::Compact(k) => {
                    match compact.as_ref().and_then(|c| c.get(usize::from(k))) {
                        Some(Some(name)) => name.clone(),
                        _ => format!("(compact class {k})"),
                    }
                }
                ClassRef::Obj(i) => format!("(a class in the segment, object {i})"),
                ClassRef::Out(k) => match self.out_pointer(k) {
                    Some(OutPointer::Class { name, .. }) => name.clone(),
                    Some(other) => format!("({other})"),
                    None => format!("(out-pointer {k})"),
                },
            };
            *classes.entry(name).or_default() += 1;
        }
        ProjectReport {
            layers: self.layers.clone(),
            inflated: self.inflated_len,
            stream_objects: self.stream.objects.len(),
            segment_class: self.segment_class.clone(),
            state: self.state.clone(),
            version: self.segment.version(),
            letter: self.segment.letter(),
            order: self.segment.order,
            stats,
            user_roots: self.user_roots,
            out_pointers: self.out_pointers.len(),
            out_by_kind: by_kind
                .into_iter()
                .map(|(k, n)| (k.to_owned(), n))
                .collect(),
            classes: classes.into_iter().collect(),
        }
    }
}

/// How many bytes of text the out-pointers' descriptions may hold for an object stream of
/// `stream_len` bytes: four times the stream, and a mebibyte. Each description copies text
/// the stream holds once (a name, a string; an argument printed, an integer's at most 11
/// characters for its 5 bytes), so a stream that describes each of its objects once stays
/// well inside; one whose out-pointers name one long string a million times over does not.
fn described_limit(stream_len: usize) -> usize {
    stream_len.saturating_mul(4).saturating_add(1 << 20)
}

/// Describes every element of the out-pointer array, refusing with
/// [`SegmentError::TooLarge`] once their text passes [`described_limit`] (each element is
/// described on its own, so its copies would otherwise grow with the references, not with
/// the stream).
fn describe_all(s: &ObjectStream, outs: &[Val], stream_len: usize) -> Result<Vec<OutPointer>> {
    let limit = described_limit(stream_len);
    let mut held = 0usize;
    let mut out = Vec::with_capacity(outs.len());
    for &v in outs {
        let o = describe(s, v);
        held = held.saturating_add(o.text_len());
        if held > limit {
            return Err(SegmentError::TooLarge {
                what: "the out-pointers' names and strings",
                len: held as u64,
                limit: limit as u64,
            });
        }
        out.push(o);
    }
    Ok(out)
}

/// Describes an element of the out-pointer array.
fn describe(s: &ObjectStream, v: Val) -> OutPointer {
    let id = match v {
        Val::Nil => return OutPointer::Nil,
        Val::True => return OutPointer::True,
        Val::False => return OutPointer::False,
        Val::Int(i) => return OutPointer::Int(i),
        Val::Obj(id) => id,
    };
    let print = |v: Val| match v {
        Val::Nil => "nil".to_owned(),
        Val::True => "true".to_owned(),
        Val::False => "false".to_owned(),
        Val::Int(i) => i.to_string(),
        Val::Obj(_) => match s.body(v) {
            Some(Body::Symbol(b)) => format!("#{}", String::from_utf8_lossy(b)),
            Some(Body::String(b)) => format!("'{}'", String::from_utf8_lossy(b)),
            _ => "(object)".to_owned(),
        },
    };
    match s.body(v) {
        Some(Body::Symbol(b)) => OutPointer::Symbol(crate::bind::byte_text(b)),
        Some(Body::String(b)) => OutPointer::String(String::from_utf8_lossy(b).into_owned()),
        Some(Body::Instance { class, fields }) if class == "DiskProxy" => {
            // globalObjectName preSelector constructorSelector constructorArgs
            let global = fields.first().and_then(|&g| s.text(g));
            let selector = fields.get(2).and_then(|&g| s.text(g));
            let args: Vec<Val> = fields
                .get(3)
                .and_then(|&a| s.array(a))
                .map(<[Val]>::to_vec)
                .unwrap_or_default();
            // `DiskProxy>>comeFullyUpOnReload:` sends the pre-selector to the global before
            // the constructor: the object is then made by code, whatever the constructor (the
            // global's own value, a class or a dictionary entry only without one).
            if let (Some(global), Some(pre)) = (
                global.clone(),
                fields
                    .get(1)
                    .filter(|&&v| v != Val::Nil)
                    .and_then(|&p| s.text(p)),
            ) {
                return OutPointer::Constructed {
                    global,
                    selector: match selector {
                        Some(sel) => format!("{pre} {sel}"),
                        None => pre,
                    },
                    args: args.iter().map(|&a| print(a)).collect(),
                };
            }
            match (global, selector) {
                (Some(name), None) => OutPointer::Global(name),
                (Some(name), Some(sel)) if sel == "withClassVersion:" => OutPointer::Class {
                    name,
                    version: match args.first() {
                        Some(Val::Int(i)) => Some(*i),
                        _ => None,
                    },
                },
                (Some(global), Some(selector)) => OutPointer::Constructed {
                    global,
                    selector,
                    args: args.iter().map(|&a| print(a)).collect(),
                },
                _ => OutPointer::Object {
                    class: class.clone(),
                    stream: id,
                },
            }
        }
        Some(b) => OutPointer::Object {
            class: match b {
                Body::Instance { class, .. }
                | Body::Words { class, .. }
                | Body::Method { class, .. } => class.clone(),
                Body::Array(_) => "Array".to_owned(),
                Body::ByteArray(_) => "ByteArray".to_owned(),
                Body::Bitmap { .. } => "Bitmap".to_owned(),
                Body::Float(_) => "Float".to_owned(),
                Body::Rectangle(_) => "Rectangle".to_owned(),
                Body::String(_) | Body::Symbol(_) => "String".to_owned(),
            },
            stream: id,
        },
        None => OutPointer::Nil,
    }
}

/// What `cowheap segment info` prints for a project file.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectReport {
    /// The wrappings, outermost first.
    pub layers: Vec<Layer>,
    /// Bytes of the inflated stream.
    pub inflated: usize,
    /// Objects in the SmartRefStream.
    pub stream_objects: usize,
    /// The ImageSegment's class.
    pub segment_class: String,
    /// Its state.
    pub state: Option<String>,
    /// The segment's version (6502, 6504).
    pub version: u32,
    /// The byte-order letter.
    pub letter: u8,
    /// The byte order.
    pub order: cowheap_squeak::ByteOrder,
    /// The segment's counts.
    pub stats: crate::v3::SegmentStats,
    /// The ImageSegment's `userRootCnt`.
    pub user_roots: Option<i32>,
    /// Out-pointers in the table.
    pub out_pointers: usize,
    /// Out-pointers by kind.
    pub out_by_kind: Vec<(String, usize)>,
    /// Classes of the segment's objects, with instance counts, by name.
    pub classes: Vec<(String, usize)>,
}

impl fmt::Display for ProjectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|l| match l {
                Layer::Zip { entry } => format!("zip entry {entry}"),
                Layer::Sprj => "SPRJ header".to_owned(),
                Layer::Gzip { inflated } => format!("gzip ({inflated} bytes)"),
            })
            .collect();
        writeln!(f, "wrapping:        {}", layers.join(" > "))?;
        writeln!(
            f,
            "stream:          {} bytes inflated, {} objects",
            self.inflated, self.stream_objects
        )?;
        writeln!(
            f,
            "segment:         {} (state {}), version {} '{}' {:?}-endian",
            self.segment_class,
            self.state.as_deref().unwrap_or("?"),
            self.version,
            char::from(self.letter).escape_default(),
            self.order
        )?;
        let s = &self.stats;
        writeln!(f, "segment words:   {}", s.words)?;
        writeln!(
            f,
            "objects:         {} (headers: {} one-word, {} two-word, {} three-word)",
            s.objects, s.headers[0], s.headers[1], s.headers[2]
        )?;
        writeln!(
            f,
            "roots:           {} (userRootCnt {})",
            s.roots,
            self.user_roots.map_or("?".to_owned(), |r| r.to_string())
        )?;
        writeln!(
            f,
            "references:      {} inside, {} to out-pointers, {} small integers",
            s.internal_refs, s.out_refs, s.ints
        )?;
        let kinds: Vec<String> = self
            .out_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(
            f,
            "out-pointers:    {} ({} used): {}",
            self.out_pointers,
            s.out_pointers_used,
            kinds.join(", ")
        )?;
        writeln!(f, "classes:         {}", self.classes.len())?;
        for (name, n) in &self.classes {
            writeln!(f, "  {n:>6}  {name}")?;
        }
        Ok(())
    }
}
