//! Processes and the timer: `Processor yield` (primitive 167) and priorities, process
//! switches a hostile scheduler (an active process with no suspended-context field, a timer
//! waiter whose priority has no runnable list) cannot make, which must change no list, and
//! a Delay's timer in a run snapshotted in one process and resumed in another. On
//! mini.image (compiled by its own compiler) and on synthetic images, on both memories.

mod common;

use common::{new_instance, on_both, send};
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::image::ctx;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

/// The bytecode budget of each run.
const BIG: u64 = 20_000_000;

/// Evaluates `defs` (source that installs methods), failing the test on an error.
fn install<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, defs: &str) {
    vm.evaluate(m, s, defs, BIG)
        .unwrap_or_else(|e| panic!("{defs}: {e}"));
}

/// `v printString`.
fn printed<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, v: Value) -> String {
    vm.print_string(m, s, v, BIG).unwrap()
}

/// Runs `body` (a method of Object, taking no argument) on a flat heap and on a tenant of
/// mini.image, after installing `defs`, and answers the two printStrings.
fn mini_both(defs: &[String], body: &str) -> [String; 2] {
    fn run<M: ObjectMemory>(m: &mut M, s: &Symbols, defs: &[String], body: &str) -> String {
        let mut vm = Vm::new(m).unwrap();
        for d in defs {
            install(&mut vm, m, s, d);
        }
        install(
            &mut vm,
            m,
            s,
            &common::def("Object", "run", &format!("run {body}")),
        );
        let sel = vm.evaluate(m, s, "#run", BIG).unwrap();
        let nil = vm.specials().nil;
        let v = vm
            .perform(m, nil, sel, &[], BIG)
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        printed(&mut vm, m, s, v)
    }
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let a = run(&mut flat, &symbols, defs, body);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let b = run(&mut t, &symbols, defs, body);
    [a, b]
}

/// `Processor yield` (primitive 167) puts the active process at the back of its runnable
/// list and runs the highest-priority runnable process, as Squeak's `primitiveYield` does
/// (`addLastLink: activeProc toList: processList. transferTo: self wakeHighestPriority`):
/// a process of higher priority that is runnable runs before the others of the active
/// one's priority. Here the active process lowered its own priority to 3, with `p` (4) and
/// `q` (3) runnable: the yield runs `p`, then `q`, then the yielder.
#[test]
fn yield_runs_the_highest_priority_runnable_process() {
    let defs = [common::def(
        "ProcessorScheduler",
        "primYield",
        "primYield <primitive: 167> ^nil",
    )];
    let body = "| a p q | a := OrderedCollection new. \
                p := [a add: #p] newProcess. p priority: 4. p resume. \
                Processor activeProcess priority: 3. \
                q := [a add: #q] newProcess. q priority: 3. q resume. \
                Processor primYield. a add: #main. \
                Processor activeProcess priority: 4. ^a asArray";
    for r in mini_both(&defs, body) {
        assert_eq!(r, "(p q main )");
    }
}

/// A new process at priority 4 whose context runs `answer` (on a new Semaphore), made the
/// only process on the runnable list of that priority.
fn runnable_process<M: ObjectMemory>(vm: &Vm, m: &mut M, answer: Value) -> Value {
    let sema = new_instance(m, "Semaphore", 3);
    m.set_slot(sema, 2, Value::int(0)).unwrap();
    let c = common::context_running(vm, m, answer, sema);
    let p = new_instance(m, "Process", 4);
    m.set_slot(p, 1, c).unwrap();
    m.set_slot(p, 2, Value::int(4)).unwrap();
    let sched = m.root("processor").unwrap();
    let lists = m.slot(sched, 0).unwrap();
    let list = m.slot(lists, 3).unwrap();
    m.set_slot(list, 0, p).unwrap();
    m.set_slot(list, 1, p).unwrap();
    m.set_slot(p, 3, list).unwrap();
    p
}

/// A synthetic image with processes and `Semaphore>>answer` (`^42`).
fn hostile_active_image() -> SynthImage {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.with_processes();
    img.method("Semaphore", "answer", 0, 0, &[Lit::Int(42)], &[32, 124], 0);
    img
}

