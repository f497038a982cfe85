//! Walking objects and instances (primitives 77, 78, 138, 139), changing an object's class
//! (115) and switching processes (85-88, 167, 230): on synthetic methods, then on
//! `mini.image` with the image's own Smalltalk. Each runs on the flat heap and on a tenant.

mod common;
use common::{on_both, send};

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

fn class<M: ObjectMemory>(m: &M, name: &str) -> Value {
    m.root(&format!("class.{name}")).unwrap()
}

fn new_instance<M: ObjectMemory>(m: &mut M, name: &str, slots: usize) -> Value {
    let c = class(m, name);
    m.alloc(c, Format::Pointers, ObjectSize { slots, bytes: 0 })
        .unwrap()
}

fn is_nil(vm: &Vm, v: Value) -> bool {
    v.same_word(vm.specials().nil)
}

fn walk_image() -> SynthImage {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.define_class("Pair", "Object", 2, 0);
    img.define_class("Other", "Object", 2, 0);
    img.define_class("Triple", "Object", 3, 0);
    img.define_class("Box", "Object", 1, 0);
    img.define_class("Bag", "Object", 0, 2);
    let fallback_nil = [115u8, 124];
    img.method("Class", "someInstance", 0, 0, &[], &fallback_nil, 77);
    img.method("Object", "nextInstance", 0, 0, &[], &fallback_nil, 78);
    img.method("Object", "someObject", 0, 0, &[], &fallback_nil, 138);
    img.method("Object", "nextObject", 0, 0, &[], &fallback_nil, 139);
    img.method("Object", "changeClassTo:", 1, 1, &[], &fallback_nil, 115);
    img
}

#[test]
fn some_instance_and_next_instance_walk_the_instances_in_memory_order() {
    on_both!(walk_image(), |vm, m, s| {
        let pair = class(m, "Pair");
        let nil = vm.specials().nil;
        // None yet.
        let none = send(vm, m, s, pair, "someInstance", &[]).unwrap();
        assert!(is_nil(vm, none));
        let a = new_instance(m, "Pair", 2);
        let _other = new_instance(m, "Other", 2);
        let b = new_instance(m, "Pair", 2);
        let first = send(vm, m, s, pair, "someInstance", &[]).unwrap();
        assert!(m.identical(first, a).unwrap());
        let second = send(vm, m, s, a, "nextInstance", &[]).unwrap();
        assert!(m.identical(second, b).unwrap());
        let end = send(vm, m, s, b, "nextInstance", &[]).unwrap();
        assert!(is_nil(vm, end));
        // An immediate is in no walk: the primitive fails, the fallback answers nil.
        let r = send(vm, m, s, Value::int(3), "nextInstance", &[]).unwrap();
        assert!(is_nil(vm, r));
        // The walk of every object starts at the first object (nil) and follows the
        // memory's enumeration.
        let o = send(vm, m, s, nil, "someObject", &[]).unwrap();
        assert!(is_nil(vm, o));
        let mut all = Vec::new();
        m.enumerate_objects(&mut all).unwrap();
        assert!(m.identical(all[0], nil).unwrap());
        // (The first objects of a synthetic base include classless ones, which no send
        // reaches: the walk is checked over the last objects.)
        for w in all.windows(2).rev().take(40) {
            let next = send(vm, m, s, w[0], "nextObject", &[]).unwrap();
            assert!(m.identical(next, w[1]).unwrap());
        }
        let listed = |v: Value| all.iter().filter(|&&x| m.identical(x, v).unwrap()).count();
        assert_eq!((listed(a), listed(b)), (1, 1));
    });
}

