//! Commit, abort, rebase and flatten against a naive repository: the committed state of every
//! version as a full copy, and each session (tenant) as a full copy of the version it stands
//! on plus its own objects.
//!
//! After every action, every session is compared with its model object by object (every base
//! object of its version and every object it allocated, and all they reach). Every commit and
//! rebase must succeed exactly when the model's does, and a refused one must name exactly the
//! objects the model finds in conflict and change nothing. New objects a commit writes are
//! numbered as documented (`cowheap::tenants::commit`): the changed objects in index order,
//! each class first and then its slots, breadth-first.

use cowheap::tenants::commit::{CommitError, CommitMode, CommitRights, Repository};
use cowheap::{Error, Format, MarkPolicy, ObjectIndex, ObjectSize, Tenant, TenantConfig, Value};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};

mod common;
use common::{OObj, OVal, cases, random_base};

/// One tenant and its model.
struct Session {
    t: Tenant,
    /// The version it stands on.
    version: usize,
    /// Its view: the version's objects (indices below the version's length), then its own.
    objs: Vec<OObj>,
    /// Base objects it changed since its last commit or abort.
    dirty: BTreeSet<usize>,
    /// References to its own objects, with their model objects.
    held: Vec<(Value, usize)>,
    /// References an abort made stale: each must be refused from then on.
    stale: Vec<Value>,
    /// Whether it records its reads (every check then reads every object of its version).
    recording: bool,
}

struct World {
    repo: Repository,
    /// The committed state of each version.
    versions: Vec<Vec<OObj>>,
    /// The base objects each version changed (empty for version 0).
    changes: Vec<BTreeSet<usize>>,
    sessions: Vec<Session>,
    nil: usize,
}

#[derive(Clone, Debug)]
enum Pick {
    Int(i64),
    Obj(usize),
}

#[derive(Clone, Debug)]
enum Action {
    Fork {
        private_marks: bool,
    },
    /// Starts or stops recording reads (every base read then leaves the fast path).
    Record {
        t: usize,
        on: bool,
    },
    Write {
        t: usize,
        obj: usize,
        slot: usize,
        value: Pick,
    },
    WriteByte {
        t: usize,
        obj: usize,
        offset: usize,
        byte: u8,
    },
    Alloc {
        t: usize,
        class: usize,
        slots: usize,
    },
    Become {
        t: usize,
        a: usize,
        b: usize,
    },
    Commit {
        t: usize,
    },
    Abort {
        t: usize,
    },
    Rebase {
        t: usize,
    },
    Flatten,
}

fn action() -> impl Strategy<Value = Action> {
    let pick = prop_oneof![
        (-9i64..9).prop_map(Pick::Int),
        any::<usize>().prop_map(Pick::Obj),
        any::<usize>().prop_map(Pick::Obj),
    ];
    prop_oneof![
        1 => any::<bool>().prop_map(|private_marks| Action::Fork { private_marks }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(t, on)| Action::Record { t, on }),
        6 => (any::<usize>(), any::<usize>(), 0..4usize, pick)
            .prop_map(|(t, obj, slot, value)| Action::Write { t, obj, slot, value }),
        2 => (any::<usize>(), any::<usize>(), 0..4usize, any::<u8>())
            .prop_map(|(t, obj, offset, byte)| Action::WriteByte { t, obj, offset, byte }),
        3 => (any::<usize>(), any::<usize>(), 0..3usize)
            .prop_map(|(t, class, slots)| Action::Alloc { t, class, slots }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(t, a, b)| Action::Become { t, a, b }),
        3 => any::<usize>().prop_map(|t| Action::Commit { t }),
        1 => any::<usize>().prop_map(|t| Action::Abort { t }),
        2 => any::<usize>().prop_map(|t| Action::Rebase { t }),
        1 => Just(Action::Flatten),
    ]
}

impl World {
    fn new(seed: u64) -> World {
        let (base, pristine) = random_base(seed);
        let nil = base.heap().index_of(base.heap().nil()).unwrap().get();
        let repo = Repository::new(base, CommitRights::Anyone);
        let mut w = World {
            repo,
            versions: vec![pristine],
            changes: vec![BTreeSet::new()],
            sessions: vec![],
            nil,
        };
        w.fork(false);
        w.fork(true);
        w
    }

    fn current(&self) -> usize {
        self.versions.len() - 1
    }

    fn fork(&mut self, private_marks: bool) {
        let cur = self.current();
        let t = if private_marks {
            let config = TenantConfig {
                quota: None,
                marks: MarkPolicy::Private,
            };
            Tenant::fork_with(&self.repo.current(), config)
        } else {
            self.repo.fork()
        };
        self.sessions.push(Session {
            t,
            version: cur,
            objs: self.versions[cur].clone(),
            dirty: BTreeSet::new(),
            held: vec![],
            stale: vec![],
            recording: false,
        });
    }

    /// The objects of the versions after `version` that `dirty` also holds.
    fn conflicts(&self, version: usize, dirty: &BTreeSet<usize>) -> Vec<ObjectIndex> {
        let mut out = BTreeSet::new();
        for changed in &self.changes[version + 1..] {
            out.extend(changed.intersection(dirty).copied());
        }
        out.into_iter()
            .map(|x| ObjectIndex::new(x).unwrap())
            .collect()
    }

