//! A method's header written by `objectAt:put:` (primitive 69) takes effect at the next
//! send of that method in the same run, as it does in a later run: a Squeak VM reads the
//! frame size, temporaries and arguments from the method's header at each activation, and
//! the interpreter's method cache, which keeps each method's decoded header, forgets the
//! lookups that answered a method whose header is written. On a flat heap and on a tenant.

mod common;
use common::{on_both, send};

use cowheap_heap::Value;
use cowheap_vm::image::{MethodHeader, ctx};
use cowheap_vm::synth::{Lit, SynthImage};

/// `Object>>ctx` (`^thisContext`, a small frame), `CompiledMethod>>objectAt:put:` and
/// `Object>>twice: cm header: h` (`self ctx. cm objectAt: 1 put: h. ^self ctx`); answers
/// the image.
fn image() -> SynthImage {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("Object", "ctx", 0, 0, &[], &[137, 124], 0);
    img.method(
        "CompiledMethod",
        "objectAt:put:",
        2,
        2,
        &[],
        &[115, 124],
        69,
    );
    let lits = [Lit::Sym("ctx".into()), Lit::Sym("objectAt:put:".into())];
    let code = [112, 208, 135, 16, 118, 17, 241, 135, 112, 208, 124];
    img.method("Object", "twice:header:", 2, 2, &lits, &code, 0);
    img
}

/// The header of a method of no arguments, temporaries or literals, with a large frame.
fn large_header() -> i64 {
    MethodHeader {
        literals: 0,
        args: 0,
        temps: 0,
        large: true,
        primitive: 0,
    }
    .encode()
}

/// `ctx`'s header made a large frame's: the context the send after the write makes has a
/// large frame, as one made in a later run has (before, the run's cached lookup made a
/// small one).
#[test]
fn a_header_written_by_object_at_put_is_read_by_the_next_send() {
    let img = image();
    on_both!(img, |vm, m, s| {
        let large = large_header();
        let small_size = ctx::TEMPS + cowheap_vm::image::SMALL_FRAME;
        let large_size = ctx::TEMPS + cowheap_vm::image::LARGE_FRAME;
        let class = m.class_of(Value::int(3)).unwrap();
        let method = common::method_of(m, class, "ctx");
        let first = send(vm, m, s, Value::int(3), "ctx", &[]).unwrap();
        assert_eq!(m.size(first).unwrap().slots, small_size);
        let args = [method, Value::int(large)];
        let after = send(vm, m, s, Value::int(3), "twice:header:", &args).unwrap();
        assert_eq!(m.slot(method, 0).unwrap().as_int(), Some(large));
        let later = send(vm, m, s, Value::int(3), "ctx", &[]).unwrap();
        assert_eq!(m.size(later).unwrap().slots, large_size);
        assert_eq!(
            m.size(after).unwrap().slots,
            large_size,
            "the send after the header's write ran the header cached before it"
        );
    });
}
