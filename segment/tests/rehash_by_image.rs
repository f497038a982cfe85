//! The hashed collections a segment import could not rehash by its model of `hash`
//! ([`rehash::Reason`]), rehashed by the image's own `rehash` run by the interpreter
//! ([`Vm::rehash_by_image`]), and then asked by the image's own lookups.
//!
//! - An equality `Set` of Arrays and Intervals, built by `mini.image`'s code, exported
//!   portably and imported into a Scratch tenant: Scratch's `SequenceableCollection>>hash`
//!   (a temporary, a jump) and `Interval>>hash` (`self size`) are outside the model, so the
//!   Set is reported; an Array's hash differs between the two images (Scratch adds the
//!   size), so Scratch's `includes:` misses elements; after the image's `rehash` it finds
//!   every element and an equal copy of each.
//! - Scratch's `PluggableSet` and `PluggableDictionary` (their own `scanFor:`, reported),
//!   their elements moved off their places: rehashed by the image, then found by
//!   `includes:`, `includesKey:` and `at:`. One whose `hashBlock` is not the default is
//!   rehashed by the image as the image does it (by `hash`, its `rehash` being `Set`'s,
//!   whose `species new:` has the default blocks), and its lookups then miss: the image's
//!   own behaviour, kept.
//! - Failures: an element whose `hash` raises (`ImageError`), a receiver that does not
//!   understand `rehash`, a budget of 10 bytecodes: each a typed error for its collection,
//!   the other collections rehashed, the failed collections left as they were, no run left
//!   suspended, and the tenant then answers `3 + 4`.
//! - The Etoys projects into `mini.image` (and CarAndPen into Scratch): every collection
//!   the model leaves is a table
//!   holding a nil key twice, which the image's `rehash` would collapse (measured: sent
//!   anyway, it answers and keeps one nil-keyed Association per table), so none is left for
//!   the image.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_segment::bind::{self, BaseNames};
use cowheap_segment::rehash::{self, Reason};
use cowheap_segment::{Project, file, tenant};
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm, VmError};
use std::sync::{Arc, OnceLock};

const BUDGET: u64 = 10_000_000;

struct Image {
    base: Arc<Base>,
    names: BaseNames,
    symbols: Symbols,
}

fn load(name: &str) -> Image {
    let base = Base::new(cowheap_squeak::import(image(name)).unwrap().heap);
    let names = BaseNames::of(base.heap()).unwrap();
    let symbols = Symbols::from_base(base.heap());
    Image {
        base,
        names,
        symbols,
    }
}

fn mini() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| load("mini.image"))
}

fn scratch() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| load("Scratch-1.4.0.6.image"))
}

/// A tenant of `img` with an interpreter.
struct Run {
    t: Tenant,
    vm: Vm,
    img: &'static Image,
}

impl Run {
    fn new(img: &'static Image) -> Run {
        let t = Tenant::fork(&img.base);
        let vm = Vm::new(&t).unwrap();
        Run { t, vm, img }
    }