    fn run(&mut self, a: &Action) {
        if self.sessions.is_empty() {
            return;
        }
        let n = self.sessions.len();
        let nil = self.nil;
        match *a {
            Action::Fork { private_marks } => self.fork(private_marks),
            Action::Record { t, on } => {
                let s = &mut self.sessions[t % n];
                s.t.record_reads(on).unwrap();
                s.recording = on;
                assert_eq!(s.t.reads_recorded().is_some(), on);
            }
            Action::Write {
                t,
                obj,
                slot,
                ref value,
            } => {
                let s = &mut self.sessions[t % n];
                let (cv, o) = s.object(obj, &self.versions);
                let (wv, ov) = match *value {
                    Pick::Int(i) => (Value::int(i), OVal::Imm(Value::int(i).word())),
                    Pick::Obj(k) => {
                        let (v, r) = s.object(k, &self.versions);
                        (v, OVal::Ref(r))
                    }
                };
                let ok = slot < s.objs[o].slots.len();
                let res = s.t.set_slot(cv, slot, wv);
                assert_eq!(res.is_ok(), ok, "write {a:?}: {res:?}");
                if ok {
                    s.objs[o].slots[slot] = ov;
                    s.touch(o, &self.versions);
                }
            }
            Action::WriteByte {
                t,
                obj,
                offset,
                byte,
            } => {
                let s = &mut self.sessions[t % n];
                let (cv, o) = s.object(obj, &self.versions);
                let ok = offset < s.objs[o].bytes.len();
                let res = s.t.set_bytes(cv, offset, &[byte]);
                assert_eq!(res.is_ok(), ok, "write {a:?}: {res:?}");
                if ok {
                    s.objs[o].bytes[offset] = byte;
                    s.touch(o, &self.versions);
                }
            }
            Action::Alloc { t, class, slots } => {
                let s = &mut self.sessions[t % n];
                let (cc, oc) = s.object(class, &self.versions);
                let size = ObjectSize { slots, bytes: 0 };
                let v = s.t.alloc(cc, Format::Pointers, size).unwrap();
                s.objs.push(OObj {
                    class: oc,
                    format: Format::Pointers,
                    hash: s.t.identity_hash(v).unwrap(),
                    slots: vec![OVal::Ref(nil); slots],
                    bytes: vec![],
                });
                s.held.push((v, s.objs.len() - 1));
            }
            Action::Become { t, a: ka, b: kb } => {
                let s = &mut self.sessions[t % n];
                let (va, oa) = s.object(ka, &self.versions);
                let (vb, ob) = s.object(kb, &self.versions);
                s.t.become_two_way(va, vb).unwrap();
                if oa != ob {
                    s.objs.swap(oa, ob);
                    s.touch(oa, &self.versions);
                    s.touch(ob, &self.versions);
                }
            }
            Action::Commit { t } => self.commit(t % n),
            Action::Abort { t } => {
                let cur = self.current();
                let s = &mut self.sessions[t % n];
                self.repo.abort(&mut s.t);
                // References to objects it committed stay; the rest are refused.
                let base_len = self.versions[s.version].len();
                let (kept, stale): (Vec<_>, Vec<_>) =
                    s.held.drain(..).partition(|&(_, o)| o < base_len);
                s.held = kept;
                s.stale.extend(stale.into_iter().map(|(v, _)| v));
                s.recording = false;
                s.objs = self.versions[cur].clone();
                s.version = cur;
                s.dirty.clear();
                assert_eq!(s.t.base().version() as usize, cur);
            }
            Action::Rebase { t } => {
                let cur = self.current();
                let (version, recording) =
                    (self.sessions[t % n].version, self.sessions[t % n].recording);
                let mut watched = self.sessions[t % n].dirty.clone();
                if recording {
                    // It read every object of its version.
                    watched.extend(0..self.versions[version].len());
                }
                let conflicts = self.conflicts(version, &watched);
                let s = &mut self.sessions[t % n];
                match self.repo.rebase(&mut s.t) {
                    Err(CommitError::Conflict { objects, .. }) => {
                        assert_eq!(objects, conflicts, "rebase conflicts");
                    }
                    Err(e) => panic!("rebase: {e}"),
                    Ok(b) => {
                        assert!(
                            conflicts.is_empty(),
                            "rebase should conflict on {conflicts:?}"
                        );
                        assert_eq!(b.version() as usize, cur);
                        s.move_to(&self.versions, cur);
                    }
                }
            }
            Action::Flatten => {
                let b = self.repo.flatten().unwrap();
                assert_eq!(b.version() as usize, self.current());
                assert_eq!(b.depth(), 0);
            }
        }
    }

