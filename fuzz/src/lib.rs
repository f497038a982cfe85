//! The fuzz targets' bodies, one function a target (`fuzz_targets/*.rs` call them).
//!
//! Each decodes bytes from outside and, where they decode, uses what came out the way an
//! embedder would: every object read through a tenant, written to, exported and imported
//! again; a method run on the flat heap and on a tenant, which must agree. A panic, an abort
//! or an assertion failure here is a finding: every input must give a value or a typed
//! error. Inputs a target finds go on as tests of the crate they concern.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, Word, synth};
use cowheap_segment::swap::{MemStore, OutRecord, SegmentId, SegmentStore, Swapper};
use cowheap_segment::{Project, bind, datastream, file, spur::SpurSegment, v3::V3Segment};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::{CommitRights, Layer, Repository};
use cowheap_tenants::hosts::HostPlugins;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

/// At most this many objects of an imported image are read one by one.
const OBJECTS_READ: usize = 4_096;
/// At most this many slots of one object are read.
const SLOTS_READ: usize = 64;
/// Bytecodes an interpreter runs before it stops.
const BUDGET: u64 = 20_000;

/// A Squeak image (V3 or Spur, either byte order): imported; every object (up to
/// [`OBJECTS_READ`]) read through a tenant, the first few written; exported to its own
/// format and imported again, which must succeed if the export did; an interpreter made on
/// it.
pub fn squeak_import(data: &[u8]) {
    let Ok(imported) = cowheap_squeak::import_bytes(data) else {
        return;
    };
    let format = imported.format;
    if let Ok(bytes) = cowheap_squeak::export_bytes(&imported.heap, format) {
        let again = cowheap_squeak::import_bytes(&bytes);
        assert!(
            again.is_ok(),
            "an exported image does not import: {:?}",
            again.err()
        );
    }
    let n = imported.heap.len();
    let base = Base::new(imported.heap);
    let mut t = Tenant::fork(&base);
    let objects: Vec<Value> = (0..n.min(OBJECTS_READ))
        .filter_map(ObjectIndex::new)
        .map(Value::base)
        .collect();
    for &o in &objects {
        read_all(&t, o);
    }
    for &o in objects.iter().take(16) {
        if t.size(o).is_ok_and(|s| s.slots > 0) {
            let _ = t.set_slot(o, 0, Value::int(7));
            read_all(&t, o);
        }
    }
    if let Ok(mut vm) = Vm::new(&t) {
        let symbols = Symbols::from_base(base.heap());
        let _ = vm.send_named(&mut t, &symbols, Value::int(3), "printString", &[], BUDGET);
    }
}

/// Every read of `o` a tenant offers, and of the slots it holds.
fn read_all(t: &Tenant, o: Value) {
    let _ = t.class_of(o);
    let _ = t.format(o);
    let _ = t.identity_hash(o);
    let _ = t.bytes(o);
    if let Ok(size) = t.size(o) {
        for i in 0..size.slots.min(SLOTS_READ) {
            let w = t.slot(o, i);
            assert!(w.is_ok(), "slot {i} of {size:?} is not readable: {w:?}");
        }
        assert!(
            t.slot(o, size.slots).is_err(),
            "a slot past the object reads"
        );
    }
}

/// An ImageSegment's words, V3 or Spur by the first byte's low bit, with an out-pointer
/// table of as many entries as the next two bytes say (little-endian).
pub fn segment_words(data: &[u8]) {
    let [kind, lo, hi, rest @ ..] = data else {
        return;
    };
    let outs = usize::from(u16::from_le_bytes([*lo, *hi]));
    if kind & 1 == 0 {
        let _ = V3Segment::parse(rest, outs);
    } else {
        let _ = SpurSegment::parse(rest, outs);
    }
}

/// A project file (zip, gzip, SPRJ wrappings; a DataStream; an ImageSegment), and the
/// bare DataStream decoder on the same bytes.
pub fn project(data: &[u8]) {
    let _ = datastream::read(data);
    let _ = Project::from_bytes(data);
}

/// Literals a fuzzed method can hold, chosen by its bytes.
fn literal(b: u8) -> Lit {
    match b % 8 {
        0 => Lit::Int(i64::from(b) - 128),
        1 => Lit::Int(cowheap_heap::Word::MAX_INT),
        2 => Lit::Int(cowheap_heap::Word::MIN_INT),
        3 => Lit::Sym("fuzz".into()),
        4 => Lit::Sym("value".into()),
        5 => Lit::Sym("at:put:".into()),
        6 => Lit::Global("G".into(), i64::from(b)),
        _ => Lit::Class("SmallInteger".into()),
    }
}

