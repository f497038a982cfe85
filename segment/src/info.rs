//! What the `cowheap segment info` and `cowheap segment import` commands print: one call
//! each, answering a report with `Display`.

use crate::bind::{self, ImportReport};
use crate::error::{Result, SegmentError};
use crate::project::{Project, ProjectReport};
use crate::spur::{SpurSegment, SpurStats, WordSize};
use crate::tenant::SegmentReport;
use crate::v3::{SegmentStats, V3Segment};
use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Value};
use cowheap_tenants::Tenant;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// What a segment file is, and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Info {
    /// A cowheap segment file.
    Cowheap(SegmentReport),
    /// Bare Squeak V3 segment words (out-pointers not known: every index is accepted).
    SqueakWords {
        /// The version word.
        version_word: u32,
        /// The counts.
        stats: SegmentStats,
    },
    /// Bare Squeak Spur segment words (out-pointers not known: every index is accepted).
    SpurWords {
        /// The version word.
        version_word: u32,
        /// The byte order.
        order: crate::v3::ByteOrder,
        /// The word size.
        words: WordSize,
        /// The counts.
        stats: SpurStats,
    },
    /// An Etoys project file.
    Project(Box<ProjectReport>),
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Info::Cowheap(r) => r.fmt(f),
            Info::Project(r) => {
                writeln!(f, "Etoys project file")?;
                r.fmt(f)
            }
            Info::SpurWords {
                version_word,
                order,
                words,
                stats: s,
            } => {
                writeln!(
                    f,
                    "Squeak Spur segment words ({}-bit, {order:?} endian), version word {version_word:#010x}",
                    words.bytes() * 8
                )?;
                writeln!(f, "bytes:           {}", s.bytes)?;
                writeln!(
                    f,
                    "objects:         {} ({} with an overflow word)",
                    s.objects, s.overflow_headers
                )?;
                writeln!(f, "roots:           {}", s.roots)?;
                writeln!(
                    f,
                    "references:      {} inside, {} to out-pointers ({} distinct), {} immediates",
                    s.internal_refs, s.out_refs, s.out_pointers_used, s.immediates
                )
            }
            Info::SqueakWords {
                version_word,
                stats: s,
            } => {
                writeln!(
                    f,
                    "Squeak V3 segment words, version word {version_word:#010x}"
                )?;
                writeln!(f, "segment words:   {}", s.words)?;
                writeln!(f, "objects:         {}", s.objects)?;
                writeln!(f, "roots:           {}", s.roots)?;
                writeln!(
                    f,
                    "references:      {} inside, {} to out-pointers ({} distinct), {} small integers",
                    s.internal_refs, s.out_refs, s.out_pointers_used, s.ints
                )
            }
        }
    }
}

/// Reads `path` as a cowheap segment file, bare Squeak V3 or Spur segment words, or an Etoys
/// project (in any of its wrappings), by its first bytes. Time: O(file).
///
/// # Errors
/// [`SegmentError::Io`]; the error of the format the file looked like.
pub fn info(path: &Path) -> Result<Info> {
    let bytes = cowheap_heap::file::read_regular(path).map_err(|source| SegmentError::Io {
        path: path.to_owned(),
        source,
    })?;
    if bytes.starts_with(crate::file::MAGIC) {
        return Ok(Info::Cowheap(
            crate::file::from_bytes(&bytes, None)?.report(),
        ));
    }
    if let Some(first) = bytes.get(..4) {
        let le = u32::from_le_bytes([first[0], first[1], first[2], first[3]]);
        let be = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
        if [le, be]
            .iter()
            .any(|w| matches!(w & 0xFF_FFFF, 6502 | 6504) && w >> 24 != 0)
        {
            let seg = V3Segment::parse(&bytes, u32::MAX as usize >> 2)?;
            return Ok(Info::SqueakWords {
                version_word: seg.version_word,
                stats: seg.stats(),
            });
        }
        if [le, be].iter().any(|w| {
            crate::spur::VERSIONS
                .iter()
                .any(|&(v, _)| w & 0xFF_FFFF == v)
        }) {
            let seg = SpurSegment::parse(&bytes, usize::MAX)?;
            return Ok(Info::SpurWords {
                version_word: seg.version_word,
                order: seg.order,
                words: seg.words,
                stats: seg.stats()?,
            });
        }
    }
    Ok(Info::Project(Box::new(
        Project::from_bytes(&bytes)?.report(),
    )))
}

/// Opens a base: a cowheap image file (verified), or a Squeak image (any format
/// `cowheap_squeak::import` reads). Time: O(image).
///
/// # Errors
/// [`SegmentError::Io`], [`SegmentError::File`] for a bad cowheap image,
/// [`SegmentError::BaseImage`] for a Squeak image that does not import.
pub fn load_base(path: &Path) -> Result<Arc<Base>> {
    let mut magic = [0u8; 8];
    let mut f = cowheap_heap::file::open_regular_file(path).map_err(|source| SegmentError::Io {
        path: path.to_owned(),
        source,
    })?;
    let n = f.read(&mut magic).map_err(|source| SegmentError::Io {
        path: path.to_owned(),
        source,
    })?;
    let heap = if n == 8 && magic == cowheap_heap::image::MAGIC {
        BaseHeap::open(path)?
    } else {
        cowheap_squeak::import(path)
            .map_err(SegmentError::BaseImage)?
            .heap
    };
    Ok(Base::new(heap))
}

