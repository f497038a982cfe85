//! Image files and tenant snapshots: round trips, corruption of every kind, another process,
//! and a crash in the middle of a save.
//!
//! Two of the tests below are not tests but entry points for child processes
//! (`child_*`, marked `#[ignore]`): the tests that need a second process run this same test
//! binary with `--ignored --exact child_...`.

use cowheap::heap::{FileError, image::Verification};
use cowheap::{Base, BaseHeap, Format, ObjectSize, Tenant, Value, Word, synth};
use proptest::prelude::*;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

mod common;
use common::{describe, random_base};

/// A digest of everything tenant `t` can observe: every base object and every root, and all
/// they lead to (hash, format, size, bytes, class, slots).
fn transcript(t: &mut Tenant) -> String {
    let mut h = blake3::Hasher::new();
    let mut seen = HashSet::new();
    let mut queue: Vec<Word> = (0..t.base().heap().len() as u32)
        .map(|i| Word::base(cowheap::ObjectIndex::from_u32(i)))
        .collect();
    let names: Vec<String> = t.root_names().map(str::to_owned).collect();
    for name in &names {
        let v = t.root(name).unwrap();
        h.update(name.as_bytes());
        h.update(&v.word().bits().to_le_bytes());
        queue.push(v.word());
    }
    queue.reverse();
    while let Some(w) = queue.pop() {
        if !w.is_ref() || !seen.insert(w) {
            continue;
        }
        let v = Value::owned(w, t.id());
        h.update(&w.bits().to_le_bytes());
        h.update(&t.identity_hash(v).unwrap().to_le_bytes());
        h.update(&[t.format(v).unwrap().code()]);
        h.update(t.bytes(v).unwrap());
        let class = t.class_of(v).unwrap().word();
        h.update(&class.bits().to_le_bytes());
        queue.push(class);
        for i in 0..t.size(v).unwrap().slots {
            let s = t.slot(v, i).unwrap().word();
            h.update(&s.bits().to_le_bytes());
            queue.push(s);
        }
    }
    h.finalize().to_hex().to_string()
}

