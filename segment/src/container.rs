//! Unwrapping an Etoys project file down to its object stream.
//!
//! The accepted wrappings, tried in this order on each layer:
//! 1. a zip archive (`PK\x03\x04`): the entry whose name ends in `.pr` is the next layer;
//!    failing that, the first entry that is itself a zip (a zip inside a zip);
//! 2. `SPRJ` and 40 more bytes (a signature field Etoys writes), then the next layer;
//! 3. a gzip stream (`1f 8b`): its inflated bytes are the next layer;
//! 4. anything else is the object stream itself: a text preamble of `!`-terminated chunks
//!    ending in the chunk `self smartRefStream`, then the binary SmartRefStream.
//!
//! Every layer is bounded: at most [`MAX_NESTING`] layers, at most [`MAX_INFLATED`] bytes
//! inflated, and in a zip without a named entry at most [`MAX_CANDIDATES`] entries looked at,
//! four bytes each, so a hostile file cannot make the reader loop or exhaust memory.

use crate::error::{Result, SegmentError};
use std::io::{Cursor, Read};

/// Layers of wrapping followed at most.
pub const MAX_NESTING: usize = 8;
/// Largest inflated entry or gzip stream read, in bytes (256 MiB).
pub const MAX_INFLATED: u64 = 256 << 20;
/// Entries of a zip without a `.pr` or `.zip` name looked at for a nested zip, at most.
pub const MAX_CANDIDATES: usize = 1024;
/// What the header of a signed project says before its 40 bytes of signature field.
pub const SPRJ: &[u8; 4] = b"SPRJ";
/// Bytes from the start of `SPRJ` to the gzip stream.
pub const SPRJ_HEADER: usize = 44;
/// The chunk that ends the text preamble; the binary stream follows it.
const STREAM_MARK: &[u8] = b"!self smartRefStream!";

/// How a project's object stream was wrapped, outermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    /// A zip archive; the entry taken.
    Zip {
        /// The entry's name.
        entry: String,
    },
    /// The `SPRJ` header and its 40 bytes.
    Sprj,
    /// A gzip stream; its inflated length.
    Gzip {
        /// Inflated bytes.
        inflated: usize,
    },
}

/// The object stream of a project and how it was found.
#[derive(Clone, Debug)]
pub struct Unwrapped {
    /// The wrappings, outermost first.
    pub layers: Vec<Layer>,
    /// The innermost bytes: the text preamble and the binary stream.
    pub stream: Vec<u8>,
    /// Byte position in `stream` where the binary object stream starts (DataStream
    /// references count from here).
    pub binary_at: usize,
}

/// Unwraps `bytes` (see the module doc). Time: O(inflated size).
///
/// # Errors
/// [`SegmentError::Zip`], [`SegmentError::Gzip`] for a corrupt wrapper;
/// [`SegmentError::NotAProject`] if no object stream is found;
/// [`SegmentError::NestedTooDeep`], [`SegmentError::TooLarge`] past the limits.
pub fn unwrap(bytes: &[u8]) -> Result<Unwrapped> {
    let mut layers = Vec::new();
    let mut cur: Vec<u8> = bytes.to_vec();
    for _ in 0..MAX_NESTING {
        if cur.starts_with(b"PK\x03\x04") {
            let (entry, data) = zip_entry(&cur)?;
            layers.push(Layer::Zip { entry });
            cur = data;
        } else if cur.starts_with(SPRJ) {
            let rest = cur.get(SPRJ_HEADER..).ok_or(SegmentError::NotAProject(
                "an SPRJ header shorter than 44 bytes",
            ))?;
            layers.push(Layer::Sprj);
            cur = rest.to_vec();
        } else if cur.starts_with(&[0x1f, 0x8b]) {
            cur = gunzip(&cur)?;
            layers.push(Layer::Gzip {
                inflated: cur.len(),
            });
        } else {
            let binary_at = find(&cur, STREAM_MARK)
                .map(|i| i + STREAM_MARK.len())
                .ok_or(SegmentError::NotAProject(
                    "no zip, SPRJ, gzip or `!self smartRefStream!` chunk",
                ))?;
            return Ok(Unwrapped {
                layers,
                stream: cur,
                binary_at,
            });
        }
    }
    Err(SegmentError::NestedTooDeep(MAX_NESTING))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The entry of a zip to unwrap next: the `.pr` entry, else the first nested zip.
fn zip_entry(bytes: &[u8]) -> Result<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes))?;
    let names: Vec<String> = z.file_names().map(str::to_owned).collect();
    let pick = names
        .iter()
        .position(|n| n.to_ascii_lowercase().ends_with(".pr"))
        .or_else(|| {
            names
                .iter()
                .position(|n| n.to_ascii_lowercase().ends_with(".zip"))
        });
    let candidates: Vec<usize> = match pick {
        Some(i) => vec![i],
        None => (0..z.len()).collect(),
    };
    // Without a named entry, each candidate is judged by its first four bytes, so an archive
    // of many large entries (or many entries naming one) costs four bytes each, not an
    // inflation each; and at most `MAX_CANDIDATES` are looked at.
    for i in candidates.into_iter().take(MAX_CANDIDATES) {
        let mut f = z.by_index(i)?;
        if f.size() > MAX_INFLATED {
            return Err(SegmentError::TooLarge {
                what: "a zip entry",
                len: f.size(),
                limit: MAX_INFLATED,
            });
        }
        let name = f.name().to_owned();
        let mut data = Vec::new();
        (&mut f)
            .take(4)
            .read_to_end(&mut data)
            .map_err(|e| SegmentError::Zip(e.into()))?;
        if pick.is_none() && !data.starts_with(b"PK\x03\x04") {
            continue;
        }
        (&mut f)
            .take(MAX_INFLATED + 1 - data.len() as u64)
            .read_to_end(&mut data)
            .map_err(|e| SegmentError::Zip(e.into()))?;
        if data.len() as u64 > MAX_INFLATED {
            return Err(SegmentError::TooLarge {
                what: "a zip entry",
                len: data.len() as u64,
                limit: MAX_INFLATED,
            });
        }
        return Ok((name, data));
    }
    Err(SegmentError::NotAProject(
        "a zip with no .pr entry and no nested zip",
    ))
}

