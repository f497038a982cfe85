//! Base versions: a committed version is a layer of changed and new objects over its parent.
//!
//! A root [`Base`](crate::Base) is a frozen heap. A commit makes a new version of it without
//! touching the heap: a layer holding the bodies of the base objects the commit changed
//! and of the objects it added (at indices from the parent's length up), pointing at its
//! parent's layer. The versions of one root share its heap and its marks; a base object some
//! version changed carries the [`DivertMarks::COMMITTED`](crate::DivertMarks::COMMITTED) bit
//! in the shared marks, so the read path's one mark test sends it (and only it) to the
//! out-of-line path, which looks in the layers visible from the reader's version, newest
//! first, and falls back to the heap. A base object no version changed keeps the fast path in
//! every version.
//!
//! Making a version costs O(changed and new objects), never O(base). Reading an object a
//! version changed costs one hash lookup per layer between the reader's version and the one
//! that changed it, so a long chain is flattened from time to time
//! ([`Base::flatten`](crate::Base::flatten)) into a heap of its own.

use cowheap_heap::{Format, ObjectSize, ObjectView, Word};

/// The body of an object as a version committed it: in the base's own terms (base references
/// and immediates only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The object's class (a base reference).
    pub class: Word,
    /// The object's format.
    pub format: Format,
    /// Its identity hash, kept from the object it was.
    pub hash: u32,
    /// The auxiliary bits (see `cowheap_heap::Builder::set_aux`).
    pub aux: u32,
    /// Pointer slots: base references and immediates.
    pub slots: Box<[Word]>,
    /// Raw bytes.
    pub bytes: Box<[u8]>,
}

impl Committed {
    /// A body with the contents of `view` (say, an object of an older version).
    pub fn from_view(view: &ObjectView<'_>) -> Committed {
        Committed {
            class: view.class,
            format: view.format,
            hash: view.hash,
            aux: view.aux,
            slots: view.slots.into(),
            bytes: view.bytes.into(),
        }
    }

    /// The body as a view, as the heap gives its own objects.
    pub fn view(&self) -> ObjectView<'_> {
        ObjectView {
            class: self.class,
            format: self.format,
            hash: self.hash,
            aux: self.aux,
            slots: &self.slots,
            bytes: &self.bytes,
        }
    }

    /// The object's size.
    pub fn size(&self) -> ObjectSize {
        ObjectSize {
            slots: self.slots.len(),
            bytes: self.bytes.len(),
        }
    }

    /// Bytes of memory the body holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Committed>() + self.slots.len() * 8 + self.bytes.len()
    }
}