/// A method of arbitrary bytecodes, header and literals (`fuzz` on SmallInteger), sent to 3
/// with arguments 4 and 5 on a flat heap and on a tenant of the same synthetic image. Both
/// must stop, with a value or a typed error, and agree on which, and on the error's kind
/// (the clock primitives, whose answers differ from run to run, are left out).
///
/// Input: a flags byte (bit 0 closures, bits 1-2 the argument count, bit 3 a primitive),
/// the temporaries, the primitive, the literal count and the literals, then the bytecodes.
pub fn vm_method(data: &[u8]) {
    let [flags, temps, prim, nlits, rest @ ..] = data else {
        return;
    };
    let closures = flags & 1 != 0;
    let args = usize::from((flags >> 1) & 3);
    let temps = args + usize::from(temps % 16);
    // The clocks (135, 137) answer the time, which the two runs need not share.
    let primitive = match u16::from(*prim) {
        _ if flags & 8 == 0 => 0,
        135 | 137 => 0,
        p => p,
    };
    let nlits = usize::from(nlits % 8).min(rest.len());
    let (lits, code) = rest.split_at(nlits);
    let literals: Vec<Lit> = lits.iter().map(|&b| literal(b)).collect();
    let code = &code[..code.len().min(256)];

    let mut img = SynthImage::new(closures);
    img.with_kernel_methods();
    img.method(
        "SmallInteger",
        "fuzz",
        args,
        temps,
        &literals,
        code,
        primitive,
    );
    let Ok((heap, symbols)) = img.freeze() else {
        return;
    };
    let arguments: Vec<Value> = (4..4 + args as i64).map(Value::int).collect();
    let mut flat = FlatHeap::from_base(&heap);
    let on_flat = run(&mut flat, &symbols, &arguments);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let on_tenant = run(&mut t, &symbols, &arguments);
    match (&on_flat, &on_tenant) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                a.as_int(),
                b.as_int(),
                "the heaps answer different integers"
            );
            assert_eq!(
                a.is_object(),
                b.is_object(),
                "the heaps answer different kinds"
            );
        }
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "the heaps stop differently: flat {a}, tenant {b}"
        ),
        _ => panic!("the heaps disagree: flat {on_flat:?}, tenant {on_tenant:?}"),
    }
}

fn run<M: ObjectMemory>(m: &mut M, symbols: &Symbols, args: &[Value]) -> Result<Value, VmError> {
    let mut vm = Vm::new(m)?;
    vm.send_named(m, symbols, Value::int(3), "fuzz", args, BUDGET)
}

/// The base the snapshot and layer targets restore onto: 300 synthetic objects.
pub fn base() -> &'static Arc<Base> {
    static BASE: OnceLock<Arc<Base>> = OnceLock::new();
    BASE.get_or_init(|| Base::new(synth::image(300, 1)))
}

/// Bytes of a snapshot header before its payload: magic, version, flags, fingerprint,
/// length, digest.
pub const SNAPSHOT_HEADER: usize = 88;

/// A tenant snapshot of [`base`], the input being its flags byte and payload: the harness
/// writes the header and digest, so that the restore's checks of the payload are what is
/// exercised. A restored tenant has every object it reaches read, is written to,
/// collected, and snapshotted again, which must restore.
pub fn snapshot(data: &[u8]) {
    let [flags, payload @ ..] = data else {
        return;
    };
    let base = base();
    let bytes = snapshot_bytes(*flags, payload);
    let Ok(mut t) = Tenant::restore_from(base, &bytes) else {
        return;
    };
    let reached = walk(&t);
    for &o in reached.iter().take(8) {
        if t.size(o).is_ok_and(|s| s.slots > 0) {
            let _ = t.set_slot(o, 0, Value::int(1));
        }
    }
    if let [a, b, ..] = reached[..] {
        let _ = t.become_two_way(a, b);
        walk(&t);
    }
    t.collect();
    walk(&t);
    restores(&t);
}

/// Checks that `t`'s snapshot restores onto its base.
fn restores(t: &Tenant) {
    let back = Tenant::restore_from(t.base(), &t.snapshot());
    assert!(
        back.is_ok(),
        "a snapshot does not restore: {:?}",
        back.err()
    );
}

