//! The walk of every object (`nextObject`) after a one-way become of one base object into
//! a later one the tenant had already copied: the target is listed at its own place and
//! the source at none, on a tenant as on the flat heap (before, a tenant listed the
//! target's copy at the source's place, so `nextObject` of the object before the source
//! answered the target there, and the object after the source on the flat heap).

mod common;
use common::{on_both, send};

use cowheap_heap::{ObjectIndex, Value};
use cowheap_vm::synth::SynthImage;

#[test]
fn a_become_into_a_copied_later_object_keeps_the_walks_order() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("Object", "nextObject", 0, 0, &[], &[115, 124], 139);
    // Three classes, one after the other among the base's objects (each after its name).
    img.define_class("Source", "Object", 0, 0);
    img.define_class("Between", "Object", 0, 0);
    img.define_class("Target", "Object", 0, 0);
    on_both!(img, |vm, m, s| {
        let class = |m: &mut M, name: &str| m.root(&format!("class.{name}")).unwrap();
        let (source, target) = (class(m, "Source"), class(m, "Target"));
        let at = |k: usize| Value::base(ObjectIndex::new(k).unwrap());
        let i = source.as_base().unwrap().get();
        let (before, after) = (at(i - 1), at(i + 1));
        assert!(target.as_base().unwrap().get() > i + 1);
        // The target copied (on a tenant), then the source forwarded to it.
        m.set_slot(target, 4, Value::int(7)).unwrap();
        m.become_forward(source, target).unwrap();
        let next = send(vm, m, s, before, "nextObject", &[]).unwrap();
        assert!(
            m.identical(next, after).unwrap(),
            "the object before the source is followed by {next:?}, not {after:?}"
        );
        // The target is listed once, at its own place.
        let mut all = Vec::new();
        m.enumerate_objects(&mut all).unwrap();
        let targets: Vec<usize> = (0..all.len())
            .filter(|&k| m.identical(all[k], target).unwrap())
            .collect();
        assert_eq!(targets.len(), 1);
        let k = targets[0];
        assert!(
            m.identical(all[k - 1], at(target.as_base().unwrap().get() - 1))
                .unwrap()
        );
    });
}
