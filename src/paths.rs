//! Output paths checked against the inputs before a command reads anything: a command that
//! reads one file and writes another must not replace its own input.

use std::path::Path;

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