#[test]
fn a_tenants_walk_lists_each_object_once_through_copies_and_becomes() {
    let (base, _) = walk_image().freeze().unwrap();
    let n = base.len();
    let base = Base::new(base);
    let mut t = Tenant::fork(&base);
    let box_class = class(&t, "Box");
    let pair = class(&t, "Pair");
    // A base object written (copied), one forwarded to a new object, a new object.
    let table = t.root("specialObjects").unwrap();
    let chars = t.slot(table, 24).unwrap();
    let a = t.slot(chars, 65).unwrap();
    t.set_slot(a, 0, Value::int(65)).unwrap();
    let b = t.slot(chars, 66).unwrap();
    let fresh = t
        .alloc(
            box_class,
            Format::Pointers,
            ObjectSize { slots: 1, bytes: 0 },
        )
        .unwrap();
    t.become_forward(b, fresh).unwrap();
    let mine = t
        .alloc(pair, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    let mut all = Vec::new();
    t.enumerate_objects(&mut all).unwrap();
    // Every base object but the one forwarded away, then the two new objects.
    assert_eq!(all.len(), n - 1 + 2);
    let count = |v: Value| all.iter().filter(|&&x| t.identical(x, v).unwrap()).count();
    assert_eq!(
        (count(a), count(b), count(fresh), count(mine)),
        (1, 1, 1, 1)
    );
    assert!(t.identical(all[all.len() - 1], mine).unwrap());
}

#[test]
fn change_class_keeps_identity_hash_and_contents_and_checks_the_layout() {
    on_both!(walk_image(), |vm, m, s| {
        let p = new_instance(m, "Pair", 2);
        m.set_slot(p, 0, Value::int(3)).unwrap();
        m.set_slot(p, 1, Value::int(4)).unwrap();
        let holder = new_instance(m, "Box", 1);
        m.set_slot(holder, 0, p).unwrap();
        let hash = m.identity_hash(p).unwrap();
        let other = new_instance(m, "Other", 2);
        let r = send(vm, m, s, p, "changeClassTo:", &[other]).unwrap();
        assert!(m.identical(r, p).unwrap());
        let other_class = class(m, "Other");
        assert!(m.identical(m.class_of(p).unwrap(), other_class).unwrap());
        let held = m.slot(holder, 0).unwrap();
        assert!(m.identical(held, p).unwrap());
        assert!(m.identical(m.class_of(held).unwrap(), other_class).unwrap());
        assert_eq!(m.slot(p, 0).unwrap().as_int(), Some(3));
        assert_eq!(m.slot(p, 1).unwrap().as_int(), Some(4));
        assert_eq!(m.identity_hash(p).unwrap(), hash);
        // Layouts that do not fit: fewer named fields, indexable, bytes; nil; immediates.
        let triple = new_instance(m, "Triple", 3);
        let bag = new_instance(m, "Bag", 0);
        let text = vm.string(m, "abc").unwrap();
        for arg in [triple, bag, text] {
            let r = send(vm, m, s, p, "changeClassTo:", &[arg]).unwrap();
            assert!(is_nil(vm, r), "a layout that does not fit is refused");
            assert!(m.identical(m.class_of(p).unwrap(), other_class).unwrap());
        }
        let nil = vm.specials().nil;
        let boxed = new_instance(m, "Box", 1);
        let r = send(vm, m, s, nil, "changeClassTo:", &[boxed]).unwrap();
        assert!(is_nil(vm, r));
        let r = send(vm, m, s, Value::int(5), "changeClassTo:", &[boxed]).unwrap();
        assert!(is_nil(vm, r));
        // A base object (a Character, one named field) becomes a Box.
        let chars = vm.specials().character_table.expect("a V3 character table");
        let a = m.slot(chars, 97).unwrap();
        let r = send(vm, m, s, a, "changeClassTo:", &[boxed]).unwrap();
        assert!(m.identical(r, a).unwrap());
        let box_class = class(m, "Box");
        let again = m.slot(chars, 97).unwrap();
        assert!(m.identical(m.class_of(again).unwrap(), box_class).unwrap());
        assert_eq!(m.slot(again, 0).unwrap().as_int(), Some(97));
    });
}

/// The processes image: `Semaphore>>waitFor: aProcess` (`aProcess resume. self wait.
/// ^42`) and `Semaphore>>wake` (`self signal. self wait. ^self`).
fn process_image() -> (SynthImage, cowheap_heap::Word) {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.with_processes();
    let lits = [
        Lit::Sym("resume".into()),
        Lit::Sym("wait".into()),
        Lit::Int(42),
    ];
    img.method(
        "Semaphore",
        "waitFor:",
        1,
        1,
        &lits,
        &[16, 208, 135, 112, 209, 135, 34, 124],
        0,
    );
    let lits = [Lit::Sym("signal".into()), Lit::Sym("wait".into())];
    let wake = img.method(
        "Semaphore",
        "wake",
        0,
        0,
        &lits,
        &[112, 208, 135, 112, 209, 135, 112, 124],
        0,
    );
    (img, wake)
}

fn semaphore<M: ObjectMemory>(m: &mut M) -> Value {
    let sema = new_instance(m, "Semaphore", 3);
    m.set_slot(sema, 2, Value::int(0)).unwrap();
    sema
}

#[test]
fn semaphores_and_resume_switch_between_processes() {
    let (img, wake) = process_image();
    let wake = Value::shared(wake);
    let (base, symbols) = img.freeze().unwrap();
    fn check<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, wake: Value) {
        let sched = m.root("processor").unwrap();
        let first = m.slot(sched, 1).unwrap();
        let nil = vm.specials().nil;
        // A signal with no waiter is kept; a wait takes it without switching.
        let sema = semaphore(m);
        send(vm, m, s, sema, "signal", &[]).unwrap();
        assert_eq!(m.slot(sema, 2).unwrap().as_int(), Some(1));
        let r = send(vm, m, s, sema, "wait", &[]).unwrap();
        assert!(m.identical(r, sema).unwrap());
        assert_eq!(m.slot(sema, 2).unwrap().as_int(), Some(0));
        // A process whose context runs `sema wake`.
        let mc = vm.specials().method_context;
        let c = common::context_running(vm, m, wake, sema);
        let p = new_instance(m, "Process", 4);
        m.set_slot(p, 1, c).unwrap();
        m.set_slot(p, 2, Value::int(4)).unwrap();
        // waitFor: resumes it (same priority: it waits its turn), waits, and it runs,
        // signals, and waits in turn, which lets the first process answer.
        let r = send(vm, m, s, sema, "waitFor:", &[p]).unwrap();
        assert_eq!(r.as_int(), Some(42));
        assert!(m.identical(m.slot(sched, 1).unwrap(), first).unwrap());
        assert!(
            m.identical(m.slot(sema, 0).unwrap(), p).unwrap(),
            "p waits on sema"
        );
        assert!(m.identical(m.slot(p, 3).unwrap(), sema).unwrap());
        let suspended = m.slot(p, 1).unwrap();
        assert!(m.identical(m.class_of(suspended).unwrap(), mc).unwrap());
        assert_eq!(m.slot(sema, 2).unwrap().as_int(), Some(0));
        // A wait with no process runnable is a deadlock: typed, and nothing changes.
        let lonely = semaphore(m);
        match send(vm, m, s, lonely, "wait", &[]) {
            Err(VmError::Deadlock { primitive, .. }) => assert_eq!(primitive, 86),
            other => panic!("expected a deadlock, got {other:?}"),
        }
        assert!(m.identical(m.slot(lonely, 0).unwrap(), nil).unwrap());
        assert!(m.identical(m.slot(sched, 1).unwrap(), first).unwrap());
        // The memory is still usable: the signal wakes p, which runs at the next wait.
        send(vm, m, s, sema, "signal", &[]).unwrap();
        assert!(m.identical(m.slot(sema, 0).unwrap(), nil).unwrap());
        let lists = m.slot(sched, 0).unwrap();
        let runnable = m.slot(lists, 3).unwrap();
        assert!(m.identical(m.slot(runnable, 0).unwrap(), p).unwrap());
        // Suspending a process that is not the active one fails (the fallback answers nil).
        let r = send(vm, m, s, p, "suspend", &[]).unwrap();
        assert!(is_nil(vm, r));
    }
    let mut flat = FlatHeap::from_base(&base);
    let mut vm = Vm::new(&flat).unwrap();
    check(&mut vm, &mut flat, &symbols, wake);
    let base = Base::new(base);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    check(&mut vm, &mut t, &symbols, wake);
}