/// Inflates one gzip member, checking its CRC and length.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut d = flate2::read::GzDecoder::new(bytes);
    let mut out = Vec::new();
    (&mut d)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(SegmentError::Gzip)?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(SegmentError::TooLarge {
            what: "a gzip stream",
            len: out.len() as u64,
            limit: MAX_INFLATED,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zipped(name: &str, data: &[u8]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().into_inner()
    }

    const STREAM: &[u8] = b"'From x'!\r!self smartRefStream!\x01";

    #[test]
    fn every_wrapping_is_accepted() {
        let mut sprj = SPRJ.to_vec();
        sprj.extend([7u8; 40]);
        sprj.extend(gz(STREAM));
        for (input, n) in [
            (STREAM.to_vec(), 0),
            (gz(STREAM), 1),
            (sprj.clone(), 2),
            (zipped("a.pr", &sprj), 3),
            (zipped("a.pr", &gz(STREAM)), 2),
            (zipped("outer.zip", &zipped("a.pr", &sprj)), 4),
            (zipped("inner", &zipped("a.pr", &sprj)), 4),
        ] {
            let u = unwrap(&input).unwrap();
            assert_eq!(u.stream, STREAM);
            assert_eq!(u.layers.len(), n, "{:?}", u.layers);
            assert_eq!(u.binary_at, STREAM.len() - 1);
        }
    }

    #[test]
    fn garbage_and_bombs_are_refused() {
        assert!(matches!(
            unwrap(b"hello"),
            Err(SegmentError::NotAProject(_))
        ));
        assert!(matches!(unwrap(b"SPRJ"), Err(SegmentError::NotAProject(_))));
        let mut bad = gz(STREAM);
        let n = bad.len();
        bad[n - 5] ^= 1; // the CRC
        assert!(matches!(unwrap(&bad), Err(SegmentError::Gzip(_))));
        // A gzip of a gzip of ... deeper than the limit.
        let mut deep = STREAM.to_vec();
        for _ in 0..=MAX_NESTING {
            deep = gz(&deep);
        }
        assert!(matches!(unwrap(&deep), Err(SegmentError::NestedTooDeep(_))));
    }

    /// A zip of `entries` in order, each stored (not compressed).
    fn stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn unnamed_entries_are_judged_by_their_first_bytes() {
        let mut sprj = SPRJ.to_vec();
        sprj.extend([7u8; 40]);
        sprj.extend(gz(STREAM));
        let inner = zipped("a.pr", &sprj);
        // An entry that is not a zip, whose CRC is wrong: reading it to its end would fail,
        // so the reader must have judged it by its first bytes and moved on.
        let junk: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut crc = flate2::Crc::new();
        crc.update(&junk);
        let mut archive = stored(&[("junk".into(), junk), ("inner".into(), inner.clone())]);
        let sum = crc.sum().to_le_bytes();
        let at: Vec<usize> = archive
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == sum)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 2, "the CRC in the local header and the directory");
        for i in at {
            archive[i] ^= 0xff;
        }
        let u = unwrap(&archive).unwrap();
        assert_eq!(u.stream, STREAM);
        assert_eq!(
            u.layers[0],
            Layer::Zip {
                entry: "inner".into()
            }
        );

        // Past MAX_CANDIDATES unnamed entries, the nested zip is not looked for.
        let mut entries: Vec<(String, Vec<u8>)> = (0..MAX_CANDIDATES - 1)
            .map(|i| (format!("junk{i}"), b"junk".to_vec()))
            .collect();
        entries.push(("inner".into(), inner.clone()));
        assert_eq!(unwrap(&stored(&entries)).unwrap().stream, STREAM);
        entries.insert(0, ("one more".into(), b"junk".to_vec()));
        assert!(matches!(
            unwrap(&stored(&entries)),
            Err(SegmentError::NotAProject(_))
        ));
    }
}