/// Runs `import` on `t`, which holds objects of its own, and checks what it leaves: after
/// a refusal, once a collection has freed what the import made, everything `t` reaches as
/// it was; after a success, a tenant whose objects read, that collects, and whose
/// snapshot restores.
fn check_import<T, E: std::fmt::Display>(
    t: &mut Tenant,
    import: impl FnOnce(&mut Tenant) -> Result<T, E>,
) {
    let before = (census(t), describe(t));
    let held = (t.stats().private_objects, t.stats().private_bytes);
    match import(t) {
        Ok(_) => {
            walk(t);
            t.collect();
            walk(t);
            restores(t);
        }
        Err(e) => {
            // What the import made is freed with the refusal, not left to a collection.
            let now = (t.stats().private_objects, t.stats().private_bytes);
            assert_eq!(held, now, "a refused import ({e}) kept objects or bytes");
            t.collect();
            let after = (census(t), describe(t));
            assert_eq!(before, after, "a refused import ({e}) changed the tenant");
        }
    }
}

/// A snapshot of [`base`] with flags `flags` (the low two bits) around `payload`, its
/// header and digest written as a tenant's snapshot has them.
pub fn snapshot_bytes(flags: u8, payload: &[u8]) -> Vec<u8> {
    use cowheap_tenants::snapshot::{MAGIC, VERSION};
    // The five flags a snapshot knows: private marks, host objects, committed, reads,
    // auxiliary bits.
    sealed(&MAGIC, VERSION, u32::from(flags & 31), payload)
}