/// A switch away from a scheduler whose active process has no field for its suspended
/// context (a hostile image's: here nil) stops the run with a typed error before any list
/// or process changes: the process it would have switched to stays first on its runnable
/// list, and the semaphore waited on stays empty.
#[test]
fn a_wait_whose_active_process_cannot_be_suspended_changes_no_list() {
    let img = hostile_active_image();
    on_both!(img, |vm, m, s| {
        let answer = common::method_of_named(m, "Semaphore", "answer");
        let p = runnable_process(vm, m, answer);
        let sched = m.root("processor").unwrap();
        let nil = vm.specials().nil;
        m.set_slot(sched, 1, nil).unwrap();
        let sema = new_instance(m, "Semaphore", 3);
        m.set_slot(sema, 2, Value::int(0)).unwrap();
        let r = send(vm, m, s, sema, "wait", &[]);
        assert!(r.is_err(), "{r:?}");
        let lists = m.slot(sched, 0).unwrap();
        let list = m.slot(lists, 3).unwrap();
        assert!(
            m.identical(m.slot(list, 0).unwrap(), p).unwrap(),
            "p is still runnable"
        );
        assert!(m.identical(m.slot(list, 1).unwrap(), p).unwrap());
        assert!(m.identical(m.slot(p, 3).unwrap(), list).unwrap());
        assert!(
            m.slot(p, 1).unwrap().is_object() && !m.identical(m.slot(p, 1).unwrap(), nil).unwrap()
        );
        assert!(m.identical(m.slot(sema, 0).unwrap(), nil).unwrap());
        assert!(m.identical(m.slot(sched, 1).unwrap(), nil).unwrap());
    });
}

/// A timer whose semaphore's waiter has a priority the scheduler has no runnable list for
/// (a hostile image's) stops the run with a typed error that leaves the waiter on the
/// semaphore: it is not taken off the semaphore and then put on no list.
#[test]
fn a_timer_waiter_with_no_runnable_list_stays_on_its_semaphore() {
    let mut img = common::timer_prims_image();
    // Semaphore>>armAndWait: t
    //   self primSignal: t atMilliseconds: self millis. self wait. ^42
    let lits = [
        Lit::Sym("millis".into()),
        Lit::Sym("primSignal:atMilliseconds:".into()),
        Lit::Sym("wait".into()),
        Lit::Int(42),
    ];
    img.method(
        "Semaphore",
        "armAndWait:",
        1,
        1,
        &lits,
        &[112, 16, 112, 208, 241, 135, 112, 210, 135, 35, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let nil = vm.specials().nil;
        let timer = new_instance(m, "Semaphore", 3);
        m.set_slot(timer, 2, Value::int(0)).unwrap();
        let w = new_instance(m, "Process", 4);
        let c = m
            .alloc(
                vm.specials().method_context,
                Format::Pointers,
                ObjectSize {
                    slots: ctx::TEMPS + 16,
                    bytes: 0,
                },
            )
            .unwrap();
        m.set_slot(w, 1, c).unwrap();
        m.set_slot(w, 2, Value::int(99)).unwrap();
        m.set_slot(w, 3, timer).unwrap();
        m.set_slot(timer, 0, w).unwrap();
        m.set_slot(timer, 1, w).unwrap();
        let sema = new_instance(m, "Semaphore", 3);
        m.set_slot(sema, 2, Value::int(0)).unwrap();
        let r = send(vm, m, s, sema, "armAndWait:", &[timer]);
        assert!(r.is_err(), "{r:?}");
        assert!(
            m.identical(m.slot(timer, 0).unwrap(), w).unwrap(),
            "w still waits"
        );
        assert!(m.identical(m.slot(timer, 1).unwrap(), w).unwrap());
        assert!(m.identical(m.slot(w, 3).unwrap(), timer).unwrap());
        assert!(m.identical(m.slot(sema, 0).unwrap(), nil).unwrap());
    });
}

/// The environment variable that makes [`timer_child`] the second process of
/// [`a_delay_suspended_in_one_process_ends_when_resumed_in_another`]: the snapshot to
/// restore.
const CHILD_SNAPSHOT: &str = "COWHEAP_TEST_TIMER_SNAPSHOT";