/// A tenant that has copied, allocated, becomed, collected and rooted.
fn busy_tenant(base: &Arc<Base>, seed: u64) -> Tenant {
    let mut t = Tenant::fork(base);
    let heap = base.heap();
    let pointers: Vec<Value> = heap
        .indices()
        .filter(|&i| {
            heap.size(i).unwrap().slots > 0 && heap.object(i).unwrap().format == Format::Pointers
        })
        .map(Value::base)
        .collect();
    let class = t.class_of(pointers[0]).unwrap();
    let mut made = Vec::new();
    for k in 0..40u64 {
        let target = pointers[((seed + k * 7) as usize) % pointers.len()];
        t.set_slot(target, 0, Value::int(k as i64)).unwrap();
        let o = t
            .alloc_with(class, Format::Pointers, &[target, Value::char('x')], &[])
            .unwrap();
        made.push(o);
    }
    let bytes = t
        .alloc(class, Format::Bytes, ObjectSize { slots: 0, bytes: 5 })
        .unwrap();
    t.set_bytes(bytes, 1, &[1, 2, 3]).unwrap();
    t.become_forward(made[0], made[1]).unwrap();
    t.become_two_way(made[2], pointers[1]).unwrap();
    t.become_forward(pointers[2], made[3]).unwrap();
    for (i, &o) in made.iter().enumerate().step_by(3) {
        t.set_root(&format!("r{i}"), o).unwrap();
    }
    t.set_root("bytes", bytes).unwrap();
    t.collect();
    t
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn an_image_file_maps_back_to_the_same_heap() {
    let dir = tmp();
    let path = dir.path().join("base.cowheap");
    let built = synth::image(20_000, 4);
    built.save(&path).unwrap();
    for verification in [Verification::Full, Verification::Trust] {
        let mapped = BaseHeap::open_with(&path, verification).unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(mapped.fingerprint(), built.fingerprint());
        assert_eq!(describe(&mapped), describe(&built));
        assert_eq!(mapped.roots(), built.roots());
        assert_eq!(mapped.nil().word(), built.nil().word());
        assert_eq!(
            mapped.int_class().map(|v| v.word()),
            built.int_class().map(|v| v.word())
        );
    }
    let info = cowheap::heap::image::inspect(&path).unwrap();
    assert_eq!(info.objects, built.len() as u64);
    assert_eq!(info.file_bytes, std::fs::metadata(&path).unwrap().len());
    // Another heap has another fingerprint.
    assert_ne!(synth::image(20_000, 5).fingerprint(), built.fingerprint());
}

#[test]
fn tenants_on_a_mapped_base_behave_as_on_the_built_one() {
    let dir = tmp();
    let path = dir.path().join("base.cowheap");
    let built = Base::new(synth::image(5_000, 8));
    built.heap().save(&path).unwrap();
    let mapped = Base::new(BaseHeap::open(&path).unwrap());
    let mut a = busy_tenant(&built, 3);
    let mut b = busy_tenant(&mapped, 3);
    assert_eq!(transcript(&mut a), transcript(&mut b));
}

#[test]
fn a_snapshot_restores_to_a_tenant_that_observes_the_same() {
    let base = Base::new(synth::image(5_000, 9));
    let mut t = busy_tenant(&base, 11);
    let dir = tmp();
    let path = dir.path().join("tenant.snap");
    t.save_snapshot(&path).unwrap();
    let mut back = Tenant::restore(&base, &path).unwrap();
    assert_ne!(back.id(), t.id());
    assert_eq!(back.stats().private_objects, t.stats().private_objects);
    assert_eq!(back.stats().private_bytes, t.stats().private_bytes);
    assert_eq!(back.diverted(), t.diverted());
    assert_eq!(transcript(&mut back), transcript(&mut t));
    // The restored tenant goes on working, and its copies are found through the table.
    let g = base.heap().root("Smalltalk").unwrap();
    back.set_slot(g, 0, Value::int(77)).unwrap();
    assert_eq!(back.slot(g, 0).unwrap().as_int(), Some(77));
    assert!(t.slot(g, 0).unwrap().as_int() != Some(77));
}

#[test]
fn a_snapshot_is_bound_to_its_base() {
    let base = Base::new(synth::image(3_000, 1));
    let other = Base::new(synth::image(3_000, 2));
    let t = busy_tenant(&base, 1);
    match Tenant::restore_from(&other, &t.snapshot()) {
        Err(FileError::ForeignBase { expected, found }) => {
            assert_eq!(expected, base.fingerprint());
            assert_eq!(found, other.fingerprint());
        }
        other => panic!("expected a foreign-base error, got {other:?}"),
    }
    // The same base mapped from a file has the same fingerprint, so the snapshot fits it.
    let dir = tmp();
    let path = dir.path().join("base.cowheap");
    base.heap().save(&path).unwrap();
    let mapped = Base::new(BaseHeap::open(&path).unwrap());
    assert!(Tenant::restore_from(&mapped, &t.snapshot()).is_ok());
}

#[test]
fn snapshot_size_follows_the_tenant_not_the_base() {
    let small = Base::new(synth::image(1_000, 1));
    let large = Base::new(synth::image(300_000, 1));
    let sizes: Vec<usize> = [small, large]
        .iter()
        .map(|b| {
            let mut t = Tenant::fork(b);
            let g = b.heap().root("Smalltalk").unwrap();
            let class = t.class_of(g).unwrap();
            for _ in 0..1_000 {
                t.alloc(class, Format::Pointers, ObjectSize { slots: 4, bytes: 0 })
                    .unwrap();
            }
            t.snapshot().len()
        })
        .collect();
    assert_eq!(sizes[0], sizes[1], "{sizes:?}");
}

/// Flips bit `bit` of `bytes`.
fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    b
}

fn open_bytes(dir: &Path, bytes: &[u8], v: Verification) -> Result<BaseHeap, FileError> {
    let p = dir.join("probe.cowheap");
    std::fs::write(&p, bytes).unwrap();
    BaseHeap::open_with(&p, v)
}

