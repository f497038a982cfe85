//! What image files and tenant snapshots share: typed file errors, fingerprints, atomic
//! writes, a bounds-checked little-endian reader, and the encoding of named roots.

use crate::Word;
use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The result type of file operations.
pub type FileResult<T> = std::result::Result<T, FileError>;

/// Why a file could not be written, opened or trusted. Opening never panics and never
/// allocates more than the file's own size on the strength of a count read from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The operating system refused (no such file, no permission, disk full...).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file ends before something it must hold.
    #[error("truncated: {what} needs {need} bytes at {at}, the file has {have}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        at: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes the file has.
        have: u64,
    },
    /// Not a file of this kind.
    #[error("not a {expected} (magic {found:02x?})")]
    BadMagic {
        /// What kind of file was expected.
        expected: &'static str,
        /// The first bytes found.
        found: [u8; 8],
    },
    /// A version of the format this build does not read.
    #[error("format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A checksum does not match: the named part was changed after it was written.
    #[error("checksum mismatch in the {part}: the file is corrupt")]
    Checksum {
        /// The header, or the section whose digest failed.
        part: &'static str,
    },
    /// The file's checksums hold but its contents break a rule of the format.
    #[error("corrupt {part}: {problem}")]
    Corrupt {
        /// Where: "header", "section table", "object 123", ...
        part: String,
        /// What rule is broken.
        problem: &'static str,
    },
    /// A tenant snapshot names a base other than the one it is restored onto.
    #[error("the snapshot belongs to base {expected}, not to base {found}")]
    ForeignBase {
        /// The base the snapshot was taken on.
        expected: Fingerprint,
        /// The base it was restored onto.
        found: Fingerprint,
    },
}

impl FileError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: io::Error) -> FileError {
        FileError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A broken rule in `part`.
    pub fn corrupt(part: impl Into<String>, problem: &'static str) -> FileError {
        FileError::Corrupt {
            part: part.into(),
            problem,
        }
    }
}

/// A content fingerprint: the BLAKE3 digest that names one exact base heap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..16] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Writes `path` atomically: `write` fills a temporary file in the same directory, which is
/// fsynced and renamed over `path`, and then the directory is fsynced. A crash at
/// any moment leaves either the old file or the new one, never a torn one; on error the
/// temporary file is removed and `path` is untouched. The file is written unbuffered.
///
/// The directory is opened (to fsync it) before anything is written, so a directory that
/// cannot be read, or something else in its place (a FIFO is refused at once, not waited
/// on), fails the write with nothing changed. Only the directory's fsync itself
/// comes after the rename: an I/O error there is reported with the new file in place.
///
/// The new file has the permissions of the file it replaces, or, for a new one, those any
/// file the process creates gets (read and write for all, less the umask), not a temporary
/// file's private ones. A symbolic link is followed: the file it names is replaced (or made,
/// for a link that names no file yet, as `File::create` would make it), and the link stays.
/// A loop of links is an error, with nothing written.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> FileResult<()> {
    stage(path, write)?.commit()
}

/// A file written whole and fsynced beside the path it is for, not yet in that path's
/// place: [`write_atomically`] in two halves, for a caller that decides between them
/// whether the file goes in (after reading it back, say, or under a lock it would not hold
/// while writing). [`Staged::commit`] puts it in place; dropping it removes it, leaving the
/// path as it was.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    /// The path to replace, through its symbolic links.
    path: PathBuf,
    /// The path as the caller gave it, for errors.
    named: PathBuf,
    dir: std::fs::File,
}

impl Staged {
    /// Where the staged file is now (in the same directory as its path).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Renames the staged file over its path and fsyncs the directory (see
    /// [`write_atomically`]).
    ///
    /// # Errors
    /// [`FileError::Io`] if the rename fails (the staged file is removed, the path left as
    /// it was), or if the directory's fsync does (the new file in place).
    pub fn commit(self) -> FileResult<()> {
        let Staged {
            tmp,
            path,
            named,
            dir,
        } = self;
        tmp.persist(&path)
            .map_err(|e| FileError::io(&named, e.error))?;
        // The rename is durable only once the directory is.
        dir.sync_all().map_err(|e| FileError::io(&named, e))
    }
}

