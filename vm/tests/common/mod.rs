//! Shared helpers of the real-image tests.
#![allow(dead_code, reason = "each test file uses a different part")]

use cowheap_forwarders::Base;
use cowheap_heap::BaseHeap;
use std::path::PathBuf;
use std::sync::Arc;

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images` from the workspace.
pub(crate) fn images() -> PathBuf {
    std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/images"))
}

/// Imports image `name`; panics (fails the test) if the file is missing.
pub(crate) fn import(name: &str) -> BaseHeap {
    let path = images().join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images (see /work/shared/images/README.md)",
        path.display()
    );
    cowheap_squeak::import(&path)
        .unwrap_or_else(|e| panic!("importing {}: {e}", path.display()))
        .heap
}

/// The base of image `name`.
pub(crate) fn base(name: &str) -> Arc<Base> {
    Base::new(import(name))
}

/// `heap` rebuilt object for object (the same indices, hashes and roots) with one object
/// more: a class SmallFloat64, a copy of Float (the same superclass, methods and format,
/// so the image's Float methods run on immediates), named as the base's class of immediate
/// floats. Its 64-bit export refers to each boxed Float an immediate can hold as that
/// immediate, as Squeak's 32- to 64-bit converter does.
pub(crate) fn with_small_float_class(heap: &BaseHeap) -> BaseHeap {
    let mut b = cowheap_heap::Builder::new();
    for i in 0..heap.len() {
        let o = heap
            .object(cowheap_heap::ObjectIndex::new(i).unwrap())
            .unwrap();
        let w = b
            .add(o.class, o.format, o.slots.to_vec(), o.bytes.to_vec())
            .unwrap();
        b.set_hash(w, o.hash).unwrap();
        b.set_aux(w, o.aux).unwrap();
    }
    b.set_nil(heap.nil().word()).unwrap();
    b.set_immediate_classes(
        heap.int_class().map(cowheap_heap::Value::word),
        heap.char_class().map(cowheap_heap::Value::word),
    );
    let special = heap.root("specialObjects").unwrap();
    let float = heap.slot(special, 9).unwrap();
    let fo = heap.object(float.as_base().unwrap()).unwrap();
    let mut slots = fo.slots.to_vec();
    // The name: a Symbol like Float's, spelled SmallFloat64 (slot 6 in V3, 3 in Spur).
    let name_at = (0..slots.len())
        .find(|&k| {
            slots[k]
                .as_base()
                .and_then(|x| heap.object(x).ok())
                .is_some_and(|n| n.bytes == b"Float")
        })
        .expect("Float's name slot");
    let name = heap.object(slots[name_at].as_base().unwrap()).unwrap();
    let sym = b
        .add(
            name.class,
            name.format,
            Vec::new(),
            b"SmallFloat64".to_vec(),
        )
        .unwrap();
    slots[name_at] = sym;
    let class = b
        .add(fo.class, fo.format, slots, fo.bytes.to_vec())
        .unwrap();
    b.set_float_class(Some(class));
    for r in heap.roots() {
        b.add_root(&r.name, r.value).unwrap();
    }
    b.freeze().unwrap()
}

/// `rcvr sel args` by name, within `budget` bytecodes, which must answer (a test fails
/// naming the selector otherwise).
pub(crate) fn answer<M: cowheap_vm::ObjectMemory>(
    vm: &mut cowheap_vm::Vm,
    m: &mut M,
    s: &cowheap_vm::Symbols,
    rcvr: cowheap_heap::Value,
    sel: &str,
    args: &[cowheap_heap::Value],
    budget: u64,
) -> cowheap_heap::Value {
    vm.send_named(m, s, rcvr, sel, args, budget)
        .unwrap_or_else(|e| panic!("#{sel}: {e}"))
}

/// The bytecode budget of [`on_mini`].
const MINI_BUDGET: u64 = 20_000_000;

/// Evaluates `defs` (which installs methods; nothing if empty), then `src`, on a fresh
/// tenant of mini.image with a 64 MiB quota, and answers the printString of what `src`
/// answers, or the error that stopped the run.
pub(crate) fn on_mini(defs: &str, src: &str) -> Result<String, cowheap_vm::VmError> {
    let heap = import("mini.image");
    let symbols = cowheap_vm::Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = cowheap_tenants::Tenant::fork(&base);
    t.set_quota(Some(64 << 20));
    let mut vm = cowheap_vm::Vm::new(&t).unwrap();
    if !defs.is_empty() {
        vm.evaluate(&mut t, &symbols, defs, MINI_BUDGET)?;
    }
    let v = vm.evaluate(&mut t, &symbols, src, MINI_BUDGET)?;
    vm.print_string(&mut t, &symbols, v, MINI_BUDGET)
}

pub(crate) mod world;

/// The bytecode budget of [`send`].
pub(crate) const SEND_BUDGET: u64 = 100_000;

/// Runs `$body` on a flat heap and on a tenant of the image `$img` (a
/// `cowheap_vm::synth::SynthImage`) makes, with `$vm`, `$m` and `$s` the interpreter, the
/// memory and the image's symbols.
#[allow(unused_macros, reason = "used by the synthetic-image tests only")]
macro_rules! on_both {
    ($img:expr, |$vm:ident, $m:ident, $s:ident| $body:block) => {{
        fn check<M: ::cowheap_vm::ObjectMemory>(
            $vm: &mut ::cowheap_vm::Vm,
            $m: &mut M,
            $s: &::cowheap_vm::Symbols,
        ) $body
        let (base, symbols) = $img.freeze().unwrap();
        let mut flat = ::cowheap_vm::FlatHeap::from_base(&base);
        let mut vm = ::cowheap_vm::Vm::new(&flat).unwrap();
        check(&mut vm, &mut flat, &symbols);
        let base = ::cowheap_forwarders::Base::new(base);
        let mut t = ::cowheap_tenants::Tenant::fork(&base);
        let mut vm = ::cowheap_vm::Vm::new(&t).unwrap();
        check(&mut vm, &mut t, &symbols);
    }};
}
#[allow(unused_imports, reason = "used by the synthetic-image tests only")]
pub(crate) use on_both;

/// `r sel args` by name, within [`SEND_BUDGET`] bytecodes.
pub(crate) fn send<M: cowheap_vm::ObjectMemory>(
    vm: &mut cowheap_vm::Vm,
    m: &mut M,
    s: &cowheap_vm::Symbols,
    r: cowheap_heap::Value,
    sel: &str,
    args: &[cowheap_heap::Value],
) -> Result<cowheap_heap::Value, cowheap_vm::VmError> {
    vm.send_named(m, s, r, sel, args, SEND_BUDGET)
}

/// Smalltalk source that compiles `method` and installs it in `class` under `selector`, for
/// tests that define the methods they send.
pub(crate) fn def(class: &str, selector: &str, method: &str) -> String {
    format!(
        "{class} addSelector: #{selector} withMethod: ((Compiler new compile: '{method}' \
         in: {class} notifying: nil ifFail: [nil]) generate: #(0 0 0 0)). "
    )
}

/// The method `class` or a superclass has for `selector`, by a scan of the method
/// dictionaries (the class's own first).
pub(crate) fn method_of<M: cowheap_vm::ObjectMemory>(
    m: &M,
    class: cowheap_heap::Value,
    selector: &str,
) -> cowheap_heap::Value {
    let mut c = class;
    while c.is_object() && m.size(c).map(|s| s.slots).unwrap_or(0) > 2 {
        let dict = m.slot(c, 1).unwrap();
        let values = m.slot(dict, 1).unwrap();
        for i in 2..m.size(dict).unwrap().slots {
            let k = m.slot(dict, i).unwrap();
            if k.is_object() && cowheap_vm::names::symbol(m, k).as_deref() == Some(selector) {
                return m.slot(values, i - 2).unwrap();
            }
        }
        c = m.slot(c, 0).unwrap();
    }
    panic!("no method {selector}")
}

/// [`method_of`] the class a synthetic test image names by the root `class.NAME`.
pub(crate) fn method_of_named<M: cowheap_vm::ObjectMemory>(
    m: &M,
    class: &str,
    selector: &str,
) -> cowheap_heap::Value {
    method_of(m, m.root(&format!("class.{class}")).unwrap(), selector)
}

/// A synthetic image (closure bytecodes or not) with its kernel methods.
pub(crate) fn kernel_image(closures: bool) -> cowheap_vm::synth::SynthImage {
    let mut img = cowheap_vm::synth::SynthImage::new(closures);
    img.with_kernel_methods();
    img
}

/// Installs in `img` the methods the unwinding tests share, which record in the global
/// `Seen`:
/// - `ContextPart>>aboutToReturn: v through: c`  `Seen := v. ^v`, which records the value
///   and does not return from the home itself;
/// - `Object>>ensureLike: aBlock`  `<primitive: 198>  ^aBlock value`, an unwind marker;
/// - `SmallInteger>>seen`  `^Seen`.
pub(crate) fn with_unwind_recorder(img: &mut cowheap_vm::synth::SynthImage) {
    use cowheap_vm::synth::Lit;
    let seen = Lit::Global("Seen".into(), 0);
    img.method(
        "ContextPart",
        "aboutToReturn:through:",
        2,
        2,
        std::slice::from_ref(&seen),
        &[16, 129, 192, 124],
        0,
    );
    img.method("Object", "ensureLike:", 1, 1, &[], &[16, 201, 124], 198);
    img.method("SmallInteger", "seen", 0, 0, &[seen], &[64, 124], 0);
}

/// A new instance of `slots` pointer slots of the class a synthetic test image names by the
/// root `class.NAME`.
pub(crate) fn new_instance<M: cowheap_vm::ObjectMemory>(
    m: &mut M,
    class: &str,
    slots: usize,
) -> cowheap_heap::Value {
    let c = m.root(&format!("class.{class}")).unwrap();
    m.alloc(
        c,
        cowheap_heap::Format::Pointers,
        cowheap_heap::ObjectSize { slots, bytes: 0 },
    )
    .unwrap()
}

/// A new context of the image's MethodContext class with room for 16 temporaries, at pc 13
/// (the first bytecode of a method of no literals) with an empty stack, running `method` on
/// `receiver`: a process's suspended context, or a context to run by hand.
pub(crate) fn context_running<M: cowheap_vm::ObjectMemory>(
    vm: &cowheap_vm::Vm,
    m: &mut M,
    method: cowheap_heap::Value,
    receiver: cowheap_heap::Value,
) -> cowheap_heap::Value {
    use cowheap_vm::image::ctx;
    let c = m
        .alloc(
            vm.specials().method_context,
            cowheap_heap::Format::Pointers,
            cowheap_heap::ObjectSize {
                slots: ctx::TEMPS + 16,
                bytes: 0,
            },
        )
        .unwrap();
    m.set_slot(c, ctx::PC, cowheap_heap::Value::int(13))
        .unwrap();
    m.set_slot(c, ctx::STACKP, cowheap_heap::Value::int(0))
        .unwrap();
    m.set_slot(c, ctx::METHOD, method).unwrap();
    m.set_slot(c, ctx::RECEIVER, receiver).unwrap();
    c
}

/// A synthetic image with processes and the clock's primitives: `Object>>millis`
/// (primitive 135) and `Object>>primSignal:atMilliseconds:` (136), for the timer's tests.
pub(crate) fn timer_prims_image() -> cowheap_vm::synth::SynthImage {
    let mut img = kernel_image(false);
    img.with_processes();
    img.method("Object", "millis", 0, 0, &[], &[115, 124], 135);
    img.method(
        "Object",
        "primSignal:atMilliseconds:",
        2,
        2,
        &[],
        &[115, 124],
        136,
    );
    img
}

/// A kernel image whose `Object>>elementsForwardIdentityTo:` is primitive 72 and
/// `Object>>elementsExchangeIdentityWith:` primitive 128, with its symbols.
pub(crate) fn become_image() -> (BaseHeap, cowheap_vm::Symbols) {
    let mut img = cowheap_vm::synth::SynthImage::new(false);
    img.with_kernel_methods();
    for (selector, primitive) in [
        ("elementsForwardIdentityTo:", 72),
        ("elementsExchangeIdentityWith:", 128),
    ] {
        img.method("Object", selector, 1, 1, &[], &[115, 124], primitive);
    }
    img.freeze().unwrap()
}

/// A tenant of [`become_image`], its symbols, and the classes Array and Point.
pub(crate) fn become_bed() -> (
    cowheap_tenants::Tenant,
    cowheap_vm::Symbols,
    cowheap_heap::Value,
    cowheap_heap::Value,
) {
    let (heap, symbols) = become_image();
    let array = cowheap_vm::synth::class_of_base(&heap, "Array").unwrap();
    let point = cowheap_vm::synth::class_of_base(&heap, "Point").unwrap();
    let base = Base::new(heap);
    (cowheap_tenants::Tenant::fork(&base), symbols, array, point)
}

/// A new Association whose value is `tag` and whose identity hash is `hash`.
pub(crate) fn tagged<M: cowheap_vm::ObjectMemory>(
    m: &mut M,
    tag: i64,
    hash: u32,
) -> cowheap_heap::Value {
    let assoc = m.root("class.Association").unwrap();
    let size = cowheap_heap::ObjectSize { slots: 2, bytes: 0 };
    let o = m
        .alloc(assoc, cowheap_heap::Format::Pointers, size)
        .unwrap();
    m.set_slot(o, 1, cowheap_heap::Value::int(tag)).unwrap();
    m.set_identity_hash(o, hash).unwrap();
    o
}

/// A new Array of `objects`.
pub(crate) fn array_of<M: cowheap_vm::ObjectMemory>(
    m: &mut M,
    objects: &[cowheap_heap::Value],
) -> cowheap_heap::Value {
    let array = m.root("class.Array").unwrap();
    let size = cowheap_heap::ObjectSize {
        slots: objects.len(),
        bytes: 0,
    };
    let a = m
        .alloc(array, cowheap_heap::Format::Pointers, size)
        .unwrap();
    for (i, &o) in objects.iter().enumerate() {
        m.set_slot(a, i, o).unwrap();
    }
    a
}

/// Runs `$body` (of type `$t`, given `$knob` as `$k`) on a fresh flat heap and a fresh
/// tenant of the calling test file's `image($closures)` (which answers a base heap, its
/// symbols and three base objects), with `$vm`, `$m`, `$s` and `$base` the interpreter, the
/// memory, the symbols and the three objects; checks the two agree, and answers what they
/// answered. The caller has `ObjectMemory`, `Vm`, `Symbols`, `Value`, `FlatHeap`, `Base`
/// and `Tenant` in scope.
#[allow(
    unused_macros,
    reason = "used by the one-way become and adoption tests only"
)]
macro_rules! agree_on_both {
    ($closures:expr, $t:ty, $knob:expr, |$vm:ident, $m:ident, $s:ident, $base:ident, $k:ident| $body:block) => {{
        #[allow(unused_variables, reason = "not every check uses every argument")]
        fn check<M: ObjectMemory>(
            $vm: &mut Vm,
            $m: &mut M,
            $s: &Symbols,
            $base: [Value; 3],
            $k: usize,
        ) -> $t $body
        let (heap, symbols, base) = image($closures);
        let mut flat = FlatHeap::from_base(&heap);
        let mut vm = Vm::new(&flat).unwrap();
        let on_flat = check(&mut vm, &mut flat, &symbols, base, $knob);
        let b = Base::new(heap);
        let mut t = Tenant::fork(&b);
        let mut vm = Vm::new(&t).unwrap();
        let on_tenant = check(&mut vm, &mut t, &symbols, base, $knob);
        assert_eq!(on_flat, on_tenant, "the flat heap and the tenant disagree");
        on_flat
    }};
}
#[allow(
    unused_imports,
    reason = "used by the one-way become and adoption tests only"
)]
pub(crate) use agree_on_both;