/// A file of the layout tenant snapshots and segment files share: `magic`, `version`,
/// `flags`, [`base`]'s fingerprint, the body's length, the BLAKE3 of all that and the
/// body, then the body.
fn sealed(magic: &[u8], version: u32, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(magic.len() + 80 + body.len());
    bytes.extend(magic);
    bytes.extend(version.to_le_bytes());
    bytes.extend(flags.to_le_bytes());
    bytes.extend(base().fingerprint().0);
    bytes.extend((body.len() as u64).to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(&bytes);
    h.update(body);
    bytes.extend(h.finalize().as_bytes());
    bytes.extend(body);
    bytes
}

/// Reads every object `t` reaches from its roots and private objects (up to
/// [`OBJECTS_READ`]), and answers them.
fn walk(t: &Tenant) -> Vec<Value> {
    let mut todo: Vec<Value> = t.root_names().filter_map(|n| t.root(n)).collect();
    todo.extend(t.private_objects().take(OBJECTS_READ));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while let Some(o) = todo.pop() {
        if out.len() >= OBJECTS_READ || !o.is_object() {
            continue;
        }
        let Ok(id) = t.identity_word(o) else {
            continue;
        };
        if !seen.insert(id.bits()) {
            continue;
        }
        read_all(t, o);
        if let Ok(size) = t.size(o) {
            todo.extend((0..size.slots.min(SLOTS_READ)).filter_map(|i| t.slot(o, i).ok()));
        }
        out.push(o);
    }
    out
}

/// A version layer over [`base`], the input being the layer's bytes without their digest
/// (the harness appends it): decoded, applied to a repository of the base, and the
/// version it makes read through a tenant.
pub fn layer(data: &[u8]) {
    let mut bytes = data.to_vec();
    bytes.extend(blake3::hash(data).as_bytes());
    let Ok(layer) = Layer::from_bytes(&bytes) else {
        return;
    };
    let repo = Repository::new(base().clone(), CommitRights::Anyone);
    let Ok(v) = repo.apply(&layer) else {
        return;
    };
    let t = Tenant::fork(&v);
    let n = v.heap().len().max(v.len());
    for o in (0..n.min(OBJECTS_READ))
        .filter_map(ObjectIndex::new)
        .map(Value::base)
    {
        read_all(&t, o);
    }
}

/// A cowheap segment file of [`base`] with flags `flags` (the low bit: portable) around
/// `body`, its header and digest written as [`file::to_bytes`] writes them.
pub fn segment_file_bytes(flags: u8, body: &[u8]) -> Vec<u8> {
    sealed(file::MAGIC, file::VERSION, u32::from(flags & 1), body)
}

/// Objects of its own a tenant of [`base`] holds before a segment is imported into it,
/// given as the import's outside objects.
pub const OUTSIDE: usize = 4;

/// A tenant segment file of [`base`], the input being a flags byte (bit 0 portable, bit 1
/// unbound out-pointers accepted) and the body (the harness writes the header and digest).
/// Decoded and imported into a tenant holding [`OUTSIDE`] objects of its own, host
/// objects as placeholders. A refused import leaves the tenant as it was; an import that
/// succeeds leaves a tenant whose objects all read, that collects, and whose snapshot
/// restores.
pub fn segment_file(data: &[u8]) {
    let [flags, body @ ..] = data else {
        return;
    };
    let bytes = segment_file_bytes(*flags, body);
    let Ok(mut seg) = file::from_bytes(&bytes, Some(base().fingerprint())) else {
        return;
    };
    let mut t = Tenant::fork(base());
    let outside = own_objects(&mut t);
    check_import(&mut t, |t| {
        seg.import_with_hosts(t, &outside, flags & 2 != 0, &HostPlugins::new(), true)
    });
}

/// What an import adds to a tenant, counted: its own objects, its copies, its roots.
fn census(t: &Tenant) -> (usize, usize, usize) {
    (
        t.private_objects().count(),
        t.copies().count(),
        t.root_names().count(),
    )
}

/// Everything `t` reaches from its roots, in order: each object's class, slots (objects
/// by the order they were first reached) and bytes, up to [`OBJECTS_READ`] objects.
fn describe(t: &Tenant) -> Vec<String> {
    let mut names: Vec<&str> = t.root_names().collect();
    names.sort_unstable();
    let mut todo: Vec<Value> = names.iter().rev().filter_map(|n| t.root(n)).collect();
    let mut number = std::collections::HashMap::new();
    let mut out = Vec::new();
    let mut name = |v: Value, todo: &mut Vec<Value>| -> String {
        match t.identity_word(v) {
            Ok(w) if v.is_object() => {
                let n = number.len();
                let n = *number.entry(w.bits()).or_insert_with(|| {
                    todo.push(v);
                    n
                });
                format!("#{n}")
            }
            Ok(w) => format!("{:#x}", w.bits()),
            Err(e) => format!("{e}"),
        }
    };
    let roots: Vec<String> = todo
        .clone()
        .into_iter()
        .map(|v| name(v, &mut Vec::new()))
        .collect();
    out.push(format!("roots {names:?} {roots:?}"));
    let mut done = HashSet::new();
    while let Some(o) = todo.pop() {
        if out.len() > OBJECTS_READ || !done.insert(name(o, &mut Vec::new())) {
            continue;
        }
        let class = t.class_of(o).map(|c| name(c, &mut Vec::new()));
        let size = t.size(o);
        let slots: Vec<String> = (0..size.as_ref().map_or(0, |s| s.slots.min(SLOTS_READ)))
            .map(|i| match t.slot(o, i) {
                Ok(v) => name(v, &mut todo),
                Err(e) => format!("{e}"),
            })
            .collect();
        let bytes = t.bytes(o).map(<[u8]>::to_vec);
        out.push(format!("{class:?} {size:?} {slots:?} {bytes:?}"));
    }
    out
}

/// [`OUTSIDE`] objects of `t`'s own, each a root.
pub fn own_objects(t: &mut Tenant) -> Vec<Value> {
    let class = Value::base(ObjectIndex::new(1).expect("index 1"));
    let size = cowheap_heap::ObjectSize { slots: 2, bytes: 0 };
    (0..OUTSIDE)
        .map(|i| {
            let o = t
                .alloc(class, cowheap_heap::Format::Pointers, size)
                .expect("an object");
            t.set_root(&format!("outside{i}"), o).expect("a root");
            o
        })
        .collect()
}

/// The directory of the real images: `COWHEAP_IMAGES`, else `shared/images` beside the
/// project.
pub fn images() -> std::path::PathBuf {
    std::env::var_os("COWHEAP_IMAGES").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/images"),
        Into::into,
    )
}

/// `mini.image`, imported once: the base the `project_import` target materialises into.
pub fn mini() -> &'static Arc<Base> {
    static MINI: OnceLock<Arc<Base>> = OnceLock::new();
    MINI.get_or_init(|| {
        let path = images().join("mini.image");
        let imported = cowheap_squeak::import(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (set COWHEAP_IMAGES)", path.display()));
        Base::new(imported.heap)
    })
}

