//! Values an image (or an embedder) can hand the interpreter that a primitive must refuse or
//! handle, never panic on: counts at the edge of the 63-bit integers, stack pointers that
//! are negative, Floats of the wrong size, a jump back past a method's first bytecode. Each
//! runs on the flat heap and on a tenant of mini.image.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::{Value, Word};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};

const BUDGET: u64 = 20_000_000;

/// Runs `f` on a flat heap and on a tenant of mini.image.
fn on_mini(f: impl Fn(&mut Vm, &mut dyn Mem, &Symbols)) {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let mut vm = Vm::new(&flat).unwrap();
    f(&mut vm, &mut flat, &symbols);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    f(&mut vm, &mut t, &symbols);
}

/// The memory operations the tests use, object-safe.
trait Mem {
    fn eval(&mut self, vm: &mut Vm, s: &Symbols, src: &str) -> Value;
    fn send(
        &mut self,
        vm: &mut Vm,
        s: &Symbols,
        r: Value,
        sel: &str,
        args: &[Value],
    ) -> Result<Value, cowheap_vm::VmError>;
    fn slot(&self, obj: Value, i: usize) -> Value;
    fn set(&mut self, obj: Value, i: usize, v: Value);
    fn bytes(&self, obj: Value) -> Vec<u8>;
}

impl<M: ObjectMemory> Mem for M {
    fn eval(&mut self, vm: &mut Vm, s: &Symbols, src: &str) -> Value {
        vm.evaluate(self, s, src, BUDGET)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    }
    fn send(
        &mut self,
        vm: &mut Vm,
        s: &Symbols,
        r: Value,
        sel: &str,
        args: &[Value],
    ) -> Result<Value, cowheap_vm::VmError> {
        vm.send_named(self, s, r, sel, args, BUDGET)
    }
    fn slot(&self, obj: Value, i: usize) -> Value {
        ObjectMemory::slot(self, obj, i).unwrap()
    }
    fn set(&mut self, obj: Value, i: usize, v: Value) {
        self.set_slot(obj, i, v).unwrap();
    }
    fn bytes(&self, obj: Value) -> Vec<u8> {
        ObjectMemory::bytes(self, obj).unwrap().to_vec()
    }
}

#[test]
fn a_float_of_another_size_is_stored_to_as_words() {
    on_mini(|vm, m, s| {
        // Two words stored and read back where they were put; before, a Float not of 8 bytes
        // had its first 8 bytes zeroed and the word written elsewhere.
        let f = m.eval(
            vm,
            s,
            "| f | f := Float basicNew: 4. f basicAt: 1 put: 7. f basicAt: 3 put: 9. f",
        );
        let b = m.bytes(f);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[0..4], &7u32.to_le_bytes());
        assert_eq!(&b[4..8], &[0; 4]);
        assert_eq!(&b[8..12], &9u32.to_le_bytes());
        let v = m.eval(
            vm,
            s,
            "| f | f := Float basicNew: 4. f basicAt: 2 put: 5. (f basicAt: 1) * 100 + (f basicAt: 2)",
        );
        assert_eq!(v.as_int(), Some(5));
    });
}

#[test]
fn an_excess_signal_count_at_the_largest_integer_is_not_incremented() {
    on_mini(|vm, m, s| {
        let sema = m.eval(vm, s, "Semaphore new");
        // A count no image could make, but an embedder can store: the 63-bit maximum.
        m.set(sema, 2, Value::int(Word::MAX_INT));
        let r = m.send(vm, s, sema, "signal", &[]);
        // The primitive fails (the image's fallback answers or stops as it will); the count
        // is left as it was.
        drop(r);
        assert_eq!(m.slot(sema, 2).as_int(), Some(Word::MAX_INT));
        // The image's own largest SmallInteger: the next would be a LargeInteger.
        let max = m.eval(vm, s, "SmallInteger maxVal").as_int().unwrap();
        m.set(sema, 2, Value::int(max));
        drop(m.send(vm, s, sema, "signal", &[]));
        assert_eq!(m.slot(sema, 2).as_int(), Some(max));
        // An ordinary count is incremented by the primitive.
        m.set(sema, 2, Value::int(3));
        m.send(vm, s, sema, "signal", &[]).unwrap();
        assert_eq!(m.slot(sema, 2).as_int(), Some(4));
    });
}

#[test]
fn a_replace_over_the_whole_integer_range_fails_the_primitive() {
    on_mini(|vm, m, s| {
        let dst = m.eval(vm, s, "'abcd' copy");
        let src = m.eval(vm, s, "'wxyz' copy");
        let r = m.send(
            vm,
            s,
            dst,
            "replaceFrom:to:with:startingAt:",
            &[
                Value::int(Word::MIN_INT),
                Value::int(Word::MAX_INT),
                src,
                Value::int(1),
            ],
        );
        // The image's fallback refuses the indices one way or another; the string is whole.
        drop(r);
        assert_eq!(m.bytes(dst), b"abcd");
        // An ordinary replace goes through the primitive.
        m.send(
            vm,
            s,
            dst,
            "replaceFrom:to:with:startingAt:",
            &[Value::int(2), Value::int(3), src, Value::int(1)],
        )
        .unwrap();
        assert_eq!(m.bytes(dst), b"awxd");
    });
}

#[test]
fn a_context_whose_stack_pointer_is_negative_has_no_fields_to_read() {
    on_mini(|vm, m, s| {
        // mini.image sends primitives 210 and 211 from no method: give ContextPart two that
        // do, answering #failed when the primitive fails.
        for src in [
            "primAt: i <primitive: 210> ^#failed",
            "primAt: i put: v <primitive: 211> ^#failed",
        ] {
            let selector = if src.contains("put:") {
                "primAt:put:"
            } else {
                "primAt:"
            };
            m.eval(
                vm,
                s,
                &format!(
                    "ContextPart addSelector: #{selector} withMethod: ((Compiler new \
                     compile: '{src}' in: ContextPart notifying: nil ifFail: [nil]) \
                     generate: #(0 0 0 0)). 0"
                ),
            );
        }
        // Each expression makes a context that is not running, with 42 in its first field
        // past the six fixed ones and the stack pointer `sp`, then calls the primitives.
        let run = |m: &mut dyn Mem, vm: &mut Vm, sp: i64, then: &str| {
            m.eval(
                vm,
                s,
                &format!(
                    "| c | c := MethodContext new: 4. c instVarAt: 7 put: 42. \
                     c instVarAt: 3 put: {sp}. {then}"
                ),
            )
        };
        let failed = m.eval(vm, s, "#failed");
        let is_failed = |v: Value| v.word() == failed.word();
        // A negative stack pointer: no field to read or write.
        assert!(
            is_failed(run(m, vm, -1, "c primAt: 1")),
            "a field past the stack pointer was read"
        );
        assert_eq!(
            run(
                m,
                vm,
                -1,
                "(c primAt: 1 put: 5) == #failed and: [(c instVarAt: 7) = 42]"
            )
            .word(),
            m.eval(vm, s, "true").word()
        );
        // A stack pointer past the context's fields fails too.
        assert!(is_failed(run(m, vm, 5, "c primAt: 5")));
        // Within the stack pointer, the field is read and written.
        assert_eq!(run(m, vm, 1, "c primAt: 1").as_int(), Some(42));
        assert_eq!(
            run(m, vm, 1, "c primAt: 1 put: 5. c instVarAt: 7").as_int(),
            Some(5)
        );
    });
}
