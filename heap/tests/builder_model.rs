//! The builder against a model: a plain list of objects, roots and classes that applies
//! each call as the builder's documentation says.
//!
//! Properties, after any sequence of calls (`Action`):
//! - each call succeeds exactly when the model says it may, and a refused call changes
//!   nothing (the model is not changed either, and the two stay equal);
//! - `freeze` succeeds exactly when the model's objects, roots and classes hold only words a
//!   base may hold (no dangling or private reference, no invalid word, classes that are
//!   objects, nil present, a hash width root from 1 to 22);
//! - a frozen heap serves every object, root and class as the model holds them;
//! - a heap `freeze` accepts is one full verification accepts: saved and opened verified,
//!   it serves the same objects under the same fingerprint.

use cowheap_heap::{
    BaseHeap, Builder, Format, HASH_BITS_ROOT, ObjectIndex, PrivateKey, Verification, Word,
};
use proptest::prelude::*;

/// A word to hand the builder, drawn relative to the objects added so far.
#[derive(Clone, Debug)]
enum W {
    /// Object `k` modulo (objects + 2): sometimes one not (yet) added.
    Object(usize),
    Int(i64),
    Char(u32),
    /// A character tag with a bit above its code point: an opaque immediate.
    WideChar,
    Float(u64),
    Private(u32),
    /// A base tag with a bit above its index: no word at all.
    Invalid,
}

fn word_strategy() -> impl Strategy<Value = W> {
    prop_oneof![
        6 => (0usize..64).prop_map(W::Object),
        2 => (Word::MIN_INT..=Word::MAX_INT).prop_map(W::Int),
        1 => any::<u32>().prop_map(W::Char),
        1 => Just(W::WideChar),
        1 => (0u64..1 << 61).prop_map(W::Float),
        1 => any::<u32>().prop_map(W::Private),
        1 => Just(W::Invalid),
    ]
}

#[derive(Clone, Debug)]
enum Action {
    AddNil,
    Add {
        class: W,
        format: usize,
        slots: Vec<W>,
        bytes: usize,
    },
    SetNil(W),
    SetClass(W, W),
    SetSlot(W, usize, W),
    SetHash(W, u32),
    SetAux(W, u32),
    AddRoot(usize, W),
    HashBitsRoot(i64),
    ImmediateClasses(Option<W>, Option<W>),
    FloatClass(Option<W>),
}