    fn eval(&mut self, src: &str) -> Value {
        self.vm
            .evaluate(&mut self.t, &self.img.symbols, src, BUDGET)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn send(&mut self, r: Value, sel: &str, args: &[Value]) -> Value {
        self.vm
            .send_named(&mut self.t, &self.img.symbols, r, sel, args, BUDGET)
            .unwrap_or_else(|e| panic!("#{sel}: {e}"))
    }

    fn is_true(&self, v: Value) -> bool {
        let (t, f) = (self.vm.specials().true_, self.vm.specials().false_);
        assert!(
            self.t.identical(v, t).unwrap() || self.t.identical(v, f).unwrap(),
            "a Boolean"
        );
        self.t.identical(v, t).unwrap()
    }

    /// The non-nil slots of a collection's `array` (slot 1).
    fn elements(&self, c: Value) -> Vec<Value> {
        let nil = self.img.base.heap().nil();
        let array = self.t.slot(c, 1).unwrap();
        (0..self.t.size(array).unwrap().slots)
            .map(|i| self.t.slot(array, i).unwrap())
            .filter(|e| !e.same_word(nil))
            .collect()
    }

    /// How many of `probes` the image's `sel` (`includes:`, `includesKey:`) answers true
    /// for, asked of the collection pinned in `c`.
    fn found(&mut self, c: cowheap_tenants::Handle, sel: &str, probes: &[Value]) -> usize {
        let mut n = 0;
        for &p in probes {
            let coll = self.t.pinned(c).unwrap();
            let yes = self.send(coll, sel, &[p]);
            n += usize::from(self.is_true(yes));
        }
        n
    }

    /// Puts the elements of a collection's `array` in other places: packed from the last
    /// slot down, in the reverse of their order (not where the image's `scanFor:` put them).
    fn scramble(&mut self, c: Value) {
        let nil = self.img.base.heap().nil();
        let array = self.t.slot(c, 1).unwrap();
        let n = self.t.size(array).unwrap().slots;
        let elems = self.elements(c);
        for i in 0..n {
            self.t.set_slot(array, i, nil).unwrap();
        }
        for (k, &e) in elems.iter().enumerate() {
            self.t.set_slot(array, n - 1 - k, e).unwrap();
        }
    }
}

/// Test 1: a Set of Arrays and Intervals made by `mini.image`, moved into Scratch.
#[test]
fn a_set_moved_from_mini_into_scratch_is_rehashed_by_scratchs_code() {
    let mut a = Run::new(mini());
    let set = a.eval(
        "| s | s _ Set new. 1 to: 12 do: [:i | s add: (Array with: i with: i * 7 with: i + 100). s add: (i to: i + 5)]. s",
    );
    assert_eq!(a.elements(set).len(), 24);
    let mut seg = tenant::extract(&a.t, &[set], &[]).unwrap();
    seg.make_portable(mini().base.heap()).unwrap();
    let bytes = file::to_bytes(&seg).unwrap();
    let mut back = file::from_bytes(&bytes, Some(scratch().base.fingerprint())).unwrap();
    let mut b = Run::new(scratch());
    let imported = back.import_into(&mut b.t, &[], false).unwrap();
    let r = &imported.rehash;
    eprintln!("{r}");
    // The model cannot run Scratch's `SequenceableCollection>>hash` or `Interval>>hash`.
    assert_eq!(r.collections, 1, "{r}");
    assert!(r.rehashed.is_empty(), "{r}");
    assert_eq!(r.not_rehashed.len(), 1, "{r}");
    assert!(
        matches!(r.not_rehashed[0].why, Reason::Hash(_)),
        "{}",
        r.not_rehashed[0].why
    );
    let left = imported.left_for_image();
    assert_eq!(left.len(), 1);
    let set = imported.roots[0];
    assert!(b.t.identical(left[0], set).unwrap());
    let elems = b.elements(set);
    assert_eq!(elems.len(), 24);
    let h = b.t.pin(set).unwrap();
    let pinned: Vec<_> = elems.iter().map(|&e| b.t.pin(e).unwrap()).collect();
    let probes: Vec<Value> = pinned.iter().map(|&p| b.t.pinned(p).unwrap()).collect();
    // Before: placed by mini's hashes, some elements are not found by Scratch's own lookup.
    let before = b.found(h, "includes:", &probes);
    eprintln!("found by Scratch's includes: before the image's rehash: {before} of 24");
    // (Deterministic: the elements' hashes are computed from SmallIntegers.)
    assert_eq!(before, 12, "{before} of 24 found before");
    let set = b.t.pinned(h).unwrap();
    let done =
        b.vm.rehash_by_image(&mut b.t, &scratch().symbols, &[set], BUDGET)
            .unwrap();
    eprintln!("{done}");
    assert_eq!(done.rehashed, vec![0], "{done}");
    assert!(done.failed.is_empty(), "{done}");
    assert!(done.bytecodes > 0);
    assert!(!b.vm.is_suspended(&b.t));
    assert!(b.t.root(cowheap_vm::REHASH_ROOT).is_none());
    // After: every element, and an equal copy of each made in Scratch, is found.
    let probes: Vec<Value> = pinned.iter().map(|&p| b.t.pinned(p).unwrap()).collect();
    assert_eq!(b.found(h, "includes:", &probes), 24);
    let copies = b.eval(
        "| c | c _ OrderedCollection new. 1 to: 12 do: [:i | c add: (Array with: i with: i * 7 with: i + 100); add: (i to: i + 5)]. c asArray",
    );
    let copies = b.t.pin(copies).unwrap();
    let copy_values: Vec<Value> = (0..24)
        .map(|i| {
            let c = b.t.pinned(copies).unwrap();
            b.t.slot(c, i).unwrap()
        })
        .collect();
    assert_eq!(b.found(h, "includes:", &copy_values), 24);
    let set = b.t.pinned(h).unwrap();
    assert_eq!(b.send(set, "size", &[]).as_int(), Some(24));
    assert_eq!(b.elements(set).len(), 24);
    // Something absent is still absent.
    let absent = b.eval("Array with: 1 with: 2 with: 3");
    assert_eq!(b.found(h, "includes:", &[absent]), 0);
}

/// Test 2: Scratch's PluggableSet and PluggableDictionary, reported for their own
/// `scanFor:`, rehashed by the image's code.
#[test]
fn pluggable_collections_are_rehashed_by_scratchs_code() {
    let img = scratch();
    let mut b = Run::new(img);
    let set = b.eval(
        "| s | s _ PluggableSet new. 1 to: 10 do: [:i | s add: (Array with: i with: i + 1)]. s",
    );
    let set = b.t.pin(set).unwrap();
    let dict = b.eval(
        "| d | d _ PluggableDictionary new. 1 to: 10 do: [:i | d at: (Array with: i with: i + 1) put: i]. d",
    );
    let dict = b.t.pin(dict).unwrap();
    // Hashing by a block of its own (the first element).
    let custom = b.eval(
        "| s | s _ PluggableSet new. s hashBlock: [:a | a first]. 1 to: 10 do: [:i | s add: (Array with: i * 3 with: i)]. s",
    );
    let custom = b.t.pin(custom).unwrap();
    let all = |b: &mut Run| -> [Value; 3] { [set, dict, custom].map(|h| b.t.pinned(h).unwrap()) };
    let [s, d, c] = all(&mut b);
    let set_elems = b.elements(s);
    let keys: Vec<Value> = b
        .elements(d)
        .iter()
        .map(|&a| b.t.slot(a, 0).unwrap())
        .collect();
    let custom_elems = b.elements(c);
    assert_eq!(
        (set_elems.len(), keys.len(), custom_elems.len()),
        (10, 10, 10)
    );
    // As the image made them, everything is found.
    assert_eq!(b.found(set, "includes:", &set_elems), 10);
    assert_eq!(b.found(dict, "includesKey:", &keys), 10);
    assert_eq!(b.found(custom, "includes:", &custom_elems), 10);
    for v in [s, d, c] {
        b.scramble(v);
    }
    let r = rehash::rehash(&mut b.t, &img.names, &[s, d, c]).unwrap();
    eprintln!("{r}");
    assert_eq!(r.collections, 3);
    assert_eq!(r.not_rehashed.len(), 3, "{r}");
    for (n, class) in
        r.not_rehashed
            .iter()
            .zip(["PluggableSet", "PluggableDictionary", "PluggableSet"])
    {
        assert_eq!(
            n.why,
            Reason::OwnScanFor {
                class: class.into()
            }
        );
    }
    assert_eq!(r.left_for_image(), vec![0, 1, 2]);
    let before = (
        b.found(set, "includes:", &set_elems),
        b.found(dict, "includesKey:", &keys),
        b.found(custom, "includes:", &custom_elems),
    );
    eprintln!("found before the image's rehash: {before:?} of 10 each");
    assert_eq!(before, (2, 2, 1));
    let cs = all(&mut b);
    let done =
        b.vm.rehash_by_image(&mut b.t, &img.symbols, &cs, BUDGET)
            .unwrap();
    eprintln!("{done}");
    assert_eq!(done.rehashed, vec![0, 1, 2], "{done}");
    assert_eq!(b.found(set, "includes:", &set_elems), 10);
    assert_eq!(b.found(dict, "includesKey:", &keys), 10);
    for (i, &k) in keys.iter().enumerate() {
        let d = b.t.pinned(dict).unwrap();
        let v = b.send(d, "at:", &[k]);
        // The value stored with the key: its first element (`i`).
        assert_eq!(v.as_int(), b.t.slot(k, 0).unwrap().as_int(), "key {i}");
    }
    // The image's `rehash` of a PluggableSet is `Set>>rehash`: the new table comes from
    // `self species new:`, whose `init:` installs the default hash block, so the elements
    // are placed by `hash` while the set still probes by its own block. Its lookups then
    // miss, as they would in Scratch itself.
    let after_custom = b.found(custom, "includes:", &custom_elems);
    eprintln!("custom hash block, found after the image's rehash: {after_custom} of 10");
    assert_eq!(after_custom, 0);
    let c = b.t.pinned(custom).unwrap();
    assert_eq!(b.elements(c).len(), 10, "no element lost");
}

/// Test 3: rehashes that fail in the image are typed errors of their collections; the others
/// are rehashed, the failed ones left as they were, and the tenant goes on.
#[test]
fn a_failing_rehash_is_a_typed_error_and_the_tenant_goes_on() {
    let img = scratch();
    let mut b = Run::new(img);
    let good =
        b.eval("| s | s _ Set new. 1 to: 8 do: [:i | s add: (Array with: i with: i * i)]. s");
    let good = b.t.pin(good).unwrap();
    let bad = b.eval(
        "| s | s _ Set new. s add: (Fraction numerator: 3 denominator: 4); add: (Fraction numerator: 5 denominator: 7). s",
    );
    let bad = b.t.pin(bad).unwrap();
    // From now on a Fraction's `hash` raises an error in this tenant.
    b.eval("Fraction compile: 'hash ^ self error: ''no hash here'''");
    let (g, x) = (b.t.pinned(good).unwrap(), b.t.pinned(bad).unwrap());
    let r = rehash::rehash(&mut b.t, &img.names, &[x, g]).unwrap();
    assert_eq!(r.left_for_image(), vec![0, 1], "{r}");
    let bad_array = b.t.slot(x, 1).unwrap();
    let done =
        b.vm.rehash_by_image(&mut b.t, &img.symbols, &[x, Value::int(3), g], BUDGET)
            .unwrap();
    eprintln!("{done}");
    assert_eq!(done.rehashed, vec![2], "{done}");
    assert_eq!(done.failed.len(), 2, "{done}");
    let f = &done.failed[0];
    assert_eq!((f.index, f.class.as_deref()), (0, Some("Set")));
    match &f.error {
        VmError::ImageError { message, .. } => assert_eq!(message, "no hash here"),
        e => panic!("{e}"),
    }
    let f = &done.failed[1];
    assert_eq!((f.index, f.class.as_deref()), (1, Some("SmallInteger")));
    match &f.error {
        VmError::DoesNotUnderstand {
            selector,
            receiver_class,
            ..
        } => assert_eq!(
            (selector.as_str(), receiver_class.as_str()),
            ("rehash", "SmallInteger")
        ),
        e => panic!("{e}"),
    }
    // The failed Set is as it was: its `rehash` stopped before installing a new table.
    let x = b.t.pinned(bad).unwrap();
    assert!(b.t.identical(b.t.slot(x, 1).unwrap(), bad_array).unwrap());
    assert_eq!(b.elements(x).len(), 2);
    assert!(!b.vm.is_suspended(&b.t));
    assert_eq!(b.eval("3 + 4").as_int(), Some(7));
    // A budget of 10 bytecodes: exhausted, the run abandoned, the Set as it was.
    let g = b.t.pinned(good).unwrap();
    let good_array = b.t.slot(g, 1).unwrap();
    let done =
        b.vm.rehash_by_image(&mut b.t, &img.symbols, &[g], 10)
            .unwrap();
    assert!(done.rehashed.is_empty(), "{done}");
    assert!(
        matches!(
            done.failed[0].error,
            VmError::BudgetExhausted { budget: 10, .. }
        ),
        "{done}"
    );
    assert_eq!(done.bytecodes, 10);
    assert!(!b.vm.is_suspended(&b.t));
    assert!(b.t.root(cowheap_vm::REHASH_ROOT).is_none());
    let g = b.t.pinned(good).unwrap();
    assert!(b.t.identical(b.t.slot(g, 1).unwrap(), good_array).unwrap());
    assert_eq!(b.eval("3 + 4").as_int(), Some(7));
    // With a budget that suffices it is rehashed: a new table, every element found.
    let done =
        b.vm.rehash_by_image(&mut b.t, &img.symbols, &[g], BUDGET)
            .unwrap();
    assert_eq!(done.rehashed, vec![0], "{done}");
    let g = b.t.pinned(good).unwrap();
    assert!(!b.t.identical(b.t.slot(g, 1).unwrap(), good_array).unwrap());
    let elems = b.elements(g);
    assert_eq!(elems.len(), 8);
    assert_eq!(b.found(good, "includes:", &elems), 8);
}

/// Test 4: the Etoys projects into `mini.image` (and one into Scratch). Per project: hashed
/// collections, those the model did not rehash, those left for the image (none: every one
/// holds a nil key twice), and, sending the image's `rehash` to them anyway, how many
/// answer and how many Associations they hold before and after.
#[test]
fn etoys_projects_leave_nothing_for_the_images_rehash() {
    // (base, project, collections, rehashed by the model, the keys those hold (in
    // mini.image each holds one, nil), not rehashed, Associations in those, and after the
    // image's rehash)
    let want = [
        (mini(), "JustPaintedCar.013.pr", 11, 0, 0, 7, 37, 7),
        (
            mini(),
            "BouncingBallAnimation.012.pr",
            56,
            5,
            5,
            29,
            117,
            29,
        ),
        (mini(), "CarAndPen.014.pr", 65, 10, 10, 25, 92, 27),
        (mini(), "AgeComparison.005.pr", 204, 112, 112, 42, 143, 42),
        (scratch(), "CarAndPen.014.pr", 66, 12, 15, 21, 84, 33),
    ];
    for (img, project, collections, by_model, keys, not_rehashed, assocs, assocs_after) in want {
        let nil = img.base.heap().nil();
        let p = Project::open(image(&format!("segments/{project}"))).unwrap();
        let mut b = Run::new(img);
        let m = bind::materialise(&mut b.t, &p, "segment").unwrap();
        let r = &m.report.rehash;
        assert_eq!(r.collections, collections, "{project}: {r}");
        assert_eq!(r.rehashed.len(), by_model, "{project}: {r}");
        assert_eq!(r.not_rehashed.len(), not_rehashed, "{project}: {r}");
        assert!(
            r.not_rehashed
                .iter()
                .all(|n| n.why == Reason::KeyTwice { nil: true }),
            "{project}: {r}"
        );
        // Cross-check of the model by the image: in every collection the model rehashed,
        // the image's own `includesKey:` finds every key (nil where an unbound out-pointer
        // left one, once).
        let members = m.members();
        let mut checked = 0;
        for &pos in &r.rehashed {
            let h = b.t.pin(members[pos]).unwrap();
            let c = b.t.pinned(h).unwrap();
            let keys: Vec<Value> = b
                .elements(c)
                .iter()
                .map(|&a| b.t.slot(a, 0).unwrap())
                .collect();
            assert_eq!(b.found(h, "includesKey:", &keys), keys.len(), "{project}");
            checked += keys.len();
        }
        eprintln!(
            "{project}: {checked} keys of the model's rehashed collections found by the image"
        );
        assert_eq!(checked, keys, "{project}");
        // Nothing is left for the image.
        assert!(r.left_for_image().is_empty(), "{project}");
        assert!(m.left_for_image().is_empty(), "{project}");
        let done =
            b.vm.rehash_by_image(&mut b.t, &img.symbols, &[], BUDGET)
                .unwrap();
        assert_eq!(done, cowheap_vm::ImageRehash::default());
        // Sent anyway: each answers, and keeps one nil-keyed Association of several.
        let colls: Vec<Value> = r.not_rehashed.iter().map(|n| members[n.object]).collect();
        let handles: Vec<_> = colls.iter().map(|&c| b.t.pin(c).unwrap()).collect();
        let mut before = 0;
        let mut keyed = Vec::new();
        for &c in &colls {
            let e = b.elements(c);
            before += e.len();
            let non_nil: Vec<Value> = e
                .iter()
                .map(|&a| b.t.slot(a, 0).unwrap())
                .filter(|k| !k.same_word(nil))
                .collect();
            keyed.push(non_nil);
        }
        let done =
            b.vm.rehash_by_image(&mut b.t, &img.symbols, &colls, BUDGET)
                .unwrap();
        assert_eq!(done.rehashed.len(), colls.len(), "{project}: {done}");
        let mut after = 0;
        for (k, &h) in handles.iter().enumerate() {
            let c = b.t.pinned(h).unwrap();
            let e = b.elements(c);
            // Every key but nil kept, and one nil-keyed Association of the several.
            assert_eq!(e.len(), keyed[k].len() + 1, "{project} collection {k}");
            after += e.len();
            // The image's own lookup finds the keys that are not nil.
            let keys = keyed[k].clone();
            assert_eq!(b.found(h, "includesKey:", &keys), keys.len());
        }
        eprintln!(
            "{project}: {collections} hashed collections, {not_rehashed} not rehashed, 0 left for the image; sent anyway: {} answered, Associations {before} -> {after}",
            done.rehashed.len()
        );
        assert_eq!((before, after), (assocs, assocs_after), "{project}");
    }
}