    fn commit(&mut self, i: usize) {
        let cur = self.current();
        let conflicts = self.conflicts(self.sessions[i].version, &self.sessions[i].dirty);
        let s = &mut self.sessions[i];
        let res = self.repo.commit(&mut s.t, "anyone");
        if !conflicts.is_empty() {
            match res {
                Err(CommitError::Conflict { objects, version }) => {
                    assert_eq!(objects, conflicts);
                    assert_eq!(version as usize, s.version);
                }
                other => panic!("commit should conflict on {conflicts:?}: {other:?}"),
            }
            return;
        }
        let next = res.unwrap();
        if s.dirty.is_empty() {
            // Nothing to commit: the session moves to the current version, as a rebase.
            assert_eq!(
                next.version() as usize,
                cur,
                "an empty commit makes no version"
            );
            s.move_to(&self.versions, cur);
            return;
        }
        // The model's commit: the changed objects in index order, then new objects as met.
        let old_len = self.versions[s.version].len();
        let mut new = self.versions[cur].clone();
        let mut fresh: HashMap<usize, usize> = HashMap::new();
        let mut queue = std::collections::VecDeque::new();
        let mut number =
            |o: usize, new_len: &mut usize, queue: &mut std::collections::VecDeque<usize>| {
                if o < old_len {
                    return o;
                }
                *fresh.entry(o).or_insert_with(|| {
                    queue.push_back(o);
                    *new_len += 1;
                    *new_len - 1
                })
            };
        let mut new_len = new.len();
        let mut bodies = vec![];
        let translate = |obj: &OObj, number: &mut dyn FnMut(usize) -> usize| {
            let mut o = obj.clone();
            o.class = number(o.class);
            for v in &mut o.slots {
                if let OVal::Ref(r) = v {
                    *r = number(*r);
                }
            }
            o
        };
        for &x in &s.dirty {
            let body = translate(&s.objs[x], &mut |o| number(o, &mut new_len, &mut queue));
            new[x] = body;
        }
        while let Some(p) = queue.pop_front() {
            let body = translate(&s.objs[p], &mut |o| number(o, &mut new_len, &mut queue));
            bodies.push(body);
        }
        new.extend(bodies);
        assert_eq!(new.len(), new_len);
        assert_eq!(next.version() as usize, cur + 1);
        assert_eq!(next.len(), new_len, "objects in version {}", cur + 1);
        // The session stands on the new version; its uncommitted objects follow it.
        let mut renumber: HashMap<usize, usize> = fresh.clone();
        let mut objs = new.clone();
        for p in old_len..s.objs.len() {
            if !fresh.contains_key(&p) {
                renumber.insert(p, objs.len());
                objs.push(s.objs[p].clone());
            }
        }
        let map = |o: usize| if o < old_len { o } else { renumber[&o] };
        for o in &mut objs[new_len..] {
            remap(o, map);
        }
        for h in &mut s.held {
            h.1 = map(h.1);
        }
        s.objs = objs;
        s.version = cur + 1;
        self.changes.push(std::mem::take(&mut s.dirty));
        self.versions.push(new);
    }

    fn check(&mut self) {
        for s in &mut self.sessions {
            s.check(&self.versions);
        }
    }
}

fn remap(o: &mut OObj, f: impl Fn(usize) -> usize) {
    o.class = f(o.class);
    for v in &mut o.slots {
        if let OVal::Ref(r) = v {
            *r = f(*r);
        }
    }
}

impl Session {
    /// The model of a move to version `cur` with no conflict (a rebase, or an empty commit):
    /// its own bodies (its changed base objects and its objects) follow it, renumbered past
    /// the new version's objects; the version's other objects are the version's.
    fn move_to(&mut self, versions: &[Vec<OObj>], cur: usize) {
        let old_len = versions[self.version].len();
        let new_len = versions[cur].len();
        let shift = |o: usize| {
            if o < old_len {
                o
            } else {
                o - old_len + new_len
            }
        };
        let mut objs = versions[cur].clone();
        for &x in &self.dirty {
            objs[x] = self.objs[x].clone();
            remap(&mut objs[x], shift);
        }
        for o in &self.objs[old_len..] {
            let mut o = o.clone();
            remap(&mut o, shift);
            objs.push(o);
        }
        for h in &mut self.held {
            h.1 = shift(h.1);
        }
        self.objs = objs;
        self.version = cur;
    }

    fn base_len(&self, versions: &[Vec<OObj>]) -> usize {
        versions[self.version].len()
    }

    /// The `k`th object this session can name: a base object of its version, or one it holds.
    fn object(&self, k: usize, versions: &[Vec<OObj>]) -> (Value, usize) {
        let base = self.base_len(versions);
        let i = k % (base + self.held.len());
        if i < base {
            (Value::base(ObjectIndex::new(i).unwrap()), i)
        } else {
            self.held[i - base]
        }
    }

    fn touch(&mut self, o: usize, versions: &[Vec<OObj>]) {
        if o < self.base_len(versions) {
            self.dirty.insert(o);
        }
    }