#[test]
fn every_truncation_and_every_bit_flip_of_an_image_is_refused() {
    let dir = tmp();
    let (base, _) = random_base(12);
    let path = dir.path().join("small.cowheap");
    base.heap().save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    assert!(good.len() < 2_000, "{} bytes", good.len());
    for len in 0..good.len() {
        let e = open_bytes(dir.path(), &good[..len], Verification::Full).unwrap_err();
        assert!(
            matches!(e, FileError::Truncated { .. } | FileError::Corrupt { .. }),
            "truncated to {len}: {e}"
        );
    }
    for bit in 0..good.len() * 8 {
        let e = open_bytes(dir.path(), &flip(&good, bit), Verification::Full);
        assert!(e.is_err(), "bit {bit} flipped went unnoticed");
    }
    // A trusted open still reads the header, table and meta: flips there are refused too.
    for bit in 0..232 * 8 {
        assert!(
            open_bytes(dir.path(), &flip(&good, bit), Verification::Trust).is_err(),
            "bit {bit}"
        );
    }
    let mut wrong = good.clone();
    wrong[..8].copy_from_slice(b"NOTANIMG");
    assert!(matches!(
        open_bytes(dir.path(), &wrong, Verification::Full),
        Err(FileError::BadMagic { .. })
    ));
    let mut future = good.clone();
    future[8] = 2;
    assert!(matches!(
        open_bytes(dir.path(), &future, Verification::Full),
        Err(FileError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
    let missing = BaseHeap::open(&dir.path().join("no such file"));
    assert!(matches!(missing, Err(FileError::Io { .. })));
}

#[test]
fn every_truncation_and_every_bit_flip_of_a_snapshot_is_refused() {
    let (base, _) = random_base(3);
    let mut t = Tenant::fork(&base);
    let x = Value::base(cowheap::ObjectIndex::from_u32(0));
    let class = t.class_of(x).unwrap();
    let o = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    t.set_root("o", o).unwrap();
    t.become_forward(Value::base(cowheap::ObjectIndex::from_u32(1)), o)
        .unwrap();
    let good = t.snapshot();
    assert!(Tenant::restore_from(&base, &good).is_ok());
    for len in 0..good.len() {
        assert!(
            Tenant::restore_from(&base, &good[..len]).is_err(),
            "truncated to {len}"
        );
    }
    for bit in 0..good.len() * 8 {
        assert!(
            Tenant::restore_from(&base, &flip(&good, bit)).is_err(),
            "bit {bit}"
        );
    }
}

/// Recomputes a snapshot's payload length and digest after a mutation.
fn reseal_snapshot(b: &mut [u8]) {
    if b.len() < 88 {
        return;
    }
    let len = (b.len() - 88) as u64;
    b[48..56].copy_from_slice(&len.to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(&b[..56]);
    h.update(&b[88..]);
    let d = *h.finalize().as_bytes();
    b[56..88].copy_from_slice(&d);
}

#[derive(Clone, Debug)]
enum Mutation {
    Byte { at: usize, value: u8 },
    Word { at: usize, value: u64 },
    Truncate { at: usize },
    Insert { at: usize, value: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        (
            any::<usize>(),
            prop_oneof![any::<u64>(), 0u64..64, Just(u64::MAX), Just(1 << 32)]
        )
            .prop_map(|(at, value)| Mutation::Word { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Insert { at, value }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Byte { at, value } => bytes[at % n] = value,
        Mutation::Word { at, value } => {
            let at = (at % n) & !7;
            let end = (at + 8).min(n);
            bytes[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
        }
        Mutation::Truncate { at } => bytes.truncate(at % n),
        Mutation::Insert { at, value } => bytes.insert(at % n, value),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: common::cases(256),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/proptest-regressions/files.txt"),
        )),
        ..ProptestConfig::default()
    })]

    /// Random bases saved and mapped back are the same object for object; random tenants on
    /// them, snapshotted and restored onto the mapped base, observe the same.
    #[test]
    fn random_bases_and_tenants_round_trip(
        seed in any::<u64>(),
        ops in prop::collection::vec((any::<usize>(), any::<usize>(), 0u8..5, any::<i16>()), 0..40),
    ) {
        let dir = tmp();
        let (base, pristine) = random_base(seed);
        let path = dir.path().join("r.cowheap");
        base.heap().save(&path).unwrap();
        let mapped = Base::new(BaseHeap::open(&path).unwrap());
        prop_assert_eq!(describe(mapped.heap()), pristine);
        prop_assert_eq!(mapped.fingerprint(), base.fingerprint());

        // A tenant does random work on the built base; its snapshot restores on the mapped one.
        let mut t = Tenant::fork(&base);
        let n = base.heap().len();
        let mut held: Vec<Value> = (0..n as u32).map(|i| Value::base(cowheap::ObjectIndex::from_u32(i))).collect();
        for (k, &(a, b, op, x)) in ops.iter().enumerate() {
            let (va, vb) = (held[a % held.len()], held[b % held.len()]);
            let _ = match op {
                0 => t.set_slot(va, b % 4, Value::int(x.into())),
                1 => t.set_slot(va, a % 3, vb),
                2 => t.become_forward(va, vb),
                3 => t.become_two_way(va, vb),
                _ => {
                    let class = Value::base(cowheap::ObjectIndex::from_u32(0));
                    t.alloc_with(class, Format::Pointers, &[va, Value::int(x.into())], &[])
                        .map(|o| {
                            held.push(o);
                            t.set_root(&format!("r{k}"), o).unwrap();
                        })
                }
            };
        }
        let mut back = Tenant::restore_from(&mapped, &t.snapshot()).unwrap();
        prop_assert_eq!(transcript(&mut back), transcript(&mut t));
    }

    /// Mutated image files, resealed so that their checksums hold: opening either refuses them
    /// with a typed error or gives a heap every object of which reads without error.
    #[test]
    fn resealed_mutations_of_an_image_are_refused_or_readable(
        seed in any::<u64>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let dir = tmp();
        let (base, _) = random_base(seed);
        let path = dir.path().join("m.cowheap");
        base.heap().save(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        cowheap_testkit::reseal_image(&mut bytes);
        let verified = open_bytes(dir.path(), &bytes, Verification::Full);
        if let Ok(heap) = &verified {
            for i in heap.indices() {
                let o = heap.object(i).unwrap();
                for s in 0..o.slots.len() {
                    heap.slot_word(i, s).unwrap();
                }
                heap.class_word(i).unwrap();
            }
            for r in heap.roots() {
                prop_assert!(!r.value.is_ref() || heap.index_of(Value::from(r.value)).is_ok());
            }
        }
        // Trusted, the same bytes may give wrong answers, but every read either fails with a
        // typed error or agrees with the others (the view, the size, the class, the hash and
        // each slot read alone); and bytes that verify read the same trusted as verified.
        let trusted = open_bytes(dir.path(), &bytes, Verification::Trust);
        if verified.is_ok() {
            prop_assert!(trusted.is_ok(), "a verified file is refused when trusted");
        }
        if let Ok(heap) = trusted {
            for i in heap.indices() {
                let Ok(o) = heap.object(i) else { continue };
                prop_assert_eq!(heap.size(i).unwrap(), o.size());
                prop_assert_eq!(heap.class_word(i).unwrap(), o.class);
                prop_assert_eq!(heap.hash(i).unwrap(), o.hash);
                for (s, &w) in o.slots.iter().enumerate() {
                    prop_assert_eq!(heap.slot_word(i, s).unwrap(), w);
                }
                prop_assert!(heap.slot_word(i, o.slots.len()).is_err());
                if let Ok(v) = &verified {
                    let checked = v.object(i).unwrap();
                    prop_assert_eq!(checked.slots, o.slots);
                    prop_assert_eq!(checked.bytes, o.bytes);
                }
            }
        }
    }

    /// Mutated snapshots, resealed: restoring either refuses them or gives a tenant whose
    /// every observation and collection succeeds.
    #[test]
    fn resealed_mutations_of_a_snapshot_are_refused_or_usable(
        seed in 0u64..8,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let base = Base::new(synth::image(1_000, 1));
        let t = busy_tenant(&base, seed);
        let mut bytes = t.snapshot();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        reseal_snapshot(&mut bytes);
        if let Ok(mut back) = Tenant::restore_from(&base, &bytes) {
            transcript(&mut back);
            back.collect();
            transcript(&mut back);
        }
    }
}

/// The snapshot file a child process restores, and what it prints.
const SNAPSHOT_ENV: &str = "COWHEAP_TEST_SNAPSHOT";

#[test]
fn a_snapshot_restores_in_another_process() {
    let base = Base::new(synth::image(4_000, 21));
    let mut t = busy_tenant(&base, 5);
    let dir = tmp();
    let path = dir.path().join("tenant.snap");
    t.save_snapshot(&path).unwrap();
    let expected = transcript(&mut t);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_restores_a_snapshot",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SNAPSHOT_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split("TRANSCRIPT ").nth(1))
        .unwrap_or_else(|| panic!("the child printed no transcript: {stdout}"));
    assert_eq!(line, expected);
}

/// Child process entry (not a test on its own): rebuilds the same base, restores the
/// snapshot named by the environment and prints its transcript.
#[test]
#[ignore = "entry point for a child process of a_snapshot_restores_in_another_process"]
fn child_restores_a_snapshot() {
    let path =
        std::env::var_os(SNAPSHOT_ENV).expect("run by a_snapshot_restores_in_another_process");
    let base = Base::new(synth::image(4_000, 21));
    let mut t = Tenant::restore(&base, Path::new(&path)).unwrap();
    println!("\nTRANSCRIPT {}", transcript(&mut t));
}

const CRASH_ENV: &str = "COWHEAP_TEST_CRASH_PATH";

#[test]
fn a_save_killed_midway_leaves_the_old_file_readable() {
    let a = synth::image(150_000, 1);
    let b = synth::image(150_000, 2);
    let fingerprints = [a.fingerprint(), b.fingerprint()];
    let dir = tmp();
    let path = dir.path().join("base.cowheap");
    a.save(&path).unwrap();
    let mut rng_state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..8 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_saves_forever",
                "--test-threads=1",
            ])
            .env(CRASH_ENV, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        std::thread::sleep(std::time::Duration::from_millis(150 + rng_state % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        let heap = BaseHeap::open(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(fingerprints.contains(&heap.fingerprint()), "round {round}");
    }
}

/// Child process entry (not a test on its own): saves two bases in turn over one path until
/// it is killed.
#[test]
#[ignore = "entry point for a child process of a_save_killed_midway_leaves_the_old_file_readable"]
fn child_saves_forever() {
    let path = std::env::var_os(CRASH_ENV)
        .expect("run by a_save_killed_midway_leaves_the_old_file_readable");
    let bases = [synth::image(150_000, 1), synth::image(150_000, 2)];
    for i in 0.. {
        bases[i % 2].save(Path::new(&path)).unwrap();
    }
}

#[test]
fn a_base_reference_with_bits_above_its_index_is_refused_by_verification() {
    // Two words naming one object would break identity: such a word is no word.
    let dir = tmp();
    let mut b = cowheap::Builder::new();
    let nil = b.add_nil();
    let holder = b.add(nil, Format::Pointers, vec![nil], vec![]).unwrap();
    b.add_root("holder", holder).unwrap();
    let path = dir.path().join("alias.cowheap");
    b.freeze().unwrap().save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // The objects section starts the file's first section; the holder's one slot is its
    // fourth word (nil is three header words, then the holder's three, then its slot).
    let at = u64::from_le_bytes(bytes[72..80].try_into().unwrap()) as usize;
    let slot = at + (3 + 3) * 8;
    let word = u64::from_le_bytes(bytes[slot..slot + 8].try_into().unwrap());
    assert_eq!(word, nil.bits(), "the slot found is the holder's");
    bytes[slot..slot + 8].copy_from_slice(&(word | 1 << 40).to_le_bytes());
    cowheap_testkit::reseal_image(&mut bytes);
    let err = open_bytes(dir.path(), &bytes, Verification::Full).unwrap_err();
    assert!(
        err.to_string().contains("no immediate and no reference"),
        "{err}"
    );

    // The builder refuses the word too.
    let mut b = cowheap::Builder::new();
    let nil = b.add_nil();
    let alias = cowheap::Word::from_bits(nil.bits() | 1 << 40);
    b.add(nil, Format::Pointers, vec![alias], vec![]).unwrap();
    assert!(matches!(
        b.freeze(),
        Err(cowheap::heap::Error::InvalidWord(w)) if w == alias
    ));
}

/// A base holding `holder` = [a private reference, nil], opened trusted (verification refuses
/// it), and its nil.
fn trusted_base_with_a_private_word(dir: &Path) -> (Arc<Base>, Value, Word) {
    let mut b = cowheap::Builder::new();
    let nil = b.add_nil();
    let holder = b
        .add(nil, Format::Pointers, vec![nil, nil], vec![])
        .unwrap();
    b.add_root("holder", holder).unwrap();
    let path = dir.join("private.cowheap");
    b.freeze().unwrap().save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = u64::from_le_bytes(bytes[72..80].try_into().unwrap()) as usize;
    let slot = at + (3 + 3) * 8;
    assert_eq!(&bytes[slot..slot + 8], &nil.bits().to_le_bytes());
    // The private reference to key 0, generation 0: the first object a tenant allocates.
    bytes[slot..slot + 8].copy_from_slice(&0b100u64.to_le_bytes());
    cowheap_testkit::reseal_image(&mut bytes);
    assert!(open_bytes(dir, &bytes, Verification::Full).is_err());
    let base = Base::new(open_bytes(dir, &bytes, Verification::Trust).unwrap());
    let holder = base.heap().root("holder").unwrap();
    (base, holder, nil)
}

#[test]
fn a_private_word_in_a_trusted_base_never_names_a_tenants_own_object() {
    let dir = tmp();
    let (base, holder, nil) = trusted_base_with_a_private_word(dir.path());
    let mut t = Tenant::fork(&base);
    let mine = t
        .alloc(
            Value::from(nil),
            Format::Pointers,
            ObjectSize { slots: 1, bytes: 0 },
        )
        .unwrap();
    t.set_slot(mine, 0, Value::int(42)).unwrap();
    // Read through the base, the word belongs to no tenant and is refused when used.
    let stray = t.slot(holder, 0).unwrap();
    assert!(t.slot(stray, 0).is_err());
    // A first write would copy the word into the tenant, where it would name `mine`: refused,
    // and nothing is copied.
    let err = t.set_slot(holder, 1, Value::int(1)).unwrap_err();
    assert!(
        matches!(
            err,
            cowheap::Error::Heap(cowheap::heap::Error::InvalidWord(_))
        ),
        "{err}"
    );
    assert_eq!(t.stats().copies, 0);
    assert!(t.slot(holder, 1).unwrap().same_word(Value::from(nil)));
}

#[test]
fn a_word_that_is_no_word_is_refused_at_the_tenants_edge() {
    let base = Base::new(synth::image(1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let alias = Value::from(Word::from_bits(g.word().bits() | 1 << 50));
    let mut t = Tenant::fork(&base);
    assert!(matches!(
        t.set_slot(g, 0, alias),
        Err(cowheap::Error::Heap(cowheap::heap::Error::InvalidWord(_)))
    ));
    assert!(t.slot(alias, 0).is_err());
    assert!(t.class_of(alias).is_err());
    assert_eq!(t.stats().copies, 0);
}

#[test]
fn a_refused_two_way_become_changes_nothing() {
    let dir = tmp();
    let (base, holder, nil) = trusted_base_with_a_private_word(dir.path());
    let g = Value::from(nil);
    let mut t = Tenant::fork(&base);
    let mine = t
        .alloc(g, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    // Both operands base objects: nil copies, the holder cannot; then one private operand.
    for a in [g, mine] {
        let (before, stats) = (t.snapshot(), t.stats());
        assert!(t.become_two_way(a, holder).is_err());
        assert!(t.snapshot() == before, "the snapshot changed");
        assert_eq!(t.stats(), stats);
        assert_eq!(t.diverted(), 0);
    }
}

/// One content, one fingerprint: a class field of the meta section whose flag is clear is
/// zero, and a file with other bytes there (which the heap would ignore but its
/// fingerprint would cover) is refused.
#[test]
fn a_class_field_whose_flag_is_clear_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.cowheap");
    let mut b = cowheap::heap::Builder::new();
    b.add_nil();
    b.freeze().unwrap().save(&a).unwrap(); // meta flags 0
    let mut f = std::fs::read(&a).unwrap();
    let meta_at =
        u64::from_le_bytes(f[64 + 2 * 56 + 8..64 + 2 * 56 + 16].try_into().unwrap()) as usize;
    assert_eq!(f[meta_at + 4..meta_at + 8], [0; 4], "no flag set");
    f[meta_at + 8..meta_at + 16].copy_from_slice(&0xdead_beefu64.to_le_bytes());
    cowheap_testkit::reseal_image(&mut f);
    std::fs::write(&a, &f).unwrap();
    for v in [Verification::Full, Verification::Trust] {
        assert!(
            matches!(BaseHeap::open_with(&a, v), Err(FileError::Corrupt { .. })),
            "{v:?}"
        );
    }
}
