//! Binding the Etoys project files into tenants of real bases (`mini.image`, Squeak 2.2;
//! `Scratch-1.4.0.6.image`, Squeak 2.8 based): what the base can satisfy by name is bound,
//! the rest listed, and the materialised objects read back through the tenant API exactly
//! as the segment words say.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value};
use cowheap_segment::bind::{self, BaseNames};
use cowheap_segment::v3::{ClassRef, Oop};
use cowheap_segment::{OutPointer, Project};
use cowheap_tenants::Tenant;
use std::sync::Arc;

fn base(name: &str) -> Arc<Base> {
    Base::new(cowheap_squeak::import(image(name)).unwrap().heap)
}

/// Every Symbol of the base by a scan written here: objects whose class's name Symbol is
/// `#Symbol`.
fn has_symbol(b: &Base, text: &str) -> bool {
    let heap = b.heap();
    heap.indices().any(|x| {
        let o = heap.object(x).unwrap();
        o.bytes == text.as_bytes()
            && o.slots.is_empty()
            && o.class
                .as_base()
                .and_then(|c| cowheap_squeak::class_name(heap, c))
                .as_deref()
                == Some("Symbol")
    })
}

fn check(base_name: &str, project: &str) {
    let b = base(base_name);
    let p = Project::open(image(&format!("segments/{project}"))).unwrap();
    let mut t = Tenant::fork(&b);
    let m = bind::materialise(&mut t, &p, "segment").unwrap();
    let r = &m.report;
    eprintln!("{base_name} <- {project}\n{r}");
    let heap = b.heap();
    // Out-pointers: each is bound exactly when the base can satisfy it by name.
    let names = BaseNames::of(heap).unwrap();
    for (k, (o, bound)) in p.out_pointers.iter().zip(&m.bindings.out).enumerate() {
        match o {
            OutPointer::Nil => assert!(bound.as_ref().unwrap().same_word(heap.nil())),
            OutPointer::Symbol(s) => {
                assert_eq!(bound.is_ok(), has_symbol(&b, s), "{project} #{s}");
                if let Ok(v) = bound {
                    assert_eq!(t.bytes(*v).unwrap(), s.as_bytes());
                }
            }
            OutPointer::Class { name, .. } => {
                if let Ok(v) = bound {
                    let c = v.word().as_base().unwrap();
                    assert_eq!(
                        cowheap_squeak::class_name(heap, c).as_deref(),
                        Some(&**name)
                    );
                    let ivars = names.all_inst_var_names(heap, c).unwrap();
                    assert_eq!(Some(&ivars), p.structures.get(name).or(Some(&ivars)));
                } else {
                    // Not bound: the base lacks it, or has another shape.
                    let theirs = names.global(name);
                    let same = theirs.and_then(|v| v.word().as_base()).is_some_and(|c| {
                        cowheap_squeak::class_name(heap, c).as_deref() == Some(&**name)
                            && p.structures.get(name).is_none_or(|w| {
                                names.all_inst_var_names(heap, c).as_ref() == Some(w)
                            })
                    });
                    assert!(
                        !same,
                        "{project}: {name} should have bound (out-pointer {})",
                        k + 1
                    );
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        r.unbound.len() + r.bound_by_kind.values().sum::<usize>(),
        p.out_pointers.len()
    );
    // Something is bound and something materialised; the roots array is kept.
    assert!(r.bound_by_kind.get("symbol").copied().unwrap_or(0) > 0);
    assert!(r.materialised > 0);
    assert_eq!(
        r.materialised + r.skipped.values().sum::<usize>(),
        p.segment.objects.len()
    );
    let roots = t.root("segment").unwrap();
    assert!(t.identical(roots, m.objects[0].unwrap()).unwrap());
    // Rehashed collections (the Symbols bound in this base hash otherwise than the
    // writer's) answer a lookup of every key they hold; their tables (the collection for
    // a MethodDictionary, its `array` otherwise) hold the words' elements, reordered.
    let made: Vec<Value> = m.objects.iter().flatten().copied().collect();
    let mut reordered = std::collections::HashSet::new();
    let mut nil_keys = 0;
    let mut looked_up = 0;
    for &pos in &r.rehash.rehashed {
        let c = made[pos];
        let array = t.slot(c, 1).unwrap();
        reordered.insert(c.word().bits());
        reordered.insert(array.word().bits());
        for k in 0..t.size(array).unwrap().slots {
            let e = t.slot(array, k).unwrap();
            if e.same_word(heap.nil()) {
                continue;
            }
            // IdentityDictionary: Associations; the lookup answers the value.
            // A key whose out-pointer did not bind reads nil: not a key to look up.
            let (key, value) = (t.slot(e, 0).unwrap(), t.slot(e, 1).unwrap());
            if key.same_word(heap.nil()) {
                nil_keys += 1;
                continue;
            }
            let got = cowheap_segment::rehash::lookup(&t, &names, c, key)
                .unwrap()
                .expect("a key of a rehashed collection is found");
            assert!(t.identical(got, value).unwrap());
            looked_up += 1;
        }
    }
    eprintln!("keys of rehashed collections looked up: {looked_up}, nil (not bound): {nil_keys}");
    assert_eq!(looked_up + nil_keys > 0, !r.rehash.rehashed.is_empty());
    // Every materialised object reads back as the words say.
    let nil = heap.nil();
    let mut checked = 0;
    for (i, o) in p.segment.objects.iter().enumerate() {
        let Some(v) = m.objects[i] else { continue };
        let class = t.class_of(v).unwrap();
        match o.class {
            ClassRef::Obj(j) => {
                assert!(t.identical(class, m.objects[j as usize].unwrap()).unwrap())
            }
            ClassRef::Out(k) => assert!(
                t.identical(class, *m.bindings.out[k as usize - 1].as_ref().unwrap())
                    .unwrap()
            ),
            ClassRef::Compact(k) => {
                let (_, c) = m.bindings.compact[usize::from(k)].as_ref().unwrap();
                assert!(t.identical(class, *c.as_ref().unwrap()).unwrap());
            }
        }
        // The segment's 12-bit identity hash is kept.
        assert_eq!(t.identity_hash(v).unwrap(), u32::from(o.hash), "object {i}");
        let size = t.size(v).unwrap();
        match o.format {
            0..=4 => {
                assert_eq!(size.slots, o.body_words());
                if reordered.contains(&v.word().bits()) {
                    let want = |p: &Oop| match *p {
                        Oop::Int(n) => Some(Value::int(n.into())),
                        Oop::Obj(j) => m.objects[j as usize],
                        Oop::Out(j) => m.bindings.out[j as usize - 1].as_ref().ok().copied(),
                    };
                    let mut w: Vec<u64> = o
                        .pointers
                        .iter()
                        .map(|p| want(p).unwrap_or(nil).word().bits())
                        .collect();
                    let mut g: Vec<u64> = (0..o.pointers.len())
                        .map(|k| t.slot(v, k).unwrap().word().bits())
                        .collect();
                    w.sort_unstable();
                    g.sort_unstable();
                    assert_eq!(
                        g, w,
                        "rehashed object {i}: the same fields in another order"
                    );
                    checked += 1;
                    continue;
                }
                for (k, &p) in o.pointers.iter().enumerate() {
                    let got = t.slot(v, k).unwrap();
                    let want: Option<Value> = match p {
                        Oop::Int(n) => Some(Value::int(n.into())),
                        Oop::Obj(j) => m.objects[j as usize],
                        Oop::Out(j) => m.bindings.out[j as usize - 1].as_ref().ok().copied(),
                    };
                    let want = want.unwrap_or(nil);
                    assert!(t.identical(got, want).unwrap(), "object {i} field {k}");
                }
            }
            8..=11 => {
                assert_eq!(t.format(v).unwrap(), Format::Bytes);
                assert_eq!(t.bytes(v).unwrap(), o.bytes(p.segment.order).as_slice());
            }
            _ => {}
        }
        checked += 1;
    }
    assert_eq!(checked, r.materialised);
    // The report prints what it counted.
    let text = r.to_string();
    assert!(text.contains(&format!("{} materialised", r.materialised)));
}

#[test]
fn just_painted_car_binds_into_mini() {
    check("mini.image", "JustPaintedCar.013.pr");
}

#[test]
fn every_project_binds_into_mini() {
    for p in [
        "BouncingBallAnimation.012.pr",
        "CarAndPen.014.pr",
        "AgeComparison.005.pr",
    ] {
        check("mini.image", p);
    }
}

#[test]
fn a_project_binds_into_scratch() {
    check("Scratch-1.4.0.6.image", "CarAndPen.014.pr");
}

/// The same segment as a big-endian machine would have written it (words in big-endian
/// order; byte objects, being memory images, keep their bytes in string order) materialises
/// to the same objects: the byte order of the writer is undone on import.
#[test]
fn a_big_endian_segment_materialises_the_same() {
    use cowheap_segment::v3::{ByteOrder, V3Segment};
    let b = base("mini.image");
    let p = Project::open(image("segments/JustPaintedCar.013.pr")).unwrap();
    let mut big = p.clone();
    big.segment.order = ByteOrder::Big;
    for o in &mut big.segment.objects {
        if o.format >= 8 {
            for w in &mut o.raw {
                *w = w.swap_bytes();
            }
        }
    }
    // As words on file, it reads back as itself, detected big-endian by its version word.
    let words = big.segment.to_bytes().unwrap();
    assert_eq!(&words[..4], &0x7300_1966u32.to_be_bytes());
    let back = V3Segment::parse(&words, big.out_pointers.len()).unwrap();
    assert_eq!(back, big.segment);
    let mut t1 = Tenant::fork(&b);
    let m1 = bind::materialise(&mut t1, &p, "segment").unwrap();
    let mut t2 = Tenant::fork(&b);
    let m2 = bind::materialise(&mut t2, &big, "segment").unwrap();
    assert_eq!(m1.report, m2.report);
    let mut compared = 0;
    for (x, y) in m1.objects.iter().zip(&m2.objects) {
        let (Some(x), Some(y)) = (x, y) else {
            assert_eq!(x.is_some(), y.is_some());
            continue;
        };
        assert_eq!(t1.format(*x).unwrap(), t2.format(*y).unwrap());
        assert_eq!(t1.bytes(*x).unwrap(), t2.bytes(*y).unwrap());
        compared += usize::from(!t1.bytes(*x).unwrap().is_empty());
    }
    assert!(compared > 0, "some objects have bytes");
}