/// An Etoys project's object stream, unwrapped (the `!self smartRefStream!` chunk and the
/// binary DataStream after it), materialised in a tenant of `mini.image` that holds
/// objects of its own. A refused import leaves everything the tenant reaches as it was
/// (after a collection frees what it made); one that succeeds leaves a tenant whose
/// objects read, that collects, and whose snapshot restores.
pub fn project_import(data: &[u8]) {
    let Ok(project) = Project::from_bytes(data) else {
        return;
    };
    let mut t = Tenant::fork(mini());
    own_objects(&mut t);
    check_import(&mut t, |t| bind::materialise(t, &project, "project"));
}

/// What the `swap_adopt` target adopts into: a tenant of [`base`] with segments swapped out,
/// its snapshot, the segments' files, the records its swapper keeps of them, and the words
/// a fuzzed record picks from.
pub struct SwapScene {
    /// The tenant's snapshot, its segments out.
    pub snapshot: Vec<u8>,
    /// Each segment's file, by id.
    pub files: Vec<(SegmentId, Vec<u8>)>,
    /// The records of the segments out, as a node stores them beside the snapshot.
    pub records: Vec<OutRecord>,
    /// Words a fuzzed record picks from: every word of the records, the tenant's own
    /// objects' identity words, base references and immediates.
    pub pool: Vec<Word>,
}

/// Parts of [`swap_scene`]'s tenant, each a chain of objects hung from a root of its own.
const SWAP_PARTS: usize = 3;

/// The scene, made once: a tenant with [`SWAP_PARTS`] parts, each a chain of four objects
/// (three of pointers, one with bytes) that also points at an object outside it, the first
/// two parts swapped out.
pub fn swap_scene() -> &'static SwapScene {
    static SCENE: OnceLock<SwapScene> = OnceLock::new();
    SCENE.get_or_init(|| {
        let mut t = Tenant::fork(base());
        let shared = own_objects(&mut t)[0];
        let class = Value::base(ObjectIndex::new(1).expect("index 1"));
        let mut roots = Vec::new();
        for p in 0..SWAP_PARTS {
            let bytes = t
                .alloc_with(class, Format::Bytes, &[], &[p as u8; 11])
                .expect("an object");
            let mut next = bytes;
            for i in 0..3 {
                let o = t
                    .alloc(class, Format::Pointers, ObjectSize { slots: 3, bytes: 0 })
                    .expect("an object");
                t.set_slot(o, 0, next).expect("a slot");
                t.set_slot(o, 1, shared).expect("a slot");
                t.set_slot(o, 2, Value::int(i)).expect("a slot");
                next = o;
            }
            t.set_root(&format!("part{p}"), next).expect("a root");
            roots.push(next);
        }
        let store = MemStore::new();
        let swapper = Swapper::new(store.clone());
        let mut pool: Vec<Word> = t
            .private_objects()
            .filter_map(|v| t.identity_word(v).ok())
            .collect();
        let mut ids = Vec::new();
        for &root in &roots[..2] {
            ids.push(swapper.swap_out(&mut t, &[root]).expect("a swap-out").id);
        }
        let records = swapper.records(&mut t).expect("the records");
        for r in &records {
            for list in record_lists(r) {
                pool.extend(list);
            }
        }
        pool.extend([
            Value::int(7).word(),
            Value::base(ObjectIndex::new(5).expect("index 5")).word(),
            Word::from_bits(0),
        ]);
        let files = ids
            .iter()
            .map(|&id| (id, store.get(id).expect("the segment's file")))
            .collect();
        SwapScene {
            snapshot: t.snapshot(),
            files,
            records,
            pool,
        }
    })
}

/// A record's lists of words, in the order [`swap_records`] reads them: roots, members,
/// outside, pending.
fn record_lists(r: &OutRecord) -> impl Iterator<Item = &Vec<Word>> {
    [
        Some(&r.roots),
        r.members.as_ref(),
        Some(&r.outside),
        r.pending.as_ref(),
    ]
    .into_iter()
    .flatten()
}

/// A fuzzed record's word: one byte naming a word of the pool, or 0xff then eight bytes.
fn swap_word(data: &mut &[u8], pool: &[Word]) -> Option<Word> {
    let (&b, rest) = data.split_first()?;
    *data = rest;
    if b != 0xff {
        return Some(pool[usize::from(b) % pool.len()]);
    }
    let (raw, rest) = data.split_first_chunk::<8>()?;
    *data = rest;
    Some(Word::from_bits(u64::from_le_bytes(*raw)))
}