/// [`write_atomically`]'s first half: the file written and fsynced beside `path`
/// ([`Staged`]), with `path` untouched.
///
/// # Errors
/// As [`write_atomically`]; on error nothing is left behind.
pub fn stage(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> FileResult<Staged> {
    let named = path;
    let err = |e| FileError::io(named, e);
    let resolved = through_links(path).map_err(err)?;
    let dir = match resolved.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Opened first: the rename is durable only once the directory is fsynced, and a
    // directory that cannot be opened must refuse the write before the rename, not after.
    let dir_handle = open_dir(dir).map_err(err)?;
    let kept = std::fs::metadata(&resolved).ok().map(|m| m.permissions());
    let mut builder = tempfile::Builder::new();
    builder.prefix(".cowheap-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Created as any file is (the umask applies), unless it replaces one.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    if let Some(p) = kept {
        tmp.as_file().set_permissions(p).map_err(err)?;
    }
    // Unbuffered, so that writing allocates nothing: every caller hands over whole
    // buffers (one that writes small pieces brings its own `BufWriter`).
    write(tmp.as_file_mut()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    Ok(Staged {
        tmp,
        path: resolved,
        named: named.to_path_buf(),
        dir: dir_handle,
    })
}

/// Opens directory `dir`, to fsync it once a file is renamed into it. On Unix the open asks
/// for a directory (`O_DIRECTORY`) and does not block (`O_NONBLOCK`): a FIFO in the
/// directory's place is refused at once, where a plain open would wait for a writer.
fn open_dir(dir: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK);
    }
    options.open(dir)
}

/// The most symbolic links [`through_links`] follows, as Linux's own path walk.
const MAX_LINKS: usize = 40;

/// The path of the file `path` names through its symbolic links (each target taken relative
/// to its link's directory), whether or not that file exists: the path a rename must replace
/// so that every link stays, which [`write_atomically`] replaces or creates. `path` itself
/// if it is no link. Public so that a caller checks an output where the write will put it.
///
/// # Errors
/// An I/O error if a link cannot be read, or, past 40 links (a loop), one that
/// says so.
pub fn through_links(path: &Path) -> io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)?;
                // An absolute target replaces the whole path; a relative one is taken from
                // the link's directory.
                at = match at.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Opens the file at `path` to read, refusing anything but a regular file (through its
/// symbolic links): a directory, with an error of kind [`io::ErrorKind::IsADirectory`], and
/// a FIFO, a socket or a device, with one of kind [`io::ErrorKind::InvalidInput`]. Image
/// files and snapshots are regular files; a FIFO would hold the open until some writer
/// came, and a device such as `/dev/zero` claims no length and never ends. On Unix the
/// open does not block (`O_NONBLOCK`, which changes nothing for a regular file), so a FIFO
/// with no writer is refused at once. Time: O(1).
///
/// # Errors
/// [`FileError::Io`]: the system's error, or one of the two kinds above.
pub(crate) fn open_regular(path: &Path) -> FileResult<std::fs::File> {
    open_regular_file(path).map_err(|e| FileError::io(path, e))
}

/// The file at `path` opened to read if it is a regular file, the rule image files and
/// snapshots are opened by, with the system's error as it is: for readers that keep their
/// own error types. A directory is an error of kind [`io::ErrorKind::IsADirectory`]; a
/// FIFO, a socket or a device one of kind [`io::ErrorKind::InvalidInput`], refused at once
/// (on Unix the open does not block, so a FIFO with no writer does not hold it).
///
/// # Errors
/// The system's error, or one of the two kinds above.
pub fn open_regular_file(path: impl AsRef<Path>) -> io::Result<std::fs::File> {
    let path = path.as_ref();
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?;
    if kind.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory, not a file",
        ));
    }
    if !kind.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// The whole of the regular file at `path`: what `std::fs::read` answers, but a path that
/// names a directory, a FIFO, a socket or a device is refused at once ([`open_regular_file`]'s
/// rule, never waiting on a FIFO or reading a device without end), and the buffer is
/// reserved fallibly at the file's length. For readers of input files (a Squeak image, a
/// segment, a project, a store's own files) that keep their own error types.
///
/// ```
/// let dir = std::env::temp_dir();
/// let err = cowheap_heap::file::read_regular(&dir).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
/// ```
///
/// # Errors
/// The system's error; one of kind [`io::ErrorKind::IsADirectory`] or
/// [`io::ErrorKind::InvalidInput`] for a path that names no regular file; one of kind
/// [`io::ErrorKind::OutOfMemory`] if the allocator refuses the buffer.
pub fn read_regular(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    read_all(&mut open_regular_file(path)?)
}

/// The error for an open file that is no regular file.
fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (a FIFO, a socket or a device)",
    )
}

