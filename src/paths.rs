//! Output paths checked against the inputs before a command reads anything: a command that
//! reads one file and writes another must not replace its own input.

use cowheap::heap::file::through_links;
use std::path::{Path, PathBuf};

/// The file a path names once links are followed: its device and inode (elsewhere, its
/// canonical path). `None` if nothing is there.
#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(path: &Path) -> Option<std::path::PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// True if `output` exists and is the file `input` names, through a link or another
/// spelling of the path: writing `output` would replace the input.
pub(crate) fn is_input(output: &Path, input: &Path) -> bool {
    matches!((identity(output), identity(input)), (Some(o), Some(i)) if o == i)
}

/// An argument error if `output` is `input` ([`is_input`]), naming both.
pub(crate) fn refuse_input_as_output(
    output: &Path,
    output_name: &str,
    input: &Path,
    input_name: &str,
) -> Result<(), String> {
    if is_input(output, input) {
        Err(format!(
            "{output_name} {} is {input_name} {}: writing it would replace the input; \
             write elsewhere",
            output.display(),
            input.display()
        ))
    } else {
        Ok(())
    }
}

/// Where writing a path puts the file, as an atomic write does: through its symbolic links,
/// so that it replaces the file a link names and creates the file a dangling link names.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    /// A file that exists: the one the path names.
    #[cfg(unix)]
    Existing((u64, u64)),
    /// A file that exists: the one the path names.
    #[cfg(not(unix))]
    Existing(PathBuf),
    /// A new file: its directory's canonical path, and its name.
    New(PathBuf),
}

/// True if the last component of `path`, as written, is a name: not empty (a path that
/// ends in a separator), `.` or `..`. `Path` drops a trailing separator and a trailing `.`
/// (`report.json/` has the file name `report.json`), but the system does not: opening or
/// renaming over `report.json/` fails, once the run it was to record is over.
fn ends_in_a_name(path: &Path) -> bool {
    let raw = path.as_os_str().as_encoded_bytes();
    let last = raw
        .rsplit(|&b| b.is_ascii() && std::path::is_separator(char::from(b)))
        .next()
        .unwrap_or_default();
    !matches!(last, b"" | b"." | b"..")
}

/// The [`Destination`] of `path`, given on the command line as `option`; an error naming it
/// if its last component is no name ([`ends_in_a_name`]), if its links cannot be followed,
/// if the directory the write would put the file in does not exist, or if it exists and is
/// not a regular file (a directory, a FIFO, a device; or a link to one): the file is written
/// whole to a temporary file renamed over it, which would replace such a file rather than
/// write into it. The checks are made on the path the write goes to through the links
/// (`cowheap::heap::file::through_links`, the write's own rule), so that a dangling link is
/// checked as the file it names.
fn destination(path: &Path, option: &str) -> Result<Destination, String> {
    if !ends_in_a_name(path) {
        return Err(format!(
            "{option} {}: names no file (it ends in a separator, `.` or `..`)",
            path.display()
        ));
    }
    let resolved =
        through_links(path).map_err(|e| format!("{option} {}: its links: {e}", path.display()))?;
    let via = if resolved == path {
        String::new()
    } else {
        format!(" (a link to {})", resolved.display())
    };
    if !ends_in_a_name(&resolved) {
        return Err(format!(
            "{option} {}{via}: names no file (it ends in a separator, `.` or `..`)",
            path.display()
        ));
    }
    let target = resolved.as_path();
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Err(format!(
            "{option} {}{via}: the directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => {
            return Err(format!(
                "{option} {}{via}: is a directory; name a file",
                path.display()
            ));
        }
        Ok(m) if !m.is_file() => {
            return Err(format!(
                "{option} {}{via}: is not a regular file (a FIFO, a device or a socket); \
                 name a regular file",
                path.display()
            ));
        }
        _ => {}
    }
    if let Some(id) = identity(target) {
        return Ok(Destination::Existing(id));
    }
    let name = target
        .file_name()
        .ok_or_else(|| format!("{option} {}{via}: names no file", path.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        format!(
            "{option} {}{via}: the directory {}: {e}",
            path.display(),
            dir.display()
        )
    })?;
    Ok(Destination::New(dir.join(name)))
}

/// An output a command is to write: the option that gives it, what it is in words ("the
/// chart"), and its path.
pub(crate) type Output<'a> = (&'a str, &'a str, &'a Path);

/// Checks the files a command is to write, before it runs: each of `outputs` must be in a
/// directory that exists, be a file of its own, and not be `input` (what it is in words,
/// and its path), which the command reads.
pub(crate) fn check_outputs(
    outputs: &[Output<'_>],
    input: Option<(&str, &Path)>,
) -> Result<(), String> {
    let mut seen: Vec<(&Output<'_>, Destination)> = Vec::new();
    for output @ &(option, _, path) in outputs {
        let dest = destination(path, option)?;
        if let Some((what, input)) = input
            && is_input(path, input)
        {
            return Err(format!(
                "{option} {} is {what} {}: writing it would replace the input",
                path.display(),
                input.display()
            ));
        }
        if let Some(((other, what, other_path), _)) = seen.iter().find(|(_, d)| *d == dest) {
            return Err(format!(
                "{option} {} is {what} {} ({other}): give each its own file",
                path.display(),
                other_path.display()
            ));
        }
        seen.push((output, dest));
    }
    Ok(())
}