fn action_strategy() -> impl Strategy<Value = Action> {
    let w = word_strategy;
    prop_oneof![
        1 => Just(Action::AddNil),
        8 => (w(), 0usize..8, prop::collection::vec(w(), 0..5), 0usize..20).prop_map(
            |(class, format, slots, bytes)| Action::Add { class, format, slots, bytes }
        ),
        1 => w().prop_map(Action::SetNil),
        2 => (w(), w()).prop_map(|(o, c)| Action::SetClass(o, c)),
        3 => (w(), 0usize..6, w()).prop_map(|(o, i, v)| Action::SetSlot(o, i, v)),
        1 => (w(), any::<u32>()).prop_map(|(o, h)| Action::SetHash(o, h)),
        1 => (w(), 0u32..1 << 25).prop_map(|(o, a)| Action::SetAux(o, a)),
        2 => (0usize..6, w()).prop_map(|(n, v)| Action::AddRoot(n, v)),
        1 => prop_oneof![4 => 1i64..=22, 1 => -2i64..30].prop_map(Action::HashBitsRoot),
        1 => (prop::option::of(w()), prop::option::of(w()))
            .prop_map(|(i, c)| Action::ImmediateClasses(i, c)),
        1 => prop::option::of(w()).prop_map(Action::FloatClass),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct Obj {
    class: Word,
    format: Format,
    hash: u32,
    aux: u32,
    slots: Vec<Word>,
    bytes: Vec<u8>,
}

/// What the builder should hold.
#[derive(Default)]
struct Model {
    /// Words drawn as valid ones only (any object added so far, any immediate), so that
    /// most runs freeze; else any word, dangling, private or invalid ones included.
    clean: bool,
    objects: Vec<Obj>,
    roots: Vec<(String, Word)>,
    nil: Option<usize>,
    int_class: Option<Word>,
    char_class: Option<Word>,
    float_class: Option<Word>,
}

impl Model {
    fn word(&self, w: &W) -> Word {
        let n = self.objects.len();
        match *w {
            W::Object(k) if self.clean => Word::base(ObjectIndex::from_u32((k % n.max(1)) as u32)),
            W::Private(_) | W::Invalid if self.clean => Word::int(0).unwrap(),
            W::Object(k) => Word::base(ObjectIndex::from_u32((k % (n + 2)) as u32)),
            W::Int(i) => Word::int(i).unwrap(),
            W::Char(c) => Word::char_code(c),
            W::WideChar => Word::from_bits(1 << 40 | 0b010),
            W::Float(p) => Word::small_float_bits(p).unwrap(),
            W::Private(k) => Word::private(PrivateKey::new(k, 3)),
            W::Invalid => Word::from_bits(5 << 3 | 1 << 50),
        }
    }

    /// A word for a class: in a clean run always an object.
    fn class_word(&self, w: &W) -> Word {
        match *w {
            W::Object(_) => self.word(w),
            _ if self.clean => self.word(&W::Object(0)),
            _ => self.word(w),
        }
    }

    /// The object a word names, if it was added.
    fn target(&self, w: Word) -> Option<usize> {
        w.as_base()
            .map(|x| x.get())
            .filter(|&x| x < self.objects.len())
    }

    fn names_object(&self, w: Word) -> bool {
        self.target(w).is_some()
    }

    /// A word an object's slot (or a root) may hold in a base.
    fn may_hold(&self, w: Word) -> bool {
        self.names_object(w) || w.is_immediate()
    }

    fn freezes(&self) -> bool {
        let hash_bits_ok = self
            .roots
            .iter()
            .all(|(n, v)| n != HASH_BITS_ROOT || v.as_int().is_some_and(|b| (1..=22).contains(&b)));
        self.nil.is_some()
            && hash_bits_ok
            && self
                .objects
                .iter()
                .all(|o| self.names_object(o.class) && o.slots.iter().all(|&w| self.may_hold(w)))
            && self.roots.iter().all(|&(_, v)| self.may_hold(v))
            && [self.int_class, self.char_class, self.float_class]
                .into_iter()
                .flatten()
                .all(|c| self.names_object(c))
    }

    fn check(&self, heap: &BaseHeap) {
        assert_eq!(heap.len(), self.objects.len());
        assert_eq!(heap.nil().as_base().map(|x| x.get()), self.nil);
        for (i, want) in self.objects.iter().enumerate() {
            let o = heap.object(ObjectIndex::from_u32(i as u32)).unwrap();
            let got = Obj {
                class: o.class,
                format: o.format,
                hash: o.hash,
                aux: o.aux,
                slots: o.slots.to_vec(),
                bytes: o.bytes.to_vec(),
            };
            assert_eq!(&got, want, "object {i}");
        }
        let roots: Vec<(String, Word)> = heap
            .roots()
            .iter()
            .map(|r| (r.name.clone(), r.value))
            .collect();
        assert_eq!(roots, self.roots);
        assert_eq!(heap.int_class().map(|v| v.word()), self.int_class);
        assert_eq!(heap.char_class().map(|v| v.word()), self.char_class);
        assert_eq!(heap.float_class().map(|v| v.word()), self.float_class);
        let bits = self
            .roots
            .iter()
            .find(|(n, _)| n == HASH_BITS_ROOT)
            .and_then(|(_, v)| v.as_int());
        assert_eq!(i64::from(heap.hash_bits()), bits.unwrap_or(22));
    }
}

fn run(actions: &[Action], clean: bool) {
    let mut b = Builder::new();
    let mut m = Model {
        clean,
        ..Model::default()
    };
    for a in actions {
        match a {
            Action::AddNil => {
                let w = b.add_nil();
                m.nil = Some(m.objects.len());
                assert_eq!(w.as_base().map(|x| x.get()), m.nil);
                // The default hash is the builder's: checked and taken after `freeze`.
                m.objects.push(Obj {
                    class: w,
                    format: Format::Pointers,
                    hash: u32::MAX,
                    aux: 0,
                    slots: vec![],
                    bytes: vec![],
                });
            }
            Action::Add {
                class,
                format,
                slots,
                bytes,
            } => {
                let format = Format::ALL[*format];
                let class = m.class_word(class);
                let mut slots: Vec<Word> = slots.iter().map(|w| m.word(w)).collect();
                let mut n_bytes = *bytes;
                // A clean run makes what the format may hold; a noisy one anything.
                if m.clean {
                    if !format.has_slots() {
                        slots.clear();
                    }
                    n_bytes = if format.has_bytes() {
                        n_bytes / format.unit() * format.unit()
                    } else {
                        0
                    };
                }
                let bytes: Vec<u8> = (0..n_bytes as u8).map(|k| k.wrapping_mul(37) | 1).collect();
                let fits = format.fits(cowheap_heap::ObjectSize {
                    slots: slots.len(),
                    bytes: bytes.len(),
                });
                let r = b.add(class, format, slots.clone(), bytes.clone());
                assert_eq!(
                    r.is_ok(),
                    fits,
                    "{format:?} {} {}",
                    slots.len(),
                    bytes.len()
                );
                if let Ok(w) = r {
                    assert_eq!(w.as_base().map(|x| x.get()), Some(m.objects.len()));
                    m.objects.push(Obj {
                        class,
                        format,
                        hash: u32::MAX,
                        aux: 0,
                        slots,
                        bytes,
                    });
                }
            }
            Action::SetNil(o) => {
                let o = m.word(o);
                let r = b.set_nil(o);
                assert_eq!(r.is_ok(), m.names_object(o));
                if r.is_ok() {
                    m.nil = m.target(o);
                }
            }
            Action::SetClass(o, c) => {
                let (o, c) = (m.word(o), m.class_word(c));
                let r = b.set_class(o, c);
                assert_eq!(r.is_ok(), m.names_object(o));
                if let Some(x) = m.target(o) {
                    m.objects[x].class = c;
                }
            }
            Action::SetSlot(o, i, v) => {
                let (o, v) = (m.word(o), m.word(v));
                let r = b.set_slot(o, *i, v);
                let ok = m.target(o).is_some_and(|x| *i < m.objects[x].slots.len());
                assert_eq!(r.is_ok(), ok);
                if let (true, Some(x)) = (ok, m.target(o)) {
                    m.objects[x].slots[*i] = v;
                }
            }
            Action::SetHash(o, h) => {
                let o = m.word(o);
                let r = b.set_hash(o, *h);
                assert_eq!(r.is_ok(), m.names_object(o));
                if let Some(x) = m.target(o) {
                    m.objects[x].hash = *h;
                }
            }
            Action::SetAux(o, a) => {
                let o = m.word(o);
                let r = b.set_aux(o, *a);
                let ok = m.names_object(o) && *a < 1 << 24;
                assert_eq!(r.is_ok(), ok);
                if let (true, Some(x)) = (ok, m.target(o)) {
                    m.objects[x].aux = *a;
                }
            }
            Action::AddRoot(n, v) => {
                let (name, v) = (format!("r{n}"), m.word(v));
                let fresh = m.roots.iter().all(|(r, _)| *r != name);
                assert_eq!(b.add_root(&name, v).is_ok(), fresh);
                if fresh {
                    m.roots.push((name, v));
                }
            }
            Action::HashBitsRoot(bits) => {
                let v = Word::int(*bits).unwrap();
                let fresh = m.roots.iter().all(|(r, _)| r != HASH_BITS_ROOT);
                assert_eq!(b.add_root(HASH_BITS_ROOT, v).is_ok(), fresh);
                if fresh {
                    m.roots.push((HASH_BITS_ROOT.to_owned(), v));
                }
            }
            Action::ImmediateClasses(i, c) => {
                m.int_class = i.as_ref().map(|w| m.class_word(w));
                m.char_class = c.as_ref().map(|w| m.class_word(w));
                b.set_immediate_classes(m.int_class, m.char_class);
            }
            Action::FloatClass(f) => {
                m.float_class = f.as_ref().map(|w| m.class_word(w));
                b.set_float_class(m.float_class);
            }
        }
        assert_eq!(b.len(), m.objects.len());
    }
    let frozen = b.freeze();
    assert_eq!(
        frozen.is_ok(),
        m.freezes(),
        "freeze answered {:?}",
        frozen.as_ref().err()
    );
    let Ok(heap) = frozen else { return };
    // Hashes the model left to the builder: its default, whatever it is, but 22 bits wide.
    for (i, o) in m.objects.iter_mut().enumerate() {
        if o.hash == u32::MAX {
            let h = heap.hash(ObjectIndex::from_u32(i as u32)).unwrap();
            assert!(h < 1 << 22, "default hash {h:#x} wider than 22 bits");
            o.hash = h;
        }
    }
    m.check(&heap);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.cowheap");
    heap.save(&path).unwrap();
    let mapped = BaseHeap::open_with(&path, Verification::Full)
        .unwrap_or_else(|e| panic!("a heap the builder froze fails verification: {e}"));
    assert_eq!(mapped.fingerprint(), heap.fingerprint());
    m.check(&mapped);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/proptest-regressions/builder_model.txt",
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_builder_does_what_its_model_does(
        actions in prop::collection::vec(action_strategy(), 0..40),
        clean in prop::bool::weighted(0.75),
    ) {
        run(&actions, clean);
    }
}

/// A word that is no word (a base tag with a bit above its index) is refused as such by the
/// builder's calls and the base heap's reads, as a tenant refuses it, not named an immediate.
#[test]
fn an_invalid_word_used_as_an_object_is_refused_as_invalid() {
    let invalid = Word::from_bits(1 << 40);
    assert!(!invalid.is_valid());
    let mut b = Builder::new();
    let nil = b.add_nil();
    let want = cowheap_heap::Error::InvalidWord(invalid);
    assert_eq!(b.set_class(invalid, nil), Err(want.clone()));
    assert_eq!(b.set_slot(invalid, 0, nil), Err(want.clone()));
    assert_eq!(b.set_hash(invalid, 1), Err(want.clone()));
    assert_eq!(b.set_nil(invalid), Err(want.clone()));
    let heap = b.freeze().unwrap();
    let v = cowheap_heap::Value::shared(invalid);
    assert_eq!(heap.index_of(v).unwrap_err(), want);
    assert_eq!(heap.slot(v, 0).unwrap_err(), want);
    // An immediate is still named one.
    let three = Word::int(3).unwrap();
    assert_eq!(
        heap.slot(cowheap_heap::Value::shared(three), 0)
            .unwrap_err(),
        cowheap_heap::Error::NotAnObject(three)
    );
}

/// What `freeze` answers for a root or an immediate's class that names no object: the
/// word and why, not a reference from nil (which refers to nothing) nor a corrupt heap
/// (nothing was read from storage).
#[test]
fn a_root_or_an_immediate_class_that_names_no_object_is_refused_for_what_it_is() {
    use cowheap_heap::Error;
    let far = Word::base(ObjectIndex::from_u32(9));
    let three = Word::int(3).unwrap();
    let frozen = |root: Option<Word>, int_class: Option<Word>| {
        let mut b = Builder::new();
        let nil = b.add_nil();
        b.add(nil, Format::Pointers, vec![nil], vec![]).unwrap();
        if let Some(w) = root {
            b.add_root("r", w).unwrap();
        }
        b.set_immediate_classes(int_class, None);
        b.freeze().map(|_| ())
    };
    let no_such = Error::NoSuchObject { index: 9, len: 2 };
    assert_eq!(frozen(Some(far), None), Err(no_such.clone()));
    assert_eq!(frozen(None, Some(far)), Err(no_such));
    assert_eq!(frozen(None, Some(three)), Err(Error::NotAnObject(three)));
    assert_eq!(
        frozen(Some(three), None),
        Ok(()),
        "a root may be an immediate"
    );
}