/// The whole of the file at `path`, its buffer reserved fallibly at the file's length (a
/// file that grows meanwhile grows it as `read_to_end` does). The path must name a regular
/// file ([`open_regular_file`]'s rule): a FIFO or a device is refused before anything is read.
///
/// # Errors
/// [`FileError::Io`] if the file cannot be read or is no regular file, or, of kind
/// [`io::ErrorKind::OutOfMemory`], if the allocator refuses the buffer.
pub fn read_file(path: &Path) -> FileResult<Vec<u8>> {
    read_regular(path).map_err(|e| FileError::io(path, e))
}

/// The rest of the open file `f`, its buffer reserved fallibly at the file's length (a
/// file that grows meanwhile grows it as `read_to_end` does): [`read_file`]'s reading, for
/// a caller that opened the file itself. Anything but a regular file is refused before a
/// byte is read: a pipe or a device has no length to bound the buffer by, and may never
/// end.
///
/// # Errors
/// The file's I/O errors, one of kind [`io::ErrorKind::InvalidInput`] if `f` is no regular
/// file, or one of kind [`io::ErrorKind::OutOfMemory`] if the allocator refuses the buffer.
pub fn read_all(f: &mut std::fs::File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("could not reserve {len} bytes to read the file"),
        )
    })?;
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A cursor over untrusted little-endian bytes: every read is bounds-checked and fails with
/// [`FileError::Truncated`] naming what was being read.
///
/// Raw layer, hidden from the documentation: the file codecs of `cowheap-heap` and
/// `cowheap-tenants` share it across crates. It is not part of the API and may change.
#[doc(hidden)]
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Byte position of `bytes` in the file, for error messages.
    base: u64,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, which start at byte `base` of the file.
    pub fn new(bytes: &'a [u8], base: u64) -> Reader<'a> {
        Reader { bytes, at: 0, base }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> FileResult<&'a [u8]> {
        match self
            .at
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.at..end))
        {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(FileError::Truncated {
                what,
                at: self.base + self.at as u64,
                need: n as u64,
                have: self.base + self.bytes.len() as u64,
            }),
        }
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> FileResult<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// The next little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> FileResult<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// The next little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> FileResult<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count of items of at least `min_size` bytes each, refused if the rest of the input
    /// could not hold that many: no allocation is ever sized by an absurd count.
    pub fn count(&mut self, min_size: usize, what: &'static str) -> FileResult<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_size.max(1)))
            .is_some_and(|need| need <= self.remaining());
        if fits {
            Ok(n as usize)
        } else {
            Err(FileError::Truncated {
                what,
                at: self.base + self.at as u64,
                need: n.saturating_mul(min_size.max(1) as u64),
                have: self.base + self.bytes.len() as u64,
            })
        }
    }
}

/// A root name too long for the roots encoding (its length is a u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a root name of {0} bytes is longer than the roots encoding holds (2^32 - 1)")]
pub struct RootNameTooLong(pub usize);