// ---- mini.image ---------------------------------------------------------------------------

const IMAGE_BUDGET: u64 = 100_000_000;

fn eval<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, src: &str) -> Value {
    vm.evaluate(m, s, src, IMAGE_BUDGET)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn eval_int<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, src: &str) -> i64 {
    eval(vm, m, s, src)
        .as_int()
        .unwrap_or_else(|| panic!("{src}: not a SmallInteger"))
}

fn eval_print<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, src: &str) -> String {
    let v = eval(vm, m, s, src);
    vm.print_string(m, s, v, IMAGE_BUDGET)
        .unwrap_or_else(|e| panic!("{src} printString: {e}"))
}

/// Evaluates source in one memory of mini.image.
trait Mini {
    /// The printString of what `src` answers.
    fn print(&mut self, src: &str) -> String;
    /// What `src` answers, a SmallInteger.
    fn int(&mut self, src: &str) -> i64;
}

struct Run<'a, M> {
    vm: Vm,
    m: &'a mut M,
    s: &'a Symbols,
}

impl<M: ObjectMemory> Mini for Run<'_, M> {
    fn print(&mut self, src: &str) -> String {
        eval_print(&mut self.vm, self.m, self.s, src)
    }
    fn int(&mut self, src: &str) -> i64 {
        eval_int(&mut self.vm, self.m, self.s, src)
    }
}

