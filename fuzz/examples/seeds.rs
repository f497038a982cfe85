//! Writes starting inputs for the targets whose inputs this project makes itself:
//! `seeds DIR` fills `DIR/snapshot`, `DIR/layer` and `DIR/segment_file`,
//! `DIR/vm_method` with a few methods, `DIR/swap_adopt` with the records of segments out, `DIR/project_import` with the object streams of
//! the Etoys projects under `COWHEAP_IMAGES/segments` (unwrapped), and `DIR/segment_words`
//! with their ImageSegments' words. (Squeak images and project files come from outside; see README.md.)

use cowheap_forwarders::MarkPolicy;
use cowheap_fuzz::{SNAPSHOT_HEADER, base, own_objects, segment_file_bytes, snapshot_bytes};
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value};
use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};
use cowheap_tenants::{Tenant, TenantConfig};
use std::path::Path;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds DIR");
    let dir = Path::new(&dir);
    for d in [
        "snapshot",
        "layer",
        "vm_method",
        "segment_file",
        "project_import",
        "segment_words",
        "swap_adopt",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let base = base();
    let x = |i: usize| Value::base(ObjectIndex::new(i).unwrap());
    let class = base.heap().root("Smalltalk").map(|_| x(1)).unwrap();
    for (n, private) in [(0, false), (1, true)] {
        let config = TenantConfig {
            marks: if private {
                MarkPolicy::Private
            } else {
                MarkPolicy::Shared
            },
            ..TenantConfig::default()
        };
        let mut t = Tenant::fork_with(base, config);
        let mut made = Vec::new();
        for i in 0..6 {
            let o = t
                .alloc(class, Format::Pointers, ObjectSize { slots: 3, bytes: 0 })
                .unwrap();
            t.set_slot(o, 0, x(10 + i)).unwrap();
            if let Some(&p) = made.last() {
                t.set_slot(o, 1, p).unwrap();
            }
            made.push(o);
        }
        for i in 20..26 {
            if t.size(x(i)).is_ok_and(|s| s.slots > 0) {
                t.set_slot(x(i), 0, made[i % made.len()]).unwrap();
            }
        }
        t.set_root("a", made[5]).unwrap();
        t.set_root("b", x(21)).unwrap();
        t.become_forward(made[2], made[3]).unwrap();
        let bytes = t.snapshot();
        let flags = u8::from(private);
        let mut seed = vec![flags];
        seed.extend(&bytes[SNAPSHOT_HEADER..]);
        assert_eq!(snapshot_bytes(flags, &seed[1..]), bytes);
        std::fs::write(dir.join(format!("snapshot/s{n}")), seed).unwrap();
        t.collect();
        let mut seed = vec![flags];
        seed.extend(&t.snapshot()[SNAPSHOT_HEADER..]);
        std::fs::write(dir.join(format!("snapshot/s{n}-collected")), seed).unwrap();
        // Recording its reads: the reads section (flag bit 3).
        t.record_reads(true).unwrap();
        for i in 40..46 {
            let _ = t.size(x(i));
        }
        let bytes = t.snapshot();
        let flags = u8::try_from(u32::from_le_bytes(bytes[12..16].try_into().unwrap())).unwrap();
        assert!(
            flags & 8 != 0,
            "a recording tenant's snapshot has a reads section"
        );
        let mut seed = vec![flags];
        seed.extend(&bytes[SNAPSHOT_HEADER..]);
        assert_eq!(snapshot_bytes(flags, &seed[1..]), bytes);
        std::fs::write(dir.join(format!("snapshot/s{n}-reads")), seed).unwrap();
    }

    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    for i in 30..40 {
        if t.size(x(i)).is_ok_and(|s| s.slots > 0) {
            t.set_slot(x(i), 0, Value::int(i as i64)).unwrap();
        }
    }
    let o = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    t.set_slot(x(41), 0, o).unwrap();
    let mut layer = None;
    repo.commit_through(&mut t, "seed", CommitMode::WriteWrite, &[], |l| {
        layer = Some(l.to_bytes());
        Ok::<_, std::io::Error>(())
    })
    .unwrap();
    let layer = layer.unwrap();
    std::fs::write(dir.join("layer/l0"), &layer[..layer.len() - 32]).unwrap();

    for portable in [false, true] {
        let mut t = Tenant::fork(base);
        let outside = own_objects(&mut t);
        let root = t
            .alloc(class, Format::Pointers, ObjectSize { slots: 4, bytes: 0 })
            .unwrap();
        let inner = t
            .alloc(class, Format::Bytes, ObjectSize { slots: 0, bytes: 5 })
            .unwrap();
        t.set_slot(root, 0, inner).unwrap();
        t.set_slot(root, 1, outside[0]).unwrap();
        t.set_slot(root, 2, x(12)).unwrap();
        t.set_slot(root, 3, Value::int(-9)).unwrap();
        t.set_root("seg", root).unwrap();
        let others: Vec<Value> = cowheap_segment::tenant::tenant_roots(&t)
            .into_iter()
            .filter(|&r| !t.identical(r, root).unwrap())
            .collect();
        let mut seg = cowheap_segment::tenant::extract(&t, &[root], &others).unwrap();
        if portable {
            seg.make_portable(base.heap()).unwrap();
        }
        let bytes = cowheap_segment::file::to_bytes(&seg).unwrap();
        let body = &bytes[cowheap_segment::file::HEADER..];
        let flags = u8::from(portable);
        assert_eq!(segment_file_bytes(flags, body), bytes);
        let mut seed = vec![flags];
        seed.extend(body);
        std::fs::write(dir.join(format!("segment_file/f{flags}")), seed).unwrap();
    }

    let projects = cowheap_fuzz::images().join("segments");
    for entry in std::fs::read_dir(&projects).expect("the Etoys projects (COWHEAP_IMAGES)") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pr") {
            let bytes = std::fs::read(&path).unwrap();
            let u = cowheap_segment::container::unwrap(&bytes).unwrap();
            let name = path.file_name().unwrap();
            std::fs::write(dir.join("project_import").join(name), u.stream).unwrap();
            // The segment's words (V3), after a kind byte and the out-pointer count.
            let p = cowheap_segment::Project::from_bytes(&bytes).unwrap();
            let outs = u16::try_from(p.out_pointers.len()).unwrap();
            let mut words = vec![0];
            words.extend(outs.to_le_bytes());
            words.extend(p.segment_bytes());
            std::fs::write(dir.join("segment_words").join(name), words).unwrap();
        }
    }

    // The scene's records as they are, one of them alone, and in the other order.
    let scene = cowheap_fuzz::swap_scene();
    let records = &scene.records;
    let mut reversed = records.clone();
    reversed.reverse();
    for (name, rs) in [
        ("all", &records[..]),
        ("first", &records[..1]),
        ("reversed", &reversed[..]),
    ] {
        let seed = cowheap_fuzz::swap_records_bytes(rs, scene);
        assert_eq!(cowheap_fuzz::swap_records(&seed, scene), rs, "seed {name}");
        std::fs::write(dir.join("swap_adopt").join(name), seed).unwrap();
    }

    // flags, temps, primitive, literal count, literals, bytecodes
    let methods: [&[u8]; 6] = [
        &[0, 0, 0, 0, 120],
        &[0, 2, 0, 1, 0, 112, 118, 176, 124],
        &[1, 1, 0, 1, 4, 112, 143, 0, 0, 3, 118, 125, 209, 124],
        &[2, 2, 0, 2, 3, 5, 112, 16, 208, 124],
        &[8 | 2, 0, 60, 0, 112, 124],
        &[0, 1, 0, 0, 112, 163, 254],
    ];
    for (i, m) in methods.iter().enumerate() {
        std::fs::write(dir.join(format!("vm_method/m{i}")), m).unwrap();
    }
}