/// Appends named roots to `out` in the encoding image files (meta section) and tenant
/// snapshots share (`docs/FORMATS.md`): a u64 count, then per root a u32 name length, the
/// name's UTF-8 bytes and the value word as a u64, all little-endian. [`read_roots`] reads
/// it back. Time: O(total name length + roots).
///
/// # Errors
/// [`RootNameTooLong`] if a name's length does not fit a u32; `out` is then left as it was.
///
/// Raw layer, hidden from the documentation: the file codecs of `cowheap-heap` and
/// `cowheap-tenants` share it across crates. It is not part of the API and may change.
#[doc(hidden)]
pub fn write_roots<'a, I>(out: &mut Vec<u8>, roots: I) -> Result<(), RootNameTooLong>
where
    I: IntoIterator<Item = (&'a str, Word)>,
    I::IntoIter: ExactSizeIterator,
{
    let start = out.len();
    let roots = roots.into_iter();
    out.extend((roots.len() as u64).to_le_bytes());
    for (name, value) in roots {
        let Ok(len) = u32::try_from(name.len()) else {
            out.truncate(start);
            return Err(RootNameTooLong(name.len()));
        };
        out.extend(len.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(value.bits().to_le_bytes());
    }
    Ok(())
}

/// Reads roots written by [`write_roots`] from `r`, in file order. Errors name `part` (as
/// "meta section" or "roots"). The count is checked against what remains, and nothing is
/// reserved from it: memory grows with the roots actually read. Time: O(bytes read).
///
/// # Errors
/// [`FileError::Truncated`] if the input ends early or the count cannot fit in it;
/// [`FileError::Corrupt`] if a name is not UTF-8 or two roots share a name. The words are
/// not checked: what a root may refer to is the caller's rule.
///
/// Raw layer, hidden from the documentation: the file codecs of `cowheap-heap` and
/// `cowheap-tenants` share it across crates. It is not part of the API and may change.
#[doc(hidden)]
pub fn read_roots(r: &mut Reader<'_>, part: &'static str) -> FileResult<Vec<(String, Word)>> {
    // Each root takes at least 12 bytes: a name length and a value.
    let n = r.count(12, "roots")?;
    // Grown as roots are read, not reserved from the count: a root takes more memory than
    // its 12 bytes of file, and memory is spent only on roots that are really there.
    let mut roots = Vec::new();
    let mut names = HashSet::new();
    for _ in 0..n {
        let len = r.u32("root name length")?;
        let len = usize::try_from(len)
            .map_err(|_| FileError::corrupt(part, "a root name is too long"))?;
        let name = std::str::from_utf8(r.take(len, "root name")?)
            .map_err(|_| FileError::corrupt(part, "a root name is not UTF-8"))?;
        let value = Word::from_bits(r.u64("root value")?);
        if !names.insert(name) {
            return Err(FileError::corrupt(part, "two roots share a name"));
        }
        roots.push((name.to_owned(), value));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_reads_and_counts_past_the_end() {
        let bytes = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut r = Reader::new(&bytes, 100);
        assert_eq!(r.u32("a").unwrap(), 1);
        assert!(matches!(
            r.count(8, "items"),
            Err(FileError::Truncated { what: "items", .. })
        ));
        let mut r = Reader::new(&bytes, 0);
        assert!(matches!(
            r.take(usize::MAX, "all"),
            Err(FileError::Truncated { .. })
        ));
    }

    #[test]
    fn roots_round_trip_and_bad_roots_are_refused() {
        let roots = [("a", Word::from_bits(8)), ("bé", Word::from_bits(3))];
        let mut out = vec![0xAA];
        write_roots(&mut out, roots).unwrap();
        let mut r = Reader::new(&out[1..], 1);
        let back = read_roots(&mut r, "roots").unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            back,
            [
                ("a".to_owned(), Word::from_bits(8)),
                ("bé".to_owned(), Word::from_bits(3))
            ]
        );

        let mut twice = Vec::new();
        write_roots(
            &mut twice,
            [("a", Word::from_bits(8)), ("a", Word::from_bits(8))],
        )
        .unwrap();
        assert!(matches!(
            read_roots(&mut Reader::new(&twice, 0), "roots"),
            Err(FileError::Corrupt {
                problem: "two roots share a name",
                ..
            })
        ));
        let mut bad = Vec::new();
        write_roots(&mut bad, [("\u{1}", Word::from_bits(8))]).unwrap();
        bad[12] = 0xFF;
        assert!(matches!(
            read_roots(&mut Reader::new(&bad, 0), "meta section"),
            Err(FileError::Corrupt { .. })
        ));
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend([0; 12]);
        assert!(matches!(
            read_roots(&mut Reader::new(&huge, 0), "roots"),
            Err(FileError::Truncated { .. })
        ));
    }

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_them_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomically(&p, |w| w.write_all(b"one")).unwrap();
        write_atomically(&p, |w| w.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let failed = write_atomically(&p, |w| {
            w.write_all(b"thr")?;
            Err(io::Error::other("stop"))
        });
        assert!(matches!(failed, Err(FileError::Io { .. })));
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}

#[cfg(all(test, unix))]
mod permissions {
    use super::write_atomically;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A new file gets the permissions any file the process creates gets (not a temporary
    /// file's 0600); a replaced one keeps its own; a symbolic link stays, and the file it
    /// names is replaced.
    #[test]
    fn a_written_file_has_the_permissions_a_file_would_have() {
        let d = tempfile::tempdir().unwrap();
        let (new, plain) = (d.path().join("new"), d.path().join("plain"));
        std::fs::File::create(&plain).unwrap();
        write_atomically(&new, |w| w.write_all(b"new")).unwrap();
        assert_eq!(mode(&new), mode(&plain), "as File::create makes it");
        let old = d.path().join("old");
        std::fs::write(&old, b"old").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&old, |w| w.write_all(b"again")).unwrap();
        assert_eq!(
            (mode(&old), std::fs::read(&old).unwrap()),
            (0o640, b"again".to_vec())
        );
        let (target, link) = (d.path().join("target"), d.path().join("link"));
        std::fs::write(&target, b"old").unwrap();
        symlink(&target, &link).unwrap();
        write_atomically(&link, |w| w.write_all(b"through")).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"through");
    }
}
