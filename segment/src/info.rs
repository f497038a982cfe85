//! What the `cowheap segment info` and `cowheap segment import` commands print: one call
//! each, answering a report with `Display`.

use crate::bind::{self, ImportReport};
use crate::error::{Result, SegmentError};
use crate::project::{Project, ProjectReport};
use crate::tenant::SegmentReport;
use crate::v3::{SegmentStats, V3Segment};
use std::fmt;
use std::path::Path;

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

/// Reads `path` as a cowheap segment file, bare Squeak V3 segment words, or an Etoys
/// project (in any of its wrappings), by its first bytes. Time: O(file).
///
/// # Errors
/// [`SegmentError::Io`]; the error of the format the file looked like.
pub fn info(path: &Path) -> Result<Info> {
    let bytes = std::fs::read(path).map_err(|source| SegmentError::Io {
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
    }
    Ok(Info::Project(Box::new(
        Project::from_bytes(&bytes)?.report(),
    )))
}

/// Imports the Etoys project at `project` into a new tenant of the Squeak image at `base`
/// (any format `cowheap_squeak::import` reads): binds its out-pointers by name and
/// materialises its objects (see [`bind::materialise`]). Time: O(image + project).
///
/// # Errors
/// [`SegmentError::Io`] and the project's errors; [`SegmentError::BaseImage`] if the image
/// does not import.
pub fn import_project(project: &Path, base: &Path) -> Result<ImportReport> {
    let p = Project::open(project)?;
    let heap = cowheap_squeak::import(base)
        .map_err(SegmentError::BaseImage)?
        .heap;
    let b = cowheap_forwarders::Base::new(heap);
    let mut t = cowheap_tenants::Tenant::fork(&b);
    Ok(bind::materialise(&mut t, &p, "segment")?.report)
}