    /// Everything the session can reach equals its model; distinct model objects are
    /// distinct in the tenant; stale references are refused.
    fn check(&mut self, versions: &[Vec<OObj>]) {
        let t = &self.t;
        let mut rev: HashMap<usize, Value> = HashMap::new();
        let mut todo: Vec<(Value, usize)> = (0..self.base_len(versions))
            .map(|x| (Value::base(ObjectIndex::new(x).unwrap()), x))
            .chain(self.held.iter().copied())
            .collect();
        let mut done = BTreeSet::new();
        while let Some((v, o)) = todo.pop() {
            match rev.get(&o) {
                Some(&known) => assert!(t.identical(v, known).unwrap(), "{v:?} is {known:?}"),
                None => {
                    rev.insert(o, v);
                }
            }
            if !done.insert(o) {
                continue;
            }
            let obj = &self.objs[o];
            assert_eq!(t.identity_hash(v).unwrap(), obj.hash, "hash of {o}");
            assert_eq!(t.format(v).unwrap(), obj.format, "format of {o}");
            assert_eq!(t.bytes(v).unwrap(), &obj.bytes[..], "bytes of {o}");
            assert_eq!(t.size(v).unwrap().slots, obj.slots.len(), "size of {o}");
            todo.push((t.class_of(v).unwrap(), obj.class));
            for (j, &ov) in obj.slots.iter().enumerate() {
                let cv = t.slot(v, j).unwrap();
                match ov {
                    OVal::Imm(w) => assert_eq!(cv.word(), w, "slot {j} of {o}"),
                    OVal::Ref(r) => todo.push((cv, r)),
                }
            }
        }
        let distinct: Vec<(usize, Value)> = rev.into_iter().collect();
        for (a, &(oa, va)) in distinct.iter().enumerate() {
            for &(ob, vb) in &distinct[a + 1..] {
                assert_eq!(
                    t.identical(va, vb).unwrap(),
                    oa == ob,
                    "identity of {oa}, {ob}"
                );
            }
        }
        for &v in &self.stale {
            assert!(
                matches!(t.identity_hash(v), Err(Error::Collected(_))),
                "a reference from before an abort is refused"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn commits_match_a_naive_repository(
        seed in any::<u64>(),
        actions in prop::collection::vec(action(), 1..50),
    ) {
        let mut w = World::new(seed);
        for a in &actions {
            w.run(a);
            w.check();
        }
    }
}

/// The repository's rights: a principal not named is refused and nothing changes.
#[test]
fn commit_rights_are_checked() {
    let (base, _) = random_base(7);
    let heap = base.heap();
    let x = heap
        .indices()
        .find(|&x| heap.size(x).unwrap().slots > 0)
        .expect("an object with slots");
    let repo = Repository::new(base.clone(), CommitRights::only(["owner"]));
    let mut t = repo.fork();
    t.set_slot(Value::base(x), 0, Value::int(5)).unwrap();
    let before = t.stats();
    let err = repo.commit(&mut t, "intruder").unwrap_err();
    assert!(
        matches!(err, CommitError::NotPermitted { ref who } if who == "intruder"),
        "{err}"
    );
    assert_eq!(repo.current().version(), 0);
    assert_eq!(t.stats(), before);
    assert!(repo.commit(&mut t, "owner").is_ok());
    assert_eq!(repo.current().version(), 1);
}

/// Read-write mode: a tenant that read an object a later version changed cannot commit;
/// write-write lets it.
#[test]
fn read_write_conflicts_need_recorded_reads() {
    let (base, _) = random_base(3);
    let heap = base.heap();
    let mut with_slots = heap.indices().filter(|&x| heap.size(x).unwrap().slots > 0);
    let (a, b) = (with_slots.next().unwrap(), with_slots.next().unwrap());
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut reader = repo.fork();
    let mut writer = repo.fork();
    // The writer changes object a and commits.
    writer.set_slot(Value::base(a), 0, Value::int(1)).unwrap();
    // The reader reads object a (recorded), then writes object b.
    assert!(matches!(
        repo.commit_with(&mut reader, "r", CommitMode::ReadWrite, &[]),
        Err(CommitError::ReadsNotRecorded)
    ));
    reader.record_reads(true).unwrap();
    reader.slot(Value::base(a), 0).unwrap();
    reader.set_slot(Value::base(b), 0, Value::int(2)).unwrap();
    assert!(reader.reads_recorded().unwrap().contains(&a.as_u32()));
    // A writer's later write to the copy records no read, as `set_slot`'s does not.
    let recorded = reader.reads_recorded().unwrap().len();
    assert!(
        reader
            .writer()
            .try_set_slot(Value::base(b), 0, Value::int(2))
    );
    assert_eq!(reader.reads_recorded().unwrap().len(), recorded);
    assert!(
        writer
            .writer()
            .try_set_slot(Value::base(a), 0, Value::int(1))
    );
    repo.commit(&mut writer, "w").unwrap();
    // Committed, the copy is a forwarder to the version's object: a writer leaves the next
    // write to the tenant, which makes it.
    assert!(
        !writer
            .writer()
            .try_set_slot(Value::base(a), 0, Value::int(1))
    );
    writer.set_slot(Value::base(a), 0, Value::int(1)).unwrap();
    assert!(
        writer
            .writer()
            .try_set_slot(Value::base(a), 0, Value::int(1))
    );
    match repo.commit_with(&mut reader, "r", CommitMode::ReadWrite, &[]) {
        Err(CommitError::Conflict { objects, .. }) => assert_eq!(objects, vec![a]),
        other => panic!("expected a read-write conflict: {other:?}"),
    }
    assert_eq!(repo.current().version(), 1);
    // Write-write: no conflict (the reader did not write object a).
    repo.commit(&mut reader, "r").unwrap();
    let fresh = repo.fork();
    assert_eq!(fresh.slot(Value::base(a), 0).unwrap().as_int(), Some(1));
    assert_eq!(fresh.slot(Value::base(b), 0).unwrap().as_int(), Some(2));
    // Recording stopped, the tenant reads on its fast path again and keeps its view.
    reader.record_reads(false).unwrap();
    assert!(reader.reads_recorded().is_none());
    assert_eq!(reader.slot(Value::base(b), 0).unwrap().as_int(), Some(2));
}

/// A base object forwarded by `become_forward` cannot be committed: typed error, nothing
/// changes.
#[test]
fn a_forwarded_base_object_is_refused() {
    let (base, _) = random_base(11);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let (a, b) = (
        Value::base(ObjectIndex::new(1).unwrap()),
        Value::base(ObjectIndex::new(2).unwrap()),
    );
    t.become_forward(a, b).unwrap();
    let err = repo.commit(&mut t, "x").unwrap_err();
    assert!(matches!(err, CommitError::Forwarded { index: 1 }), "{err}");
    assert_eq!(repo.current().version(), 0);
    assert!(t.identical(a, b).unwrap());
}

/// A tenant of another repository's base is refused.
#[test]
fn a_foreign_base_is_refused() {
    let (base, _) = random_base(5);
    let (other, _) = random_base(5);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = Tenant::fork(&other);
    assert!(matches!(
        repo.commit(&mut t, "x"),
        Err(CommitError::ForeignBase { .. })
    ));
    assert!(matches!(
        repo.rebase(&mut t),
        Err(CommitError::ForeignBase { .. })
    ));
}

/// An abort onto another history refuses the references to objects the tenant committed:
/// they forward to objects of the history they were committed in, which in the new one are
/// other objects. In the same history they keep leading to them.
#[test]
fn an_abort_onto_another_history_refuses_committed_references() {
    let (base, _) = random_base(7);
    let (other, _) = random_base(8);
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let heap = base.heap();
    let holder = heap
        .indices()
        .find(|&x| heap.size(x).is_ok_and(|s| s.slots > 0))
        .map(Value::base)
        .unwrap();
    let class = Tenant::fork(&base).class_of(holder).unwrap();
    let commit_one = |repo: &Repository| {
        let mut t = repo.fork();
        let o = t
            .alloc_with(class, Format::Pointers, &[Value::int(41)], &[])
            .unwrap();
        t.set_slot(holder, 0, o).unwrap();
        repo.commit(&mut t, "x").unwrap();
        (t, o)
    };
    // The same history: the committed object still reads as itself.
    let (mut t, o) = commit_one(&repo);
    repo.abort(&mut t);
    assert_eq!(t.slot(o, 0).unwrap().as_int(), Some(41));
    // Another history published: the reference is refused, not read as another object.
    let (mut t, o) = commit_one(&repo);
    repo.publish(other);
    repo.abort(&mut t);
    assert!(matches!(t.slot(o, 0), Err(Error::Collected(_))));
}

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images`.
fn image(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("COWHEAP_IMAGES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/images").into());
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images",
        path.display()
    );
    path
}

/// 100 tenants of the Scratch base edit disjoint objects and one shared object, each also
/// adding an object of its own: the first writer of the shared object wins, the others get a
/// conflict naming it, abort, redo and commit. Every commit is then visible to new tenants,
/// none to a tenant forked before the first, and flattening changes no answer.
#[test]
fn scratch_base_hundred_tenants_commit() {
    let (heap, _) =
        cowheap::open_base(image("Scratch-1.4.0.6.image"), cowheap::Verification::Full).unwrap();
    let base = cowheap::Base::new(heap);
    let heap = base.heap();
    // Pointer objects with two slots or more, past the first few (nil, true, false...).
    let targets: Vec<ObjectIndex> = heap
        .indices()
        .skip(100)
        .filter(|&x| {
            heap.format(x).unwrap() == Format::Pointers && heap.size(x).unwrap().slots >= 2
        })
        .take(101)
        .collect();
    let (shared, own) = (targets[0], &targets[1..]);
    let repo = Repository::new(base.clone(), CommitRights::only(["editor"]));
    let before = repo.fork();
    let mut tenants: Vec<Tenant> = (0..100).map(|_| repo.fork()).collect();
    let class = before.class_of(Value::base(own[0])).unwrap();
    let edit = |t: &mut Tenant, i: usize| -> (Value, u32) {
        t.set_slot(Value::base(own[i]), 0, Value::int(i as i64))
            .unwrap();
        let mine = t
            .alloc_with(class, Format::Pointers, &[Value::int(-(i as i64))], &[])
            .unwrap();
        t.set_slot(Value::base(own[i]), 1, mine).unwrap();
        if i.is_multiple_of(2) {
            t.set_slot(Value::base(shared), 0, Value::int(1000 + i as i64))
                .unwrap();
        }
        (mine, t.identity_hash(mine).unwrap())
    };
    let mut hashes = vec![0; 100];
    let mut conflicts = 0;
    for (i, t) in tenants.iter_mut().enumerate() {
        let (mut mine, hash) = edit(t, i);
        hashes[i] = hash;
        assert!(matches!(
            repo.commit(t, "visitor"),
            Err(CommitError::NotPermitted { .. })
        ));
        match repo.commit(t, "editor") {
            Ok(_) => {}
            Err(CommitError::Conflict { objects, .. }) => {
                assert!(
                    i % 2 == 0 && i > 0,
                    "tenant {i} conflicts only on the shared object"
                );
                assert_eq!(objects, vec![shared]);
                conflicts += 1;
                assert!(matches!(repo.rebase(t), Err(CommitError::Conflict { .. })));
                repo.abort(t);
                assert!(matches!(t.slot(mine, 0), Err(cowheap::Error::Collected(_))));
                let (again, hash) = edit(t, i);
                (mine, hashes[i]) = (again, hash);
                repo.commit(t, "editor").unwrap();
            }
            Err(e) => panic!("tenant {i}: {e}"),
        }
        // The committer's own reference now names the committed object.
        assert_eq!(t.slot(mine, 0).unwrap().as_int(), Some(-(i as i64)));
        assert!(
            t.identical(mine, t.slot(Value::base(own[i]), 1).unwrap())
                .unwrap()
        );
        // What is left of its own are forwarders, which collection frees.
        t.collect();
        assert_eq!(
            t.stats().private_bytes,
            0,
            "nothing of tenant {i}'s own is left"
        );
    }
    assert_eq!(conflicts, 49);
    assert_eq!(repo.current().version(), 100);
    assert_eq!(repo.current().len(), heap.len() + 100);
    let check = |t: &Tenant| {
        for (i, &x) in own.iter().enumerate() {
            assert_eq!(t.slot(Value::base(x), 0).unwrap().as_int(), Some(i as i64));
            let mine = t.slot(Value::base(x), 1).unwrap();
            assert_eq!(t.identity_hash(mine).unwrap(), hashes[i]);
            assert_eq!(t.slot(mine, 0).unwrap().as_int(), Some(-(i as i64)));
            assert!(t.identical(t.class_of(mine).unwrap(), class).unwrap());
        }
        assert_eq!(t.slot(Value::base(shared), 0).unwrap().as_int(), Some(1098));
    };
    check(&repo.fork());
    // The tenant forked before the first commit sees none of it.
    for &x in own.iter().chain([&shared]) {
        assert_eq!(
            before.slot(Value::base(x), 0).unwrap().word(),
            heap.slot_word(x, 0).unwrap()
        );
    }
    assert_eq!(repo.current().depth(), 100);
    let flat = repo.flatten().unwrap();
    assert_eq!((flat.version(), flat.depth()), (100, 0));
    check(&repo.fork());
    // A tenant of the layered lineage rebases onto the flattened one and commits there.
    let mut late = tenants.pop().unwrap();
    late.set_slot(Value::base(shared), 1, Value::int(77))
        .unwrap();
    repo.commit(&mut late, "editor").unwrap();
    let newest = repo.fork();
    assert_eq!(
        newest.slot(Value::base(shared), 1).unwrap().as_int(),
        Some(77)
    );
    check(&newest);
}

/// Flattening on a background thread into an image file: the file serves the version (mapped,
/// verified), a tenant on the layered version keeps it alive and working, and the layered
/// chain is freed when the last such tenant goes.
#[test]
fn flattening_in_the_background_to_a_file_frees_unused_versions() {
    let base = cowheap::Base::new(cowheap::synth::image(2_000, 3));
    let g = base.heap().root("Smalltalk").unwrap();
    let repo = std::sync::Arc::new(Repository::new(base, CommitRights::Anyone));
    for i in 0..10 {
        let mut t = repo.fork();
        t.set_slot(g, 0, Value::int(i)).unwrap();
        repo.commit(&mut t, "x").unwrap();
    }
    let layered = std::sync::Arc::downgrade(&repo.current());
    let holder = repo.fork();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v10.cowheap");
    let flat = repo
        .flatten_in_background(Some(path.clone()))
        .join()
        .unwrap()
        .unwrap();
    assert!(flat.heap().is_mapped());
    assert_eq!((flat.version(), flat.depth()), (10, 0));
    assert_eq!(repo.fork().slot(g, 0).unwrap().as_int(), Some(9));
    let reopened = cowheap::BaseHeap::open(&path).unwrap();
    let gx = reopened.index_of(g).unwrap();
    assert_eq!(reopened.slot_word(gx, 0).unwrap().as_int(), Some(9));
    assert!(layered.upgrade().is_some(), "a tenant still stands on it");
    assert_eq!(holder.slot(g, 0).unwrap().as_int(), Some(9));
    drop(holder);
    assert!(
        layered.upgrade().is_none(),
        "no one uses the layered version: freed"
    );
}

/// Queries on the database's behalf, run by the image's own code: a read-only send is
/// answered from a scratch tenant that leaves nothing behind; a send that writes a base
/// object is stopped there and names the objects to bring to the caller, who runs it in a
/// tenant of its own.
#[test]
fn queries_run_image_code_read_only_in_a_scratch_tenant() {
    use cowheap::tenants::commit::Query;
    use cowheap_vm::{Symbols, Vm};
    let (heap, _) = cowheap::open_base(image("mini.image"), cowheap::Verification::Full).unwrap();
    let symbols = Symbols::from_base(&heap);
    let base = cowheap::Base::new(heap);
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let budget = 50_000_000;
    // 30 factorial: LargePositiveIntegers made in the scratch tenant, printed there.
    let answer = repo.query(None, |t| {
        let mut vm = Vm::new(t).unwrap();
        let f = vm
            .send_named(t, &symbols, Value::int(30), "factorial", &[], budget)
            .unwrap();
        vm.print_string(t, &symbols, f, budget).unwrap()
    });
    match answer {
        Query::Answered(text) => assert_eq!(text, "265252859812191058636308480000000"),
        other => panic!("a read-only query: {other:?}"),
    }
    // `Smalltalk at: #Transcript put: 3` writes the base's system dictionary.
    let query = repo.query(None, |t| {
        let mut vm = Vm::new(t).unwrap();
        let smalltalk = vm.global(t, "Smalltalk").unwrap();
        let key = symbols.get("Transcript").unwrap();
        vm.send_named(
            t,
            &symbols,
            smalltalk,
            "at:put:",
            &[key, Value::int(3)],
            budget,
        )
    });
    let Query::WouldWrite { object, read } = query else {
        panic!("a writing query is stopped");
    };
    assert!(
        read.contains(&object) || !read.is_empty(),
        "it names what it read"
    );
    // The caller runs it in a tenant of its own, where the write lands; the base and other
    // tenants are untouched.
    let mut own = repo.fork();
    let mut vm = Vm::new(&own).unwrap();
    let smalltalk = vm.global(&own, "Smalltalk").unwrap();
    let key = symbols.get("Transcript").unwrap();
    vm.send_named(
        &mut own,
        &symbols,
        smalltalk,
        "at:put:",
        &[key, Value::int(3)],
        budget,
    )
    .unwrap();
    assert_eq!(vm.global(&own, "Transcript").unwrap().as_int(), Some(3));
    let other = repo.fork();
    let vm2 = Vm::new(&other).unwrap();
    assert_ne!(vm2.global(&other, "Transcript").unwrap().as_int(), Some(3));
    assert_eq!(repo.current().version(), 0);
}

/// Two processes' repositories over the same base (two nodes): one commits through a
/// persisting step that writes the layer's bytes; the other applies them and has the same
/// version (same fingerprint, same answers), and the same conflict rules hold across them. A
/// failed persist publishes nothing.
#[test]
fn layers_carry_a_version_to_another_repository() {
    use cowheap::tenants::commit::Layer;
    let base_a = cowheap::Base::new(cowheap::synth::image(3_000, 9));
    let base_b = cowheap::Base::new(cowheap::synth::image(3_000, 9));
    let g = base_a.heap().root("Smalltalk").unwrap();
    let a = Repository::new(base_a.clone(), CommitRights::Anyone);
    let b = Repository::new(base_b, CommitRights::Anyone);
    let mut ta = a.fork();
    let mut tb = b.fork();
    let class = ta.class_of(g).unwrap();
    let new = ta
        .alloc_with(class, Format::Pointers, &[Value::int(42)], &[])
        .unwrap();
    ta.set_slot(g, 0, new).unwrap();
    tb.set_slot(g, 0, Value::int(1)).unwrap();
    // A failing persist: nothing is published.
    let failed = a.commit_through(&mut ta, "a", CommitMode::WriteWrite, &[], |_| {
        Err(std::io::Error::other("the store refused"))
    });
    assert!(matches!(failed, Err(CommitError::Persist(_))));
    assert_eq!(a.current().version(), 0);
    assert_eq!(
        ta.slot(ta.slot(g, 0).unwrap(), 0).unwrap().as_int(),
        Some(42)
    );
    let mut sent = vec![];
    let v1 = a
        .commit_through(&mut ta, "a", CommitMode::WriteWrite, &[], |layer| {
            sent = layer.to_bytes();
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
    let layer = Layer::from_bytes(&sent).unwrap();
    assert_eq!(
        (layer.parent, layer.version(), layer.changed.len()),
        (0, 1, 1)
    );
    let w1 = b.apply(&layer).unwrap();
    assert_eq!(w1.fingerprint(), v1.fingerprint());
    assert!(matches!(
        b.apply(&layer),
        Err(CommitError::OutOfOrder { .. })
    ));
    let fresh = b.fork();
    let obj = fresh.slot(g, 0).unwrap();
    assert_eq!(fresh.slot(obj, 0).unwrap().as_int(), Some(42));
    // B's tenant changed the same object on version 0: the conflict is found on B too.
    match b.commit(&mut tb, "b") {
        Err(CommitError::Conflict {
            objects,
            version: 0,
        }) => {
            assert_eq!(objects, vec![base_a.heap().index_of(g).unwrap()])
        }
        other => panic!("expected a conflict: {other:?}"),
    }
    // A layer of another history is refused.
    let other = Repository::new(
        cowheap::Base::new(cowheap::synth::image(3_000, 10)),
        CommitRights::Anyone,
    );
    assert!(matches!(
        other.apply(&layer),
        Err(CommitError::ForeignLayer)
    ));
    // A snapshot taken on the layered version restores on its flattened form.
    let snap = fresh.snapshot();
    let flat = b.flatten().unwrap();
    assert_eq!(flat.fingerprint(), v1.fingerprint());
    let restored = Tenant::restore_from(&flat, &snap).unwrap();
    let obj = restored.slot(g, 0).unwrap();
    assert_eq!(restored.slot(obj, 0).unwrap().as_int(), Some(42));
}

/// A part of the base (here the objects a root reaches, as a segment's members would be)
/// with rights of its own: a principal the part does not name cannot commit a change to it,
/// the refusal lists exactly the protected objects changed and changes nothing, and changes
/// elsewhere commit as before.
#[test]
fn a_protected_part_of_the_base_is_committed_only_by_its_owners() {
    let base = cowheap::Base::new(cowheap::synth::image(2_000, 5));
    let heap = base.heap();
    // The objects within two steps of the main root.
    let root = heap.index_of(heap.root("Smalltalk").unwrap()).unwrap();
    let mut part = vec![root];
    for i in 0..heap.size(root).unwrap().slots {
        if let Some(x) = heap.slot_word(root, i).unwrap().as_base() {
            part.push(x);
        }
    }
    part.sort();
    part.dedup();
    let outside = heap
        .indices()
        .find(|x| !part.contains(x) && heap.size(*x).unwrap().slots > 0)
        .unwrap();
    let inside: Vec<ObjectIndex> = part
        .iter()
        .copied()
        .filter(|&x| heap.size(x).unwrap().slots > 0)
        .take(2)
        .collect();
    assert_eq!(inside.len(), 2);
    let repo = Repository::new(base.clone(), CommitRights::only(["owner", "guest"]));
    repo.protect(part.iter().copied(), CommitRights::only(["owner"]));
    let mut t = repo.fork();
    for &x in &inside {
        t.set_slot(Value::base(x), 0, Value::int(1)).unwrap();
    }
    t.set_slot(Value::base(outside), 0, Value::int(2)).unwrap();
    match repo.commit(&mut t, "guest") {
        Err(CommitError::Protected { who, objects }) => {
            assert_eq!(who, "guest");
            assert_eq!(objects, inside);
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    assert_eq!(repo.current().version(), 0);
    assert_eq!(t.slot(Value::base(inside[0]), 0).unwrap().as_int(), Some(1));
    // The guest may commit outside the part.
    let mut g = repo.fork();
    g.set_slot(Value::base(outside), 0, Value::int(3)).unwrap();
    repo.commit(&mut g, "guest").unwrap();
    // The owner's tenant changed `outside` too, which the guest committed since: a conflict.
    assert!(matches!(
        repo.commit(&mut t, "owner"),
        Err(CommitError::Conflict { .. })
    ));
    // A tenant of the owner's that changes only the part commits it.
    let mut o = repo.fork();
    for &x in &inside {
        o.set_slot(Value::base(x), 0, Value::int(9)).unwrap();
    }
    repo.commit(&mut o, "owner").unwrap();
    let fresh = repo.fork();
    assert_eq!(
        fresh.slot(Value::base(inside[1]), 0).unwrap().as_int(),
        Some(9)
    );
    assert_eq!(
        fresh.slot(Value::base(outside), 0).unwrap().as_int(),
        Some(3)
    );
}

/// The registry's published base moves to each committed version: tenants spawned afterwards
/// see it, tenants spawned before keep exactly what they saw; by default no one may commit.
#[test]
fn a_registry_publishes_committed_versions() {
    use cowheap::{Registry, TenantConfig};
    let base = cowheap::Base::new(cowheap::synth::image(1_000, 8));
    let g = base.heap().root("Smalltalk").unwrap();
    let closed = Registry::new(base.clone());
    let id = closed.spawn();
    closed.with(id, |t| t.set_slot(g, 0, Value::int(5)).unwrap());
    assert!(matches!(
        closed.commit(id, "anyone"),
        Some(Err(CommitError::NotPermitted { .. }))
    ));
    let registry =
        Registry::with_rights(base, TenantConfig::default(), CommitRights::only(["ops"]));
    let (early, writer) = (registry.spawn(), registry.spawn());
    let before = registry
        .with(early, |t| t.slot(g, 0).unwrap().word())
        .unwrap();
    registry.with(writer, |t| t.set_slot(g, 0, Value::int(7)).unwrap());
    let v1 = registry.commit(writer, "ops").unwrap().unwrap();
    assert_eq!(registry.current().version(), 1);
    assert!(std::sync::Arc::ptr_eq(&registry.current(), &v1));
    let late = registry.spawn();
    assert_eq!(
        registry
            .with(late, |t| t.slot(g, 0).unwrap().as_int())
            .unwrap(),
        Some(7)
    );
    assert_eq!(
        registry
            .with(early, |t| t.slot(g, 0).unwrap().word())
            .unwrap(),
        before
    );
    assert_eq!(
        registry
            .repository()
            .rebase(&mut registry.remove(early).unwrap())
            .unwrap()
            .version(),
        1
    );
}

/// A read of an object a version added (no mark: past the original heap), by a tenant that
/// has copied something, costs the lookups `locate` makes for it and no more: the
/// out-of-line path's table probe counts no miss for an object with no mark.
#[test]
fn an_object_a_version_added_costs_the_lookups_of_locate() {
    let (base, _) = random_base(5);
    let heap = base.heap();
    let mut with_slots = heap.indices().filter(|&x| heap.size(x).unwrap().slots > 0);
    let (x, y) = (with_slots.next().unwrap(), with_slots.next().unwrap());
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut w = repo.fork();
    let class = w.class_of(Value::base(x)).unwrap();
    let n = w
        .alloc_with(class, Format::Pointers, &[Value::int(9)], &[])
        .unwrap();
    w.set_slot(Value::base(x), 0, n).unwrap();
    repo.commit(&mut w, "w").unwrap();
    let mut t = repo.fork();
    let added = t.slot(Value::base(x), 0).unwrap();
    let index = added.word().as_base().expect("a base reference").get();
    assert!(index >= heap.len(), "{index} is not past the heap");
    // The tenant copies something else: its table is not empty.
    t.set_slot(Value::base(y), 0, Value::int(1)).unwrap();
    let before = t.stats().lookups;
    for _ in 0..10 {
        t.identity_word(added).unwrap();
    }
    let by_locate = t.stats().lookups - before;
    let before = t.stats().lookups;
    for _ in 0..10 {
        assert_eq!(t.slot(added, 0).unwrap().as_int(), Some(9));
    }
    assert_eq!(t.stats().lookups - before, by_locate);
}