/// Imports the Etoys project at `project` into a new tenant of the base at `base` (see
/// [`load_base`]): binds its out-pointers by name and materialises its objects (see
/// [`bind::materialise`]). Time: O(image + project).
///
/// # Errors
/// [`SegmentError::Io`] and the project's errors; [`load_base`]'s.
pub fn import_project(project: &Path, base: &Path) -> Result<ImportReport> {
    let p = Project::open(project)?;
    let b = load_base(base)?;
    let mut t = Tenant::fork(&b);
    Ok(bind::materialise(&mut t, &p, "segment")?.report)
}

/// What `cowheap segment import` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// An Etoys project: what bound, what was made.
    Project(Box<ImportReport>),
    /// A cowheap segment: members and roots made, out-pointers that did not bind (read
    /// as nil).
    Cowheap {
        /// Members made.
        objects: usize,
        /// Roots.
        roots: usize,
        /// Out-pointers bound.
        bound: usize,
        /// Out-pointers not bound, described.
        unbound: Vec<String>,
        /// The hashed collections rehashed, and those that could not be.
        rehash: crate::rehash::RehashReport,
        /// The kinds of the host objects made as placeholders (the command has no plugins).
        placeholders: Vec<String>,
    },
}

impl fmt::Display for ImportOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportOutcome::Project(r) => r.fmt(f),
            ImportOutcome::Cowheap {
                objects,
                roots,
                bound,
                unbound,
                rehash,
                placeholders,
            } => {
                writeln!(f, "objects:         {objects} made ({roots} roots)")?;
                writeln!(
                    f,
                    "out-pointers:    {bound} bound, {} not bound (read as nil)",
                    unbound.len()
                )?;
                for u in unbound {
                    writeln!(f, "  {u}")?;
                }
                if !placeholders.is_empty() {
                    writeln!(
                        f,
                        "host objects:    {} made as placeholders (no plugins here): {}",
                        placeholders.len(),
                        placeholders.join(", ")
                    )?;
                }
                rehash.fmt(f)
            }
        }
    }
}

/// Imports `file` (an Etoys project or a cowheap segment file) into a new tenant of the
/// base at `base`, and reports what bound. A cowheap segment that is not portable must
/// come from that base; out-pointers it cannot bind read as nil and are listed, and host
/// objects are made as placeholders (the command has no plugins) and listed. Time:
/// O(image + file).
///
/// # Errors
/// [`load_base`]'s; the file's format errors ([`SegmentError::WrongBase`] among them).
pub fn import(file: &Path, base: &Path) -> Result<ImportOutcome> {
    Ok(import_keeping(file, base)?.outcome)
}

/// A file imported by [`import_keeping`]: the tenant it was made in, what
/// `cowheap segment import` prints, and the hashed collections left for the image's own
/// `rehash`.
#[derive(Debug)]
pub struct ImportedTenant {
    /// The tenant the file was imported into.
    pub tenant: Tenant,
    /// What bound, what was made, what was rehashed.
    pub outcome: ImportOutcome,
    /// The hashed collections the model did not rehash and the image's own `rehash`
    /// should be sent to ([`crate::rehash::RehashReport::left_for_image`]), as values of
    /// `tenant`; the command sends it through the interpreter (`cowheap_vm`'s
    /// `Vm::rehash_by_image`).
    pub left_for_image: Vec<Value>,
}

/// [`import`], keeping the tenant and the collections left for the image's `rehash`.
/// Time: O(image + file).
///
/// # Errors
/// As [`import`].
pub fn import_keeping(file: &Path, base: &Path) -> Result<ImportedTenant> {
    let bytes = cowheap_heap::file::read_regular(file).map_err(|source| SegmentError::Io {
        path: file.to_owned(),
        source,
    })?;
    let b = load_base(base)?;
    let mut t = Tenant::fork(&b);
    if bytes.starts_with(crate::file::MAGIC) {
        let mut seg = crate::file::from_bytes(&bytes, Some(b.fingerprint()))?;
        let plugins = cowheap_tenants::hosts::HostPlugins::new();
        let done = seg.import_with_hosts(&mut t, &[], true, &plugins, true)?;
        let placeholders = done
            .placeholders
            .iter()
            .filter_map(|p| seg.hosts.iter().find(|h| h.member == p.member))
            .map(|h| h.kind.clone())
            .collect();
        let left_for_image = done.left_for_image();
        let outcome = ImportOutcome::Cowheap {
            objects: done.members.len() - done.not_made.len(),
            roots: done.roots.len(),
            bound: seg.out.len() - done.unbound.len(),
            unbound: done.unbound,
            rehash: done.rehash,
            placeholders,
        };
        return Ok(ImportedTenant {
            tenant: t,
            outcome,
            left_for_image,
        });
    }
    let p = Project::from_bytes(&bytes)?;
    let m = bind::materialise(&mut t, &p, "segment")?;
    let left_for_image = m.left_for_image();
    Ok(ImportedTenant {
        tenant: t,
        outcome: ImportOutcome::Project(Box::new(m.report)),
        left_for_image,
    })
}