/// Records of segments out, read from fuzzed bytes: per record a byte for its id (below 4,
/// the scene's ids and their neighbours; else that number) and its checksum (0 the scene
/// segment's own, else that one with a byte flipped), a byte of flags (bit 0 members, bit 1
/// pending), four counts (roots, members, outside, pending; at most 15 each), then the
/// words ([`swap_word`]).
pub fn swap_records(mut data: &[u8], scene: &SwapScene) -> Vec<OutRecord> {
    let d = &mut data;
    let mut records = Vec::new();
    while let Some((&[id, sum, flags, counts0, counts1], rest)) = d.split_first_chunk::<5>() {
        *d = rest;
        let id = match id {
            0..=3 => scene.files[usize::from(id) % scene.files.len()].0.get() + u64::from(id / 2),
            n => u64::from(n),
        };
        let mut digest = scene
            .records
            .iter()
            .find(|r| r.id.get() == id)
            .map_or([0; 32], |r| r.digest);
        if sum != 0 {
            digest[usize::from(sum) % 32] ^= sum;
        }
        let words = |n: u8, d: &mut &[u8]| -> Vec<Word> {
            (0..n & 15)
                .map_while(|_| swap_word(d, &scene.pool))
                .collect()
        };
        let roots = words(counts0, d);
        let members = (flags & 1 != 0).then(|| words(counts0 >> 4, d));
        let outside = words(counts1, d);
        let pending = (flags & 2 != 0).then(|| words(counts1 >> 4, d));
        records.push(OutRecord {
            id: SegmentId::new(id),
            roots,
            members,
            outside,
            digest,
            pending,
        });
    }
    records
}

/// The bytes [`swap_records`] reads as `records`, whose words are all in the scene's pool
/// and whose counts fit: the seeds of the `swap_adopt` target.
pub fn swap_records_bytes(records: &[OutRecord], scene: &SwapScene) -> Vec<u8> {
    let mut out = Vec::new();
    let word = |w: &Word, out: &mut Vec<u8>| match scene
        .pool
        .iter()
        .position(|p| p == w)
        .filter(|&i| i < 0xff)
    {
        Some(i) => out.push(i as u8),
        None => {
            out.push(0xff);
            out.extend(w.bits().to_le_bytes());
        }
    };
    for r in records {
        let id = scene.files.iter().position(|(id, _)| *id == r.id);
        out.push(id.map_or(200, |i| i as u8));
        out.push(0);
        out.push(u8::from(r.members.is_some()) | u8::from(r.pending.is_some()) << 1);
        let n = |v: Option<&Vec<Word>>| v.map_or(0, |v| v.len().min(15) as u8);
        out.push(n(Some(&r.roots)) | n(r.members.as_ref()) << 4);
        out.push(n(Some(&r.outside)) | n(r.pending.as_ref()) << 4);
        for list in record_lists(r) {
            for w in list.iter().take(15) {
                word(w, &mut out);
            }
        }
    }
    out
}

/// Records of segments out, as a node reads them beside a tenant's snapshot, adopted by a
/// fresh swapper into the scene's tenant ([`swap_scene`]) restored: a refused adoption
/// leaves the tenant as it was and the swapper with nothing out; an accepted one leaves
/// a tenant whose records are made again at once, whose segments fault in or refuse with
/// a typed error, whose objects read,
/// that collects, whose records can be taken, and whose snapshot restores.
pub fn swap_adopt(data: &[u8]) {
    let scene = swap_scene();
    let records = swap_records(data, scene);
    let mut t = Tenant::restore_from(base(), &scene.snapshot).expect("the scene restores");
    let store = MemStore::new();
    for (id, bytes) in &scene.files {
        store.replace(*id, bytes.clone());
    }
    let swapper = Swapper::new(store);
    let before = (census(&t), describe(&t), t.snapshot());
    match swapper.adopt(&mut t, &records) {
        Err(e) => {
            let after = (census(&t), describe(&t), t.snapshot());
            assert!(
                before == after,
                "a refused adoption ({e}) changed the tenant"
            );
            assert!(
                swapper.swapped().is_empty(),
                "a refused adoption ({e}) kept records"
            );
        }
        Ok(()) => {
            // What it took it can give back: an adopted tenant's records are made again
            // (its suspend and checkpoint need them), so no state it took can strand it.
            if let Err(e) = swapper.records(&mut t) {
                panic!("an adopted tenant's records are refused: {e}");
            }
            for (id, _) in swapper.swapped() {
                let _ = swapper.fault_in(&mut t, id);
                walk(&t);
            }
            let _ = swapper.records(&mut t);
            t.collect();
            walk(&t);
            restores(&t);
        }
    }
}
