//! What a run leaves behind for the next: the timer armed by a finished run does not fire
//! in a later one on the same interpreter (as it does not with a new one).

mod common;
use common::{on_both, send};

use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{ObjectMemory, Vm, VmError};

fn new_instance<M: ObjectMemory>(m: &mut M, class: &str, slots: usize) -> Value {
    let c = m.root(&format!("class.{class}")).unwrap();
    m.alloc(c, Format::Pointers, ObjectSize { slots, bytes: 0 })
        .unwrap()
}

/// A run that arms the timer (primitive 136) and answers leaves no timer: a later run on
/// the same interpreter, waiting with nothing runnable, deadlocks as it does on a new
/// interpreter, instead of being woken by the earlier run's timer.
#[test]
fn a_timer_armed_by_a_finished_run_does_not_fire_in_the_next_run() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
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
    // Semaphore>>arm  self primSignal: self atMilliseconds: self millis + 20. ^42
    let lits = [
        Lit::Sym("millis".into()),
        Lit::Int(20),
        Lit::Sym("primSignal:atMilliseconds:".into()),
        Lit::Int(42),
    ];
    img.method(
        "Semaphore",
        "arm",
        0,
        0,
        &lits,
        &[112, 112, 112, 208, 33, 176, 242, 135, 35, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let sema = new_instance(m, "Semaphore", 3);
        m.set_slot(sema, 2, Value::int(0)).unwrap();
        let r = send(vm, m, s, sema, "arm", &[]);
        assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(42), "{r:?}");
        assert!(m.root(cowheap_vm::TIMER_ROOT).is_none());
        // A new interpreter: nothing can signal the semaphore.
        let mut fresh = Vm::new(m).unwrap();
        let r = send(&mut fresh, m, s, sema, "wait", &[]);
        assert!(matches!(r, Err(VmError::Deadlock { .. })), "{r:?}");
        // The interpreter that ran `arm`: the same.
        let r = send(vm, m, s, sema, "wait", &[]);
        assert!(matches!(r, Err(VmError::Deadlock { .. })), "{r:?}");
    });
}
