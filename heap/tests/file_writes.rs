//! Image files and atomic writes at the edges of the file system: a symbolic link written
//! through names the file replaced, the link itself staying.

#[cfg(unix)]
#[test]
fn a_dangling_symbolic_link_is_written_through_and_stays() {
    use cowheap_heap::file::write_atomically;
    let d = tempfile::tempdir().unwrap();
    let (target, link) = (d.path().join("target"), d.path().join("link"));
    // The link names a file that does not exist yet (relative, as `ln -s target link`).
    std::os::unix::fs::symlink("target", &link).unwrap();
    write_atomically(&link, |w| w.write_all(b"through")).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"through");
}

/// A chain of links across directories is followed to the file it ends at, each target
/// taken from its own link's directory; a loop of links is an error that leaves them as
/// they were.
#[cfg(unix)]
#[test]
fn a_chain_of_links_is_followed_and_a_loop_refused() {
    use cowheap_heap::file::{FileError, write_atomically};
    use std::os::unix::fs::symlink;
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // first -> sub/second -> (in sub) ../file, which does not exist yet.
    symlink("sub/second", d.path().join("first")).unwrap();
    symlink("../file", sub.join("second")).unwrap();
    write_atomically(&d.path().join("first"), |w| w.write_all(b"end")).unwrap();
    assert_eq!(std::fs::read(d.path().join("file")).unwrap(), b"end");
    for link in [d.path().join("first"), sub.join("second")] {
        let kind = std::fs::symlink_metadata(&link).unwrap().file_type();
        assert!(kind.is_symlink(), "{link:?} stays a link");
    }

    let (a, b) = (d.path().join("a"), d.path().join("b"));
    symlink("b", &a).unwrap();
    symlink("a", &b).unwrap();
    let looped = write_atomically(&a, |w| w.write_all(b"never"));
    assert!(matches!(looped, Err(FileError::Io { .. })), "{looped:?}");
    assert!(
        std::fs::symlink_metadata(&a)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        5,
        "no temporary left"
    );
}