/// Runs `f` on a flat heap and on a tenant of mini.image, with its number of objects.
fn on_mini(f: impl Fn(&mut dyn Mini, usize)) {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let n = heap.len();
    let mut flat = FlatHeap::from_base(&heap);
    let vm = Vm::new(&flat).unwrap();
    f(
        &mut Run {
            vm,
            m: &mut flat,
            s: &symbols,
        },
        n,
    );
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let vm = Vm::new(&t).unwrap();
    f(
        &mut Run {
            vm,
            m: &mut t,
            s: &symbols,
        },
        n,
    );
}

#[test]
fn mini_walks_every_object_and_every_instance() {
    on_mini(|r, objects| {
        assert_eq!(r.print("(3@4) class someInstance class == Point"), "true");
        assert_eq!(r.print("Object someObject"), "nil");
        assert_eq!(r.print("Object someObject nextObject"), "false");
        let n = r.int(
            "| o n | o := Object someObject. n := 0. \
             [0 == o] whileFalse: [n := n + 1. o := o nextObject]. n",
        );
        assert!(n as usize >= objects, "{n} objects walked of {objects}");
        assert_eq!(
            r.print(
                "| o n | o := Object someObject. n := 0. \
                 [0 == o] whileFalse: [o class == Point ifTrue: [n := n + 1]. o := o nextObject]. \
                 n = Point allInstances size"
            ),
            "true"
        );
        assert!(r.int("Point allInstances size") > 100);
        assert_eq!(r.print("Semaphore someInstance class == Semaphore"), "true");
        assert_eq!(r.print("SmallInteger someInstance"), "nil");
    });
}

const CHANGE_CLASS: &str = "Object compile: 'changeClassTo: anObject <primitive: 115> ^nil' \
                            classified: 'test' notifying: nil. 0";

#[test]
fn mini_change_class() {
    on_mini(|r, _| {
        assert_eq!(r.int(CHANGE_CLASS), 0);
        assert_eq!(
            r.print(
                "| p a h | p := 3@4. a := Array with: p. h := p identityHash. \
                 {(p changeClassTo: 1->2) == p. (a at: 1) class name. p key. p value. \
                 p identityHash = h}"
            ),
            "(true Association 3 4 true )"
        );
        assert_eq!(
            r.print("| p | p := 3@4. {p changeClassTo: 'abc'. p class name}"),
            "(nil Point )"
        );
    });
}

