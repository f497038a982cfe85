//! `cowheap image …`, `cowheap import` and `cowheap export`: make, inspect, verify and
//! convert base images.

use anyhow::{Context, Result, bail};
use cowheap::heap::{BaseHeap, Format, Verification};
use cowheap::squeak::{self, ByteOrder, ExportOptions, ImageHeader, ImageKind};
use std::path::Path;
use std::time::Instant;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Opens `path` as a base heap ([`cowheap::open_base`]): a cowheap image file (mapped,
/// checked as `verification` says) or a Squeak, Pharo or Cuis image (imported). Returns what
/// it was, in words.
pub(crate) fn load(path: &Path, verification: Verification) -> Result<(BaseHeap, String)> {
    let t0 = Instant::now();
    let (heap, opened) = cowheap::open_base(path, verification)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let what = match opened {
        cowheap::Opened::ImageFile { verification } => {
            let how = match verification {
                Verification::Full => "verified",
                Verification::Trust => "trusted",
            };
            format!(
                "cowheap image file, version {}, mapped and {how} in {ms:.1} ms",
                cowheap::heap::image::VERSION
            )
        }
        cowheap::Opened::Smalltalk { format, .. } => {
            format!("{} image, imported in {ms:.0} ms", format.name())
        }
        _ => format!("opened in {ms:.1} ms"),
    };
    Ok((heap, what))
}

/// `cowheap image info FILE`.
pub(crate) fn info(path: &Path) -> Result<()> {
    let (heap, what) = load(path, Verification::Trust)?;
    let file_bytes = std::fs::metadata(path)?.len();
    outln!("{}: {what}", path.display())?;
    outln!(
        "objects: {}   object data: {:.1} MiB   file: {:.1} MiB",
        heap.len(),
        mib(heap.memory_bytes() as u64),
        mib(file_bytes)
    )?;
    outln!("fingerprint: {}", heap.fingerprint())?;
    let (header, named): (Vec<_>, Vec<_>) = heap
        .roots()
        .iter()
        .partition(|r| r.name.starts_with("image."));
    let names: Vec<&str> = named.iter().map(|r| r.name.as_str()).collect();
    outln!("roots: {}", names.join(", "))?;
    if !header.is_empty() {
        let h = ImageHeader::from_heap(&heap);
        outln!(
            "source image: version {}, {} header roots kept for export",
            h.version,
            header.len()
        )?;
    }
    let mut formats = [0usize; Format::ALL.len()];
    for i in heap.indices() {
        formats[heap.object(i)?.format.code() as usize] += 1;
    }
    let formats: Vec<String> = Format::ALL
        .iter()
        .zip(formats)
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| format!("{f:?} {n}"))
        .collect();
    outln!("formats: {}", formats.join(", "))?;

    let mut classes = squeak::class_histogram(&heap);
    outln!("classes: {}", classes.len())?;
    print_top("top classes by instances", &classes)?;
    classes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.instances.cmp(&a.instances)));
    print_top("top classes by bytes", &classes)
}

/// The first 15 rows of a class histogram under `title`.
fn print_top(title: &str, classes: &[squeak::ClassStats]) -> Result<()> {
    outln!()?;
    outln!("{title:<32} {:>10} {:>14}", "instances", "bytes")?;
    for c in classes.iter().take(15) {
        outln!("{:<32} {:>10} {:>14}", c.name, c.instances, c.bytes)?;
    }
    Ok(())
}

/// `cowheap image verify FILE`.
pub(crate) fn verify(path: &Path) -> Result<()> {
    let t0 = Instant::now();
    let heap = BaseHeap::open(path).with_context(|| format!("verifying {}", path.display()))?;
    outln!(
        "{}: ok: {} objects, every section's checksum and every object checked in {:.1} ms; fingerprint {}",
        path.display(),
        heap.len(),
        t0.elapsed().as_secs_f64() * 1e3,
        heap.fingerprint()
    )?;
    Ok(())
}

/// `cowheap image new -o FILE`: a synthetic Smalltalk-shaped base saved as an image file.
pub(crate) fn new(out: &Path, objects: usize, seed: u64) -> Result<()> {
    let heap = cowheap::synth::image(objects, seed);
    heap.save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    outln!(
        "{}: {} objects, fingerprint {}",
        out.display(),
        heap.len(),
        heap.fingerprint()
    )?;
    Ok(())
}

/// `cowheap import IMAGE -o BASE`: a Smalltalk image saved as a cowheap image file.
pub(crate) fn import(image: &Path, out: &Path) -> Result<()> {
    let t0 = Instant::now();
    let imported =
        squeak::import(image).with_context(|| format!("importing {}", image.display()))?;
    let took = t0.elapsed();
    imported
        .heap
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    outln!(
        "{} ({}): {} objects imported in {:.0} ms; wrote {} ({:.1} MiB), fingerprint {}",
        image.display(),
        imported.format.name(),
        imported.heap.len(),
        took.as_secs_f64() * 1e3,
        out.display(),
        mib(std::fs::metadata(out)?.len()),
        imported.heap.fingerprint()
    )?;
    Ok(())
}

/// `cowheap export BASE -o IMAGE`: a base back to a Smalltalk image.
pub(crate) fn export(
    base: &Path,
    out: &Path,
    format: Option<&str>,
    order: Option<ByteOrder>,
) -> Result<()> {
    let (heap, _) = load(base, Verification::Full)?;
    let kind = match format {
        Some("v3") => Some(ImageKind::V3),
        Some("spur32") => Some(ImageKind::Spur32),
        Some("spur64") => Some(ImageKind::Spur64),
        Some(other) => bail!("unknown format {other:?}: use v3, spur32 or spur64"),
        None => None,
    };
    let options = ExportOptions {
        kind,
        order,
        ..ExportOptions::default()
    };
    let written = squeak::export_to_path_with(&heap, &options, out)
        .with_context(|| format!("exporting to {}", out.display()))?;
    outln!(
        "{}: {} image, {} objects, {:.1} MiB",
        out.display(),
        written.name(),
        heap.len(),
        mib(std::fs::metadata(out)?.len())
    )?;
    Ok(())
}