/// The second process of the test below (a no-op in any other run): restores the snapshot
/// named by [`CHILD_SNAPSHOT`] on mini.image, resumes the run with a short longest wait
/// for the timer, and prints its answer or the error that stopped it.
#[test]
fn timer_child() {
    let Some(snap) = std::env::var_os(CHILD_SNAPSHOT) else {
        return;
    };
    let base = common::base("mini.image");
    let mut t = Tenant::restore(&base, std::path::Path::new(&snap)).unwrap();
    let mut vm = Vm::new(&t).unwrap();
    vm.max_timer_wait_ms = 1_000;
    let r = loop {
        match vm.resume(&mut t, 1_000_000) {
            Err(VmError::BudgetExhausted { .. }) => {}
            r => break r,
        }
    };
    match r {
        Ok(v) => println!("answer {:?}", v.as_int()),
        Err(e) => println!("error {e}"),
    }
}

/// A run waiting on a Delay, snapshotted after the timer was armed and resumed in another
/// process, ends when the Delay does: the image's millisecond clock goes on from where the
/// run left it, so the deadline the run armed (on that clock) stays 200 ms away. Before,
/// the clock restarted with the new process, the deadline read as the first process's age
/// away, and past the longest wait the run stopped with a deadlock.
#[test]
fn a_delay_suspended_in_one_process_ends_when_resumed_in_another() {
    if std::env::var_os(CHILD_SNAPSHOT).is_some() {
        return;
    }
    let base = common::base("mini.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    install(
        &mut vm,
        &mut t,
        &symbols,
        "Delay startTimerInterruptWatcher. 0",
    );
    install(
        &mut vm,
        &mut t,
        &symbols,
        &common::def("Object", "run", "run (Delay forMilliseconds: 200) wait. ^7"),
    );
    // The clock runs from this process's first reading: this one is well past 2 s.
    install(&mut vm, &mut t, &symbols, "Time millisecondClockValue");
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let sel = vm.evaluate(&mut t, &symbols, "#run", BIG).unwrap();
    let nil = vm.specials().nil;
    let mut r = vm.perform(&mut t, nil, sel, &[], 1);
    let mut steps = 0;
    while t.root(cowheap_vm::TIMER_ROOT).is_none() {
        assert!(matches!(r, Err(VmError::BudgetExhausted { .. })), "{r:?}");
        steps += 1;
        assert!(steps < 1_000_000, "the timer is never armed");
        r = vm.resume(&mut t, 1);
    }
    let dir = std::env::temp_dir().join(format!("cowheap-timer-child-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snap = dir.join("run.snapshot");
    t.save_snapshot(&snap).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "timer_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_SNAPSHOT, &snap)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("answer Some(7)"), "{stdout}");
}

/// The image's clock never goes back from one run of a tenant to the next: a run that went
/// on from a reading ahead of the process's clock (a run resumed from a process older than
/// this one, stood for by its clock root set 100 s ahead) ends with the clock there, and the
/// tenant's next run, performed on the same interpreter or a new one, goes on from it.
#[test]
fn the_images_clock_does_not_go_back_between_runs() {
    let base = common::base("mini.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    install(
        &mut vm,
        &mut t,
        &symbols,
        &common::def(
            "Object",
            "clk",
            "clk 1 to: 2000 do: [:i | i + 1]. ^Time millisecondClockValue",
        ),
    );
    let sel = vm.evaluate(&mut t, &symbols, "#clk", BIG).unwrap();
    let nil = vm.specials().nil;
    let clock =
        |vm: &mut Vm, t: &mut Tenant| vm.perform(t, nil, sel, &[], BIG).unwrap().as_int().unwrap();
    let now = clock(&mut vm, &mut t);
    let r = vm.perform(&mut t, nil, sel, &[], 10);
    assert!(matches!(r, Err(VmError::BudgetExhausted { .. })), "{r:?}");
    t.set_root(cowheap_vm::CLOCK_ROOT, Value::int(now + 100_000))
        .unwrap();
    let mut r = vm.resume(&mut t, BIG);
    while matches!(r, Err(VmError::BudgetExhausted { .. })) {
        r = vm.resume(&mut t, BIG);
    }
    let resumed = r.unwrap().as_int().unwrap();
    assert!(resumed >= now + 100_000, "{resumed} read, {now} before");
    let next = clock(&mut vm, &mut t);
    assert!(
        next >= resumed,
        "the clock went back from {resumed} to {next}"
    );
    let mut fresh = Vm::new(&t).unwrap();
    let later = clock(&mut fresh, &mut t);
    assert!(
        later >= next,
        "a new interpreter's clock went back from {next} to {later}"
    );
}