#[test]
fn mini_change_class_of_a_base_object_stays_in_its_tenant() {
    let base = common::base("mini.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t1 = Tenant::fork(&base);
    let mut vm1 = Vm::new(&t1).unwrap();
    let mut t2 = Tenant::fork(&base);
    let mut vm2 = Vm::new(&t2).unwrap();
    let points = eval_int(&mut vm2, &mut t2, &symbols, "Point allInstances size");
    eval_int(&mut vm1, &mut t1, &symbols, CHANGE_CLASS);
    let src = "| p | p := Point someInstance. p changeClassTo: 1->2. \
               {p class name. Point allInstances size. \
               (Association allInstances select: [:a | a == p]) size}";
    let r = eval(&mut vm1, &mut t1, &symbols, src);
    let text = vm1
        .print_string(&mut t1, &symbols, r, IMAGE_BUDGET)
        .unwrap();
    assert_eq!(text, format!("(Association {} 1 )", points - 1));
    let again = eval_int(&mut vm2, &mut t2, &symbols, "Point allInstances size");
    assert_eq!(again, points, "the other tenant's Points are untouched");
}

#[test]
fn mini_processes_fork_wait_signal_resume_and_yield() {
    on_mini(|r, _| {
        assert_eq!(
            r.int("| s | s := Semaphore new. [s signal] fork. s wait. 42"),
            42
        );
        assert_eq!(
            r.int("| s r | s := Semaphore new. r := 0. [r := 7. s signal] fork. s wait. r * 6"),
            42
        );
        // A higher priority runs at once; a lower one waits for the first to wait.
        assert_eq!(
            r.print(
                "| a p | a := OrderedCollection new. p := [a add: 1] newProcess. \
                 p priority: 6. p resume. a add: 2. a asArray"
            ),
            "(1 2 )"
        );
        assert_eq!(
            r.print(
                "| a p | a := OrderedCollection new. p := [a add: 1] newProcess. \
                 p priority: 3. p resume. a add: 2. a asArray"
            ),
            "(2 )"
        );
        assert_eq!(
            r.print(
                "| a | a := OrderedCollection new. [a add: 1] fork. a add: 2. \
                 Processor yield. a add: 3. a asArray"
            ),
            "(2 1 3 )"
        );
        assert_eq!(r.int("Processor activeProcess priority"), 4);
    });
}

#[test]
fn mini_a_wait_nothing_can_signal_is_a_deadlock_not_a_hang() {
    let base = common::base("mini.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    match vm.evaluate(&mut t, &symbols, "Semaphore new wait. 1", IMAGE_BUDGET) {
        // The idle process runs and asks to sleep with nothing runnable.
        Err(VmError::Deadlock { primitive, chain }) => {
            assert_eq!(primitive, 230);
            assert!(chain.to_string().contains("idleProcess"), "{chain}");
        }
        other => panic!("expected a deadlock, got {other:?}"),
    }
    // The tenant still runs (as the process that was active when it stopped).
    assert_eq!(eval_int(&mut vm, &mut t, &symbols, "3 + 4"), 7);
    // With the idle process taken, a second wait finds nothing runnable at once.
    match vm.evaluate(&mut t, &symbols, "Semaphore new wait. 1", IMAGE_BUDGET) {
        Err(VmError::Deadlock { primitive, .. }) => assert_eq!(primitive, 86),
        other => panic!("expected a deadlock, got {other:?}"),
    }
}

#[test]
fn mini_a_run_suspended_by_its_budget_in_another_process_resumes() {
    let base = common::base("mini.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let src = "| s r | s := Semaphore new. \
               [r := (1 to: 2000) inject: 0 into: [:a :b | a + b]. s signal] fork. \
               s wait. r";
    let mut stops = 0;
    let mut r = vm.evaluate(&mut t, &symbols, src, 3_000);
    while let Err(VmError::BudgetExhausted { .. }) = r {
        stops += 1;
        assert!(stops < 10_000, "the run does not end");
        r = vm.resume(&mut t, 3_000);
    }
    assert_eq!(r.unwrap().as_int(), Some(2_001_000));
    assert!(stops > 5, "{stops} stops");
}

#[test]
fn mini_delays_end_through_the_timer() {
    on_mini(|r, _| {
        // The snapshot's Delay machinery is restarted as the image's own startUp would.
        assert_eq!(r.int("Delay startTimerInterruptWatcher. 0"), 0);
        let waited = r.int(
            "| t | t := Time millisecondClockValue. (Delay forMilliseconds: 50) wait. \
             Time millisecondClockValue - t",
        );
        assert!((50..5_000).contains(&waited), "waited {waited} ms");
        assert_eq!(
            r.print(
                "| a | a := OrderedCollection new. \
                 [(Delay forMilliseconds: 30) wait. a add: 1] fork. a add: 2. \
                 (Delay forMilliseconds: 60) wait. a add: 3. a asArray"
            ),
            "(2 1 3 )"
        );
    });
}

#[test]
fn mini_a_timer_past_the_longest_wait_is_a_deadlock() {
    let base = common::base("mini.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    vm.max_timer_wait_ms = 20;
    eval_int(
        &mut vm,
        &mut t,
        &symbols,
        "Delay startTimerInterruptWatcher. 0",
    );
    let started = std::time::Instant::now();
    match vm.evaluate(
        &mut t,
        &symbols,
        "(Delay forMilliseconds: 60000) wait. 1",
        IMAGE_BUDGET,
    ) {
        Err(VmError::Deadlock { primitive, .. }) => assert_eq!(primitive, 230),
        other => panic!("expected a deadlock, got {other:?}"),
    }
    assert!(
        started.elapsed().as_secs() < 30,
        "it did not wait the minute"
    );
}

#[test]
fn scratch_forks_waits_and_walks() {
    let base = common::base("Scratch-1.4.0.6.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let mut int = |src: &str| eval_int(&mut vm, &mut t, &symbols, src);
    assert_eq!(
        int("| s | s := Semaphore new. [s signal] fork. s wait. 42"),
        42
    );
    assert_eq!(
        int(
            "| a | a := OrderedCollection new. [a add: 1] fork. a add: 2. \
             Processor yield. a add: 3. (a at: 1) * 100 + ((a at: 2) * 10) + (a at: 3)"
        ),
        213
    );
    assert_eq!(
        int("(3@4) class someInstance class == Point ifTrue: [1] ifFalse: [0]"),
        1
    );
    assert!(int("Point allInstances size") > 1000);
}

#[test]
fn a_walk_covers_the_objects_a_commit_added_to_the_base() {
    use cowheap_tenants::commit::{CommitRights, Repository};
    let (base, symbols) = walk_image().freeze().unwrap();
    let repo = Repository::new(Base::new(base), CommitRights::Anyone);
    let mut t1 = repo.fork();
    let pair = class(&t1, "Pair");
    let a = t1
        .alloc(pair, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    t1.set_slot(a, 0, Value::int(7)).unwrap();
    // Reached from a changed base object (a Character's one field), so it is committed.
    let table = t1.root("specialObjects").unwrap();
    let chars = t1.slot(table, 24).unwrap();
    let c = t1.slot(chars, 65).unwrap();
    t1.set_slot(c, 0, a).unwrap();
    let version = repo.commit(&mut t1, "test").unwrap();
    let pairs = |t: &Tenant| {
        let mut all = Vec::new();
        t.enumerate_objects(&mut all).unwrap();
        let n = all.len();
        let found: Vec<Value> = all
            .into_iter()
            .filter(|&v| t.identical(t.class_of(v).unwrap(), pair).unwrap())
            .collect();
        (n, found)
    };
    let (n, found) = pairs(&t1);
    assert_eq!(
        n,
        version.len(),
        "every object of the version, nothing private"
    );
    assert_eq!(found.len(), 1);
    assert!(t1.identical(found[0], a).unwrap());
    // A tenant of the new version finds it with someInstance.
    let mut t2 = repo.fork();
    let (_, found) = pairs(&t2);
    assert_eq!(found.len(), 1);
    let mut vm = Vm::new(&t2).unwrap();
    let r = send(&mut vm, &mut t2, &symbols, pair, "someInstance", &[]).unwrap();
    assert_eq!(t2.slot(r, 0).unwrap().as_int(), Some(7));
}

/// A tenant's class change of a base object is an ordinary write: the object keeps its
/// identity and hash, other tenants and the base keep the old class, and a commit publishes
/// the change.
#[test]
fn a_base_object_whose_class_a_tenant_changed_commits() {
    use cowheap_tenants::commit::{CommitRights, Repository};
    let (base, _) = walk_image().freeze().unwrap();
    let repo = Repository::new(Base::new(base), CommitRights::Anyone);
    let mut t = repo.fork();
    let table = t.root("specialObjects").unwrap();
    let chars = t.slot(table, 24).unwrap();
    let c = t.slot(chars, 66).unwrap();
    let hash = t.identity_hash(c).unwrap();
    let box_class = class(&t, "Box");
    ObjectMemory::set_class(&mut t, c, box_class).unwrap();
    assert!(t.identical(t.class_of(c).unwrap(), box_class).unwrap());
    assert_eq!(t.identity_hash(c).unwrap(), hash);
    assert!(t.identical(c, t.slot(chars, 66).unwrap()).unwrap());
    let other = repo.fork();
    assert!(
        !other
            .identical(other.class_of(c).unwrap(), box_class)
            .unwrap()
    );
    repo.commit(&mut t, "test").unwrap();
    let after = repo.fork();
    assert!(
        after
            .identical(after.class_of(c).unwrap(), box_class)
            .unwrap()
    );
    assert_eq!(after.identity_hash(c).unwrap(), hash);
    assert!(
        !other
            .identical(other.class_of(c).unwrap(), box_class)
            .unwrap()
    );
}
