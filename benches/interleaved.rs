//! cowheap's object-memory paths against a flat array of words, interleaved round by round.
//!
//! Criterion measures one variant after another, so a slow phase of a shared machine (another
//! build, a neighbour's job) lands on whichever variant runs then. This bench alternates the
//! variants within every round, rotating their order, and reports for each the median of its
//! per-round ratios to its flat-heap equivalent, which such phases hit alike.
//!
//! The baseline is [`FlatHeap`]: the base in the base heap's own layout (a three-word header,
//! then the slots; a table of offsets) in one owned `Vec<u64>`, with no tenant, marks or
//! tables. It is what a heap that is "a flat array of words" costs, so each ratio is what
//! cowheap adds to that path.
//!
//! ```text
//! cargo bench --bench interleaved                 # 150 rounds of each mode
//! cargo bench --bench interleaved -- --rounds 50
//! cargo bench --bench interleaved -- --once       # one pass each, for instruction counts:
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/deps/interleaved-HASH --once
//! callgrind_annotate --inclusive=yes cg.out | grep -E '=> .*interleaved::(read|write|class|size|hash)_'
//! cargo bench --bench interleaved -- --once-memory  # one memory-bound pass each, for
//!                                                   # callgrind's --cache-sim=yes
//! ```
//!
//! (`cargo bench --bench interleaved --no-run` prints the `interleaved-HASH` path.) Each
//! `=> ... interleaved::VARIANT (1x)` line is the inclusive instruction count of the one call,
//! that is the one pass, of that variant; the bench is single-threaded, so callgrind needs no
//! other option.
//!
//! Two modes:
//!
//! - **cache-resident**: 4,096 random `(object, slot)` pairs over a 10,000-object base, read
//!   again and again (97 passes per sample), so the base, the marks and the copies stay in
//!   the caches: what each path costs in instructions and dependent loads.
//! - **memory-bound**: 262,144 distinct random objects of a 1,000,000-object base (about a
//!   quarter of it), one pass per sample, each sample after a read through a buffer four
//!   times the last-level cache (outside the clock), so nearly every operation misses the
//!   caches and the TLB: what each path costs in memory traffic. (Without that read, a
//!   variant would find much of its pass in the last-level cache when the variant before it
//!   had read the same heap: a pass touches about 33 MiB of lines.)
//!
//! With `--once` each variant makes one pass of the cache-resident mode (the checking pass:
//! nothing else calls the variants' functions), so callgrind's inclusive count of each
//! `read_*`, `write_*`, `class_*`, `size_*` or `hash_*` function divided by 4,096 is its
//! instructions per operation: repeatable where wall times are not. The setup (copying
//! objects, patching the copies' slots) runs in other functions and is not counted.
//!
//! | variant | flat equivalent | what it does per operation |
//! | --- | --- | --- |
//! | `read_flat` | (the baseline) | `FlatHeap::read`: offset, size word, slot |
//! | `read_base_heap` | `read_flat` | `BaseHeap::slot`: the base heap alone, no tenant |
//! | `read_base_word` | `read_flat` | `BaseHeap::slot_word`: as above, with no `Value` |
//! | `read_tenant` | `read_flat` | `Tenant::slot` of an undiverted base object, shared marks |
//! | `read_tenant_private_marks` | `read_flat` | the same with `MarkPolicy::Private` |
//! | `read_own_via_private` | `read_flat_via_slot` | (a) read a private object's slot, which holds the tenant's copy (patched), then the copy's slot |
//! | `read_flat_via_slot` | (a flat equivalent) | read a slot holding a reference, then the referenced object's slot |
//! | `read_own_via_base` | `read_flat` | (b) `Tenant::slot` of a base reference to the tenant's own copy (unpatchable: a table lookup) |
//! | `read_other_diverted` | `read_flat` | (c) `Tenant::slot` of a base object another tenant diverted (shared mark set, this tenant's lane clear, no copy here) |
//! | `write_again_private` | `write_flat` | (d) `Tenant::set_slot` of an already-copied object, through its private reference |
//! | `write_again_via_base` | `write_flat` | (d) the same through the base reference (a table lookup) |
//! | `write_flat` | (a flat equivalent) | `FlatHeap::write`: a store of a small integer |
//! | `class_of_base` | `class_flat` | (e) `Tenant::class_of` of an undiverted base object |
//! | `class_flat` | (a flat equivalent) | `FlatHeap::class`: the header's class word |
//! | `read_flat_reloaded` | `read_flat` | `read_flat` with the heap's fields loaded again for every read, as a loop that calls out of line keeps them |
//! | `read_own_resolved` | `read_flat` | (b) resolved: `Tenant::slot` of the private reference `Tenant::resolve` gave once for the base reference |
//! | `read_reader` | `read_flat` | `TenantReader::slot` of an undiverted base object, through the `Tenant::reader` taken before the loop |
//! | `read_reader_per_read` | `read_flat` | the same with the reader taken afresh at every read: its fields loaded from the tenant each time |
//! | `read_reader_private_marks` | `read_flat` | `read_reader` with `MarkPolicy::Private` (no read in place by the shared marks: the tenant's own, tested inline) |
//! | `read_reader_other` | `read_flat` | (c) through a reader |
//! | `read_reader_resolved` | `read_flat` | (b) resolved, through a reader |
//! | `class_reader` | `class_flat` | (e) `TenantReader::class_of` of an undiverted base object |
//! | `read_reader_via_private` | `read_flat_via_slot` | (a) through a reader |
//! | `size_flat` | (a flat equivalent) | `FlatHeap::size`: the header's size word |
//! | `size_of_base` | `size_flat` | (e) `Tenant::size` of an undiverted base object |
//! | `size_reader` | `size_flat` | (e) `TenantReader::size` of the same |
//! | `size_own_resolved` | `size_flat` | `Tenant::size` of the tenant's own copies, by their private references |
//! | `size_reader_private` | `size_flat` | `TenantReader::size` of the same |
//! | `hash_flat` | (a flat equivalent) | `FlatHeap::hash`: the header's hash |
//! | `hash_of_base` | `hash_flat` | (e) `Tenant::identity_hash` of an undiverted base object |
//! | `hash_reader` | `hash_flat` | (e) `TenantReader::identity_hash` of the same |
//! | `hash_own_resolved` | `hash_flat` | `Tenant::identity_hash` of the tenant's own copies, by their private references |
//! | `read_own_via_private_fwd` | `read_flat_via_slot` | (a) in a tenant whose space holds a forwarder (after a become, until a collection), so a private word read is settled by its key's record |
//! | `read_reader_via_private_fwd` | `read_flat_via_slot` | the same through a reader |
//! | `read_reader_via_base` | `read_flat` | (b) through a reader |
//! | `read_same_lane` | `read_flat` | (c) where a tenant of this tenant's own lane diverted the object: `Tenant::slot` past the shared mark and the lane, answered by this tenant's table filter (which holds copies of other objects) |
//! | `read_reader_same_lane` | `read_flat` | the same through a reader |
//! | `write_writer_private` | `write_flat` | (d) `TenantWriter::try_set_slot` of an already-copied object, through its private reference, by the `Tenant::writer` taken before the loop |
//! | `write_writer_via_base` | `write_flat` | (d) the same through the base reference (a table lookup, by an out-of-line call) |
//!
//! `read_flat_reloaded` is no path of cowheap's: it splits what the loops around the other
//! variants pay (a loop whose body may call a function keeps few of its operand's fields
//! in registers, and loads them again for every read, 4 loads for the flat heap) from what
//! the paths themselves add. In the memory-bound mode those loads are all of the base
//! heap's own gap and about half of `Tenant::slot`'s: the processor overlaps the misses of
//! as many reads as its queues of loads and instructions hold, and each load more per read
//! (but for reloads of the loop's own stack slots, which cost little here) means fewer
//! reads in flight.
//!
//! `read_reader_per_read` is no path to use either: the reader taken afresh at every read,
//! the misuse a reader exists to avoid. Its fields are then loaded from the tenant at every
//! read, as in `Tenant::slot`'s loop, where `read_reader`'s loop keeps them in registers or
//! its own stack frame: the difference is what taking a reader once saves.
//!
//! The same pairs serve every variant of a mode. Checks, outside the clock: every read variant
//! of undiverted objects, (c) in either lane, `read_flat_via_slot` and `read_flat_reloaded`
//! return the same checksum, as do the reader's reads of them; every size and hash variant
//! adds up what the flat heap's do, and each object's whole size and hash, of the base
//! object and of the copy, through the tenant and a reader, is the flat heap's (a copy keeps
//! its base object's); (a), (b) and (b) resolved (each also through a reader, and (a) with a
//! forwarder in the space both ways) agree with each other and each word (a) and (b) read is
//! `Tenant::identical` to the flat heap's; the classes agree; (c) in the diverters' lane
//! probes its table for at most one read in five; the writer variants make every write through
//! their writers; and after a pass of each write variant,
//! the tenant's slots hold what the flat heap holds. The tenants that divert objects (for
//! (a) to (d)) work a second `Base` of the same image, and those of (c) in the diverters'
//! lane a third, so the undiverted variants see no mark set and the others see only their
//! own diverters' marks.

use cowheap::heap::ObjectIndex;
use cowheap::synth;
use cowheap::{Base, BaseHeap, Format, MarkPolicy, ObjectSize, Tenant, TenantConfig, Value, Word};
use cowheap_bench::plain::FlatHeap;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// Operations per pass of the cache-resident mode.
const CACHED_OPS: usize = 4096;

/// Operations per pass of the memory-bound mode, each on a distinct object.
const MEMORY_OPS: usize = 1 << 18;

/// Operations per timed sample of one variant in the cache-resident mode (so one sample is
/// about a millisecond).
const OPS_PER_SAMPLE: usize = 400_000;

/// The variants, each with the index of its flat equivalent (the ratio's denominator).
const VARIANTS: [(&str, usize); 39] = [
    ("read_flat", 0),
    ("read_base_heap", 0),
    ("read_base_word", 0),
    ("read_tenant", 0),
    ("read_tenant_private_marks", 0),
    ("read_own_via_private", 6),
    ("read_flat_via_slot", 6),
    ("read_own_via_base", 0),
    ("read_other_diverted", 0),
    ("write_again_private", 11),
    ("write_again_via_base", 11),
    ("write_flat", 11),
    ("class_of_base", 13),
    ("class_flat", 13),
    ("read_flat_reloaded", 0),
    ("read_own_resolved", 0),
    ("read_reader", 0),
    ("read_reader_per_read", 0),
    ("read_reader_private_marks", 0),
    ("read_reader_other", 0),
    ("read_reader_resolved", 0),
    ("class_reader", 13),
    ("read_reader_via_private", 6),
    ("size_flat", 23),
    ("size_of_base", 23),
    ("size_reader", 23),
    ("size_own_resolved", 23),
    ("size_reader_private", 23),
    ("hash_flat", 28),
    ("hash_of_base", 28),
    ("hash_reader", 28),
    ("hash_own_resolved", 28),
    ("read_own_via_private_fwd", 6),
    ("read_reader_via_private_fwd", 6),
    ("read_reader_via_base", 0),
    ("read_same_lane", 0),
    ("read_reader_same_lane", 0),
    ("write_writer_private", 11),
    ("write_writer_via_base", 11),
];

/// `n` random `(object, slot)` pairs of objects with pointer slots, the same for every run;
/// with `distinct`, no object twice.
fn random_pairs(heap: &BaseHeap, n: usize, distinct: bool) -> Vec<(ObjectIndex, usize)> {
    let candidates: Vec<_> = heap
        .indices()
        .filter(|&x| heap.size(x).is_ok_and(|s| s.slots > 0))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let objects: Vec<ObjectIndex> = if distinct {
        assert!(n <= candidates.len(), "{n} distinct objects are available");
        rand::seq::index::sample(&mut rng, candidates.len(), n)
            .into_iter()
            .map(|k| candidates[k])
            .collect()
    } else {
        (0..n)
            .map(|_| candidates[rng.random_range(0..candidates.len())])
            .collect()
    };
    objects
        .into_iter()
        .map(|x| {
            let slots = heap.size(x).expect("a candidate exists").slots;
            (x, rng.random_range(0..slots))
        })
        .collect()
}

// ----- the flat heap ---------------------------------------------------------------------

#[inline(never)]
fn read_flat(flat: &FlatHeap, pairs: &[(ObjectIndex, usize)]) -> u64 {
    pairs.iter().fold(0, |acc, &(x, i)| {
        acc.wrapping_add(flat.read(x, i).expect("in range"))
    })
}

#[inline(never)]
fn read_flat_reloaded(flat: &FlatHeap, pairs: &[(ObjectIndex, usize)]) -> u64 {
    // `black_box` makes the reference opaque at each read, so the heap's fields are loaded
    // anew, as they would be after a call.
    pairs.iter().fold(0, |acc, &(x, i)| {
        acc.wrapping_add(black_box(flat).read(x, i).expect("in range"))
    })
}

#[inline(never)]
fn read_flat_via_slot(flat: &FlatHeap, holder: ObjectIndex, pairs: &[(ObjectIndex, usize)]) -> u64 {
    pairs.iter().enumerate().fold(0, |acc, (k, &(_, i))| {
        let r = Word::from_bits(flat.read(holder, k).expect("in range"));
        let x = r.as_base().expect("a reference");
        acc.wrapping_add(flat.read(x, i).expect("in range"))
    })
}

#[inline(never)]
fn write_flat(flat: &mut FlatHeap, pairs: &[(ObjectIndex, usize)]) -> u64 {
    for (k, &(x, i)) in pairs.iter().enumerate() {
        flat.write(x, i, k as i64).expect("in range");
    }
    pairs.len() as u64
}

#[inline(never)]
fn class_flat(flat: &FlatHeap, pairs: &[(ObjectIndex, usize)]) -> u64 {
    pairs.iter().fold(0, |acc, &(x, _)| {
        acc.wrapping_add(flat.class(x).expect("an object"))
    })
}

/// An object size's part of a checksum: its slot count, what an interpreter asks a size for
/// most. (Not the slot and byte counts packed back into one word: the compiler sees through
/// that for the flat heap's size word, and not for a size that may come from either of a
/// tenant's paths, so the packing would cost the tenant's variants instructions the flat
/// one does not pay.)
#[inline(always)]
fn size_bits(s: ObjectSize) -> u64 {
    s.slots as u64
}

#[inline(never)]
fn size_flat(flat: &FlatHeap, pairs: &[(ObjectIndex, usize)]) -> u64 {
    pairs.iter().fold(0, |acc, &(x, _)| {
        acc.wrapping_add(size_bits(flat.size(x).expect("an object")))
    })
}

#[inline(never)]
fn hash_flat(flat: &FlatHeap, pairs: &[(ObjectIndex, usize)]) -> u64 {
    pairs.iter().fold(0, |acc, &(x, _)| {
        acc.wrapping_add(u64::from(flat.hash(x).expect("an object")))
    })
}

// ----- the base heap, no tenant ----------------------------------------------------------

#[inline(never)]
fn read_base_heap(heap: &BaseHeap, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, i)| {
        acc.wrapping_add(heap.slot(v, i).expect("in range").word().bits())
    })
}

#[inline(never)]
fn read_base_word(heap: &BaseHeap, pairs: &[(ObjectIndex, usize)]) -> u64 {
    pairs.iter().fold(0, |acc, &(x, i)| {
        acc.wrapping_add(heap.slot_word(x, i).expect("in range").bits())
    })
}

// ----- tenants ---------------------------------------------------------------------------

/// `Tenant::slot` over `reads`: the body of every tenant read variant but (a). Each variant
/// passes its own constant to `black_box` (once per pass), so that the compiler does not merge
/// their identical bodies into one function and callgrind can count them apart.
#[inline(always)]
fn tenant_reads(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, i)| {
        acc.wrapping_add(t.slot(v, i).expect("in range").word().bits())
    })
}

#[inline(never)]
fn read_tenant(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(3);
    tenant_reads(t, reads)
}

#[inline(never)]
fn read_tenant_private_marks(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(4);
    tenant_reads(t, reads)
}

#[inline(never)]
fn read_own_via_base(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(7);
    tenant_reads(t, reads)
}

fn reader_reads(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    let r = t.reader();
    reads.iter().fold(0, |acc, &(v, i)| {
        acc.wrapping_add(r.slot(v, i).expect("in range").word().bits())
    })
}

#[inline(never)]
fn read_reader(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(12);
    reader_reads(t, reads)
}

#[inline(never)]
fn read_reader_per_read(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, i)| {
        acc.wrapping_add(t.reader().slot(v, i).expect("in range").word().bits())
    })
}

#[inline(never)]
fn read_reader_private_marks(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(13);
    reader_reads(t, reads)
}

#[inline(never)]
fn read_reader_other(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(14);
    reader_reads(t, reads)
}

#[inline(never)]
fn read_reader_resolved(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(15);
    reader_reads(t, reads)
}

#[inline(never)]
fn read_reader_via_base(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(24);
    reader_reads(t, reads)
}

#[inline(never)]
fn class_reader(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    let r = t.reader();
    reads.iter().fold(0, |acc, &(v, _)| {
        acc.wrapping_add(r.class_of(v).expect("an object").word().bits())
    })
}

#[inline(never)]
fn read_reader_via_private(t: &Tenant, holder: Value, reads: &[(Value, usize)]) -> u64 {
    let r = t.reader();
    reads.iter().enumerate().fold(0, |acc, (k, &(_, i))| {
        let copy = r.slot(holder, k).expect("in range");
        acc.wrapping_add(r.slot(copy, i).expect("in range").word().bits())
    })
}

/// `Tenant::size` over `reads`: the body of both tenant size variants.
#[inline(always)]
fn tenant_sizes(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, _)| {
        acc.wrapping_add(size_bits(t.size(v).expect("an object")))
    })
}

#[inline(never)]
fn size_of_base(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(16);
    tenant_sizes(t, reads)
}

#[inline(never)]
fn size_own_resolved(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(17);
    tenant_sizes(t, reads)
}

/// `TenantReader::size` over `reads`: the body of both reader size variants.
#[inline(always)]
fn reader_sizes(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    let r = t.reader();
    reads.iter().fold(0, |acc, &(v, _)| {
        acc.wrapping_add(size_bits(r.size(v).expect("an object")))
    })
}

#[inline(never)]
fn size_reader(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(18);
    reader_sizes(t, reads)
}

#[inline(never)]
fn size_reader_private(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(19);
    reader_sizes(t, reads)
}

/// `Tenant::identity_hash` over `reads`: the body of both tenant hash variants.
#[inline(always)]
fn tenant_hashes(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, _)| {
        acc.wrapping_add(u64::from(t.identity_hash(v).expect("an object")))
    })
}

#[inline(never)]
fn hash_of_base(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(20);
    tenant_hashes(t, reads)
}

#[inline(never)]
fn hash_own_resolved(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(21);
    tenant_hashes(t, reads)
}

#[inline(never)]
fn hash_reader(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    let r = t.reader();
    reads.iter().fold(0, |acc, &(v, _)| {
        acc.wrapping_add(u64::from(r.identity_hash(v).expect("an object")))
    })
}

#[inline(never)]
fn read_own_resolved(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(11);
    tenant_reads(t, reads)
}

#[inline(never)]
fn read_other_diverted(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(8);
    tenant_reads(t, reads)
}

#[inline(never)]
fn read_same_lane(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(25);
    tenant_reads(t, reads)
}

#[inline(never)]
fn read_reader_same_lane(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    black_box(26);
    reader_reads(t, reads)
}

#[inline(never)]
fn read_own_via_private(t: &Tenant, holder: Value, reads: &[(Value, usize)]) -> u64 {
    reads.iter().enumerate().fold(0, |acc, (k, &(_, i))| {
        let copy = t.slot(holder, k).expect("in range");
        acc.wrapping_add(t.slot(copy, i).expect("in range").word().bits())
    })
}

/// `read_own_via_private`'s body again, and `read_reader_via_private_fwd` the reader's, each
/// written out rather than shared: shared through an inlined helper, the compiler merged
/// the variants and (a) ran 73.6 instructions against 64.6, through a reader 109.0 against
/// 85.5, so the variants no longer measured the paths they name.
#[inline(never)]
fn read_own_via_private_fwd(t: &Tenant, holder: Value, reads: &[(Value, usize)]) -> u64 {
    black_box(22);
    reads.iter().enumerate().fold(0, |acc, (k, &(_, i))| {
        let copy = t.slot(holder, k).expect("in range");
        acc.wrapping_add(t.slot(copy, i).expect("in range").word().bits())
    })
}

#[inline(never)]
fn read_reader_via_private_fwd(t: &Tenant, holder: Value, reads: &[(Value, usize)]) -> u64 {
    black_box(23);
    let r = t.reader();
    reads.iter().enumerate().fold(0, |acc, (k, &(_, i))| {
        let copy = r.slot(holder, k).expect("in range");
        acc.wrapping_add(r.slot(copy, i).expect("in range").word().bits())
    })
}

/// `Tenant::set_slot` over `writes`: the body of both write variants.
#[inline(always)]
fn tenant_writes(t: &mut Tenant, writes: &[(Value, usize)]) -> u64 {
    for (k, &(v, i)) in writes.iter().enumerate() {
        t.set_slot(v, i, Value::int(k as i64)).expect("in range");
    }
    writes.len() as u64
}

#[inline(never)]
fn write_again_private(t: &mut Tenant, writes: &[(Value, usize)]) -> u64 {
    black_box(9);
    tenant_writes(t, writes)
}

#[inline(never)]
fn write_again_via_base(t: &mut Tenant, writes: &[(Value, usize)]) -> u64 {
    black_box(10);
    tenant_writes(t, writes)
}

/// `TenantWriter::try_set_slot` over `writes`, through a writer taken before the loop and
/// again after each write it leaves to `Tenant::set_slot`: the body of both writer variants.
/// Returns the writes the writers made.
#[inline(always)]
fn writer_writes(t: &mut Tenant, writes: &[(Value, usize)]) -> u64 {
    let (mut k, mut made) = (0, 0);
    while k < writes.len() {
        let w = t.writer();
        while let Some(&(v, i)) = writes.get(k)
            && w.try_set_slot(v, i, Value::int(k as i64))
        {
            k += 1;
            made += 1;
        }
        if let Some(&(v, i)) = writes.get(k) {
            t.set_slot(v, i, Value::int(k as i64)).expect("in range");
            k += 1;
        }
    }
    made
}

#[inline(never)]
fn write_writer_private(t: &mut Tenant, writes: &[(Value, usize)]) -> u64 {
    black_box(37);
    writer_writes(t, writes)
}

#[inline(never)]
fn write_writer_via_base(t: &mut Tenant, writes: &[(Value, usize)]) -> u64 {
    black_box(38);
    writer_writes(t, writes)
}

#[inline(never)]
fn class_of_base(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, _)| {
        acc.wrapping_add(t.class_of(v).expect("an object").word().bits())
    })
}

// ----- the fixture -----------------------------------------------------------------------

/// Copies every object of `reads` into `t` (a first write of each pair's slot with the value
/// it holds), reads each pair once so that the copies' slots are patched, and returns a
/// private object whose slot `k` refers to the copy of pair `k`'s object.
///
/// The copies are made in a shuffled order, not the order of `reads`: copies made one after
/// another lie side by side in memory, and a pass in the order they were made would stream
/// through them where the flat heap's pass jumps about.
fn divert_all(t: &mut Tenant, reads: &[(Value, usize)]) -> Value {
    let mut order: Vec<usize> = (0..reads.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(11));
    for k in order {
        let (v, i) = reads[k];
        let w = t.slot(v, i).expect("in range");
        t.set_slot(v, i, w).expect("a first write");
    }
    let class = t.class_of(reads[0].0).expect("an object");
    let size = ObjectSize {
        slots: reads.len(),
        bytes: 0,
    };
    let holder = t.alloc(class, Format::Pointers, size).expect("allocates");
    for (k, &(v, i)) in reads.iter().enumerate() {
        t.set_slot(holder, k, v).expect("in range");
        let copy = t.slot(holder, k).expect("in range");
        assert!(copy.word().as_base().is_none(), "the slot holds the copy");
        black_box(t.slot(copy, i).expect("in range"));
    }
    holder
}

/// Everything one mode works on; built outside the clock.
struct Fixture {
    /// Base A: no tenant diverts anything.
    base: Arc<Base>,
    flat: FlatHeap,
    /// A flat pointer object whose slot `k` refers to pair `k`'s object.
    flat_holder: ObjectIndex,
    /// The flat heap the write variant writes.
    flat_written: FlatHeap,
    pairs: Vec<(ObjectIndex, usize)>,
    reads: Vec<(Value, usize)>,
    /// Base A, shared marks.
    shared: Tenant,
    /// Base A, private marks.
    private_marks: Tenant,
    /// Base B (the same image, another `Base`): holds a copy of every object read, and `holder`.
    own: Tenant,
    holder: Value,
    /// `reads` as `own` resolves them: private references to its copies.
    own_resolved: Vec<(Value, usize)>,
    /// Base B: as `own`, and its space holds a forwarder (one private object becomed into
    /// another, not yet collected); `fwd_holder` is its `holder`.
    own_fwd: Tenant,
    fwd_holder: Value,
    /// Base B: holds no copy; `own`, `own_fwd` and `writer` diverted every object read, in
    /// lanes other than this tenant's.
    other: Tenant,
    /// Base C (the same image again): holds a copy of every object read.
    lane_diverter: Tenant,
    /// Base C: in `lane_diverter`'s lane, holds copies of objects none of `reads` names.
    same: Tenant,
    /// Base B: holds a copy of every object read; `writer_copies` are private references to
    /// them.
    writer: Tenant,
    writer_copies: Vec<(Value, usize)>,
}

impl Fixture {
    fn new(objects: usize, ops: usize, distinct: bool) -> Fixture {
        let base = Base::new(synth::image(objects, 1));
        let diverted = Base::new(synth::image(objects, 1));
        let pairs = random_pairs(base.heap(), ops, distinct);
        let reads: Vec<(Value, usize)> = pairs.iter().map(|&(x, i)| (Value::base(x), i)).collect();
        let mut flat = FlatHeap::of(base.heap()).expect("a flat copy");
        let flat_written = flat.clone();
        let class = Word::from_bits(flat.class(pairs[0].0).expect("an object"));
        let refs: Vec<Word> = pairs.iter().map(|&(x, _)| Word::base(x)).collect();
        let flat_holder = flat.push(class, &refs).expect("a holder");
        let mut own = Tenant::fork(&diverted);
        let holder = divert_all(&mut own, &reads);
        let own_resolved = reads
            .iter()
            .map(|&(v, i)| (own.resolve(v).expect("a copy"), i))
            .collect();
        let mut own_fwd = Tenant::fork(&diverted);
        let fwd_holder = divert_all(&mut own_fwd, &reads);
        let size = ObjectSize { slots: 1, bytes: 0 };
        let class = own_fwd.class_of(fwd_holder).expect("an object");
        let (from, to) = (
            own_fwd
                .alloc(class, Format::Pointers, size)
                .expect("allocates"),
            own_fwd
                .alloc(class, Format::Pointers, size)
                .expect("allocates"),
        );
        own_fwd.set_root("to", to).expect("a root");
        own_fwd.become_forward(from, to).expect("a become");
        assert!(
            from.word() != to.word() && own_fwd.identical(from, to).expect("comparable"),
            "`from` is a forwarder to `to`"
        );
        let mut writer = Tenant::fork(&diverted);
        let writer_holder = divert_all(&mut writer, &reads);
        let writer_copies = reads
            .iter()
            .enumerate()
            .map(|(k, &(_, i))| (writer.slot(writer_holder, k).expect("in range"), i))
            .collect();
        // The tenant of (c), in a lane apart from every diverter's (lanes are drawn at fork,
        // at random), so that (c) is always the read past another lane's mark.
        let diverters = own.lane() | own_fwd.lane() | writer.lane();
        let other = (0..100_000)
            .map(|_| Tenant::fork(&diverted))
            .find(|t| t.lane() & diverters == 0)
            .expect("a tenant of a lane no diverter has");
        // The tenant of (c) in the diverter's lane, on a third `Base` (so that no mark of
        // `diverted` changes): the shared mark of every object read has its lane set, so
        // its own table's filter answers each read. It holds copies of as many other objects
        // as `reads` names (none that `reads` names), so that its filter has bits set as a
        // working tenant's has.
        let laned = Base::new(synth::image(objects, 1));
        let mut lane_diverter = Tenant::fork(&laned);
        divert_all(&mut lane_diverter, &reads);
        let mut same = (0..100_000)
            .map(|_| Tenant::fork(&laned))
            .find(|t| t.lane() == lane_diverter.lane())
            .expect("a tenant of the diverter's lane");
        let read: std::collections::HashSet<ObjectIndex> = pairs.iter().map(|&(x, _)| x).collect();
        let heap = laned.heap();
        let others: Vec<(Value, usize)> = heap
            .indices()
            .filter(|x| !read.contains(x) && heap.size(*x).is_ok_and(|s| s.slots > 0))
            .take(read.len())
            .map(|x| (Value::base(x), 0))
            .collect();
        divert_all(&mut same, &others);
        let private_marks = Tenant::fork_with(
            &base,
            TenantConfig {
                marks: MarkPolicy::Private,
                quota: None,
            },
        );
        Fixture {
            shared: Tenant::fork(&base),
            private_marks,
            other,
            lane_diverter,
            same,
            base,
            flat,
            flat_holder,
            flat_written,
            pairs,
            reads,
            own,
            holder,
            own_resolved,
            own_fwd,
            fwd_holder,
            writer,
            writer_copies,
        }
    }

    /// One pass of variant `k`; returns its checksum (for a write, the writes made).
    fn pass(&mut self, k: usize) -> u64 {
        let (pairs, reads) = (black_box(&self.pairs[..]), black_box(&self.reads[..]));
        match k {
            0 => read_flat(&self.flat, pairs),
            1 => read_base_heap(self.base.heap(), reads),
            2 => read_base_word(self.base.heap(), pairs),
            3 => read_tenant(&self.shared, reads),
            4 => read_tenant_private_marks(&self.private_marks, reads),
            5 => read_own_via_private(&self.own, self.holder, reads),
            6 => read_flat_via_slot(&self.flat, self.flat_holder, pairs),
            7 => read_own_via_base(&self.own, reads),
            8 => read_other_diverted(&self.other, reads),
            9 => write_again_private(&mut self.writer, black_box(&self.writer_copies)),
            10 => write_again_via_base(&mut self.writer, reads),
            11 => write_flat(&mut self.flat_written, pairs),
            12 => class_of_base(&self.shared, reads),
            13 => class_flat(&self.flat, pairs),
            14 => read_flat_reloaded(&self.flat, pairs),
            15 => read_own_resolved(&self.own, black_box(&self.own_resolved)),
            16 => read_reader(&self.shared, reads),
            17 => read_reader_per_read(&self.shared, reads),
            18 => read_reader_private_marks(&self.private_marks, reads),
            19 => read_reader_other(&self.other, reads),
            20 => read_reader_resolved(&self.own, black_box(&self.own_resolved)),
            21 => class_reader(&self.shared, reads),
            22 => read_reader_via_private(&self.own, self.holder, reads),
            23 => size_flat(&self.flat, pairs),
            24 => size_of_base(&self.shared, reads),
            25 => size_reader(&self.shared, reads),
            26 => size_own_resolved(&self.own, black_box(&self.own_resolved)),
            27 => size_reader_private(&self.own, black_box(&self.own_resolved)),
            28 => hash_flat(&self.flat, pairs),
            29 => hash_of_base(&self.shared, reads),
            30 => hash_reader(&self.shared, reads),
            31 => hash_own_resolved(&self.own, black_box(&self.own_resolved)),
            32 => read_own_via_private_fwd(&self.own_fwd, self.fwd_holder, reads),
            33 => read_reader_via_private_fwd(&self.own_fwd, self.fwd_holder, reads),
            34 => read_reader_via_base(&self.own, reads),
            35 => read_same_lane(&self.same, reads),
            36 => read_reader_same_lane(&self.same, reads),
            37 => write_writer_private(&mut self.writer, black_box(&self.writer_copies)),
            38 => write_writer_via_base(&mut self.writer, reads),
            _ => unreachable!("variant {k} has no pass"),
        }
    }

    /// One pass of every variant, checking that they read and write the same words; with
    /// `evict`, each pass after a read through it.
    fn check(&mut self, evict: Option<&[u64]>) {
        let sums: Vec<u64> = (0..VARIANTS.len())
            .map(|k| {
                if let Some(buffer) = evict {
                    black_box(evict_caches(buffer));
                }
                self.pass(k)
            })
            .collect();
        for k in [1, 2, 3, 4, 6, 8, 14, 16, 17, 18, 19, 35, 36] {
            assert_eq!(
                sums[k], sums[0],
                "{} reads what read_flat reads",
                VARIANTS[k].0
            );
        }
        assert_eq!(sums[5], sums[7], "(a) and (b) read the same copies");
        assert_eq!(
            sums[22], sums[5],
            "(a) through a reader reads what (a) reads"
        );
        assert_eq!(sums[15], sums[7], "(b) resolved reads what (b) reads");
        assert_eq!(
            sums[34], sums[7],
            "(b) through a reader reads what (b) reads"
        );
        for k in [32, 33] {
            assert_eq!(sums[k], sums[5], "{} reads what (a) reads", VARIANTS[k].0);
        }
        assert_eq!(
            sums[20], sums[7],
            "(b) resolved, through a reader, reads what (b) reads"
        );
        assert_eq!(
            sums[21], sums[13],
            "class_reader reads the flat heap's classes"
        );
        assert_eq!(
            sums[12], sums[13],
            "class_of_base reads the flat heap's classes"
        );
        for k in 24..=27 {
            assert_eq!(
                sums[k], sums[23],
                "{} reads the flat heap's sizes",
                VARIANTS[k].0
            );
        }
        for k in 29..=31 {
            assert_eq!(
                sums[k], sums[28],
                "{} reads the flat heap's hashes",
                VARIANTS[k].0
            );
        }
        for k in [9, 10, 37, 38] {
            assert_eq!(
                sums[k],
                self.reads.len() as u64,
                "{} makes every write (through its writer for the writer's variants)",
                VARIANTS[k].0
            );
        }
        for (k, &(x, i)) in self.pairs.iter().enumerate() {
            // Whole sizes and hashes (the checksums above add slot counts only), of the base
            // object and of the copy, through the tenant and a reader.
            let (size, hash) = (self.flat.size(x), self.flat.hash(x));
            let (size, hash) = (size.expect("an object"), hash.expect("an object"));
            let (v, copy) = (Value::base(x), self.own_resolved[k].0);
            let (shared, own) = (self.shared.reader(), self.own.reader());
            for got in [
                self.shared.size(v),
                shared.size(v),
                self.own.size(copy),
                own.size(copy),
            ] {
                assert_eq!(got.expect("an object"), size, "the flat heap's size");
            }
            for got in [
                self.shared.identity_hash(v),
                shared.identity_hash(v),
                self.own.identity_hash(copy),
                own.identity_hash(copy),
            ] {
                assert_eq!(got.expect("an object"), hash, "the flat heap's hash");
            }
            let flat = Value::shared(Word::from_bits(self.flat.read(x, i).expect("in range")));
            let (copy, v) = (
                self.own.slot(self.holder, k).expect("in range"),
                Value::base(x),
            );
            for read in [self.own.slot(v, i), self.own.slot(copy, i)] {
                let read = read.expect("in range");
                assert!(self.own.identical(read, flat).expect("comparable"));
            }
            // (c) reads past a set mark, in a lane no diverter set.
            let mark = self.other.base().marks().entry(x.as_u32()).expect("a mark");
            assert!(
                self.other.base().marks().is_marked(x.as_u32()) && mark & self.other.lane() == 0,
                "(c) is the read past another lane's mark"
            );
            let laned = self.same.base().marks().entry(x.as_u32()).expect("a mark");
            assert!(
                laned & self.same.lane() != 0
                    && self.same.resolve(v).expect("an object").word() == v.word(),
                "(c) in the diverters' lane reads past its own lane's mark, of an object it did not copy"
            );
            let written = self.flat_written.read(x, i).expect("in range");
            let w = self.writer.slot(v, i).expect("in range").word();
            assert_eq!(
                w.bits(),
                written,
                "the writer holds what the flat heap holds"
            );
        }
        let (s, o) = (self.shared.stats(), self.other.stats());
        assert_eq!(s.lookups, 0, "no undiverted read looks up");
        // The tenant of (c) diverted nothing, so its (empty) table is never consulted: each
        // read finds the shared mark set and its own lane clear, and reads the base in place.
        assert_eq!(
            (o.lookups, self.other.diverted()),
            (0, 0),
            "no read of (c) looks up, and it has no copy"
        );
        // (c) in the diverters' lane: its table's filter answers at least four reads in five
        // with no probe (a false "maybe" is at most 9.4% of them).
        assert_eq!(
            self.same.lane(),
            self.lane_diverter.lane(),
            "(c) in the diverters' lane shares its diverter's lane"
        );
        let before = self.same.stats().lookups;
        assert_eq!(
            self.pass(35),
            sums[0],
            "read_same_lane reads what read_flat reads"
        );
        let probes = self.same.stats().lookups - before;
        let n = self.reads.len() as u64;
        assert!(
            probes * 5 <= n,
            "{probes} probes of {n} reads in the diverters' lane"
        );
    }
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bytes of the last-level cache, from Linux's description of CPU 0's caches, if it gives one.
fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| {
        let size = std::fs::read_to_string(e.ok()?.path().join("size")).ok()?;
        let size = size.trim();
        let (n, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
        let scale = match unit {
            "K" => 1 << 10,
            "M" => 1 << 20,
            _ => return None,
        };
        n.parse::<usize>().ok().map(|n| n * scale)
    })
    .max()
}

/// Reads through `buffer` (from [`eviction_buffer`]): what a memory-bound sample had in the
/// caches is then mostly gone.
fn evict_caches(buffer: &[u64]) -> u64 {
    buffer.iter().fold(0, |acc, &w| acc ^ w)
}

/// A buffer to read through before each memory-bound sample, four times the last-level cache
/// (32 MiB assumed where Linux does not say), at least 64 MiB and at most 1 GiB: reading it
/// leaves little of the previous sample's lines in the caches, and few of its pages in the TLB
/// (a scan-resistant cache, or a buffer on huge pages, may keep some). Without it a sample
/// would find in the last-level cache much of what the variant before it read, when both read
/// the same heap (the same pairs, in the same order), and the ratios would say more about the
/// order of the variants than about their paths.
fn eviction_buffer() -> Vec<u64> {
    let bytes = (4 * last_level_cache_bytes().unwrap_or(32 << 20)).clamp(64 << 20, 1 << 30);
    // Written, so that every page is its own (an untouched page reads the shared zero page).
    (0..bytes / 8).map(|k| k as u64).collect()
}

/// Runs every variant `rounds` times, `passes` passes per sample, and prints nanoseconds per
/// operation and the median ratio of each variant to its flat equivalent. With `evict`, each
/// sample starts after a read through it, outside the clock.
fn run(name: &str, f: &mut Fixture, rounds: usize, passes: usize, evict: Option<&[u64]>) {
    f.check(evict);
    let ops = f.pairs.len();
    let objects = f.base.heap().len();
    if rounds == 0 {
        println!("{name}: {objects} objects, one pass of {ops} operations per variant, checked");
        return;
    }
    let n = VARIANTS.len();
    let mut ns = vec![Vec::with_capacity(rounds); n];
    for r in 0..rounds {
        for j in 0..n {
            let k = (r + j) % n;
            if let Some(buffer) = evict {
                black_box(evict_caches(buffer));
            }
            let start = Instant::now();
            for _ in 0..passes {
                black_box(f.pass(k));
            }
            ns[k].push(start.elapsed().as_nanos() as f64 / (passes * ops) as f64);
        }
    }
    println!(
        "{name}: {objects} objects, {rounds} rounds of {passes} x {ops} operations (ns per op):"
    );
    for (k, &(variant, flat)) in VARIANTS.iter().enumerate() {
        let ratio = median((0..rounds).map(|r| ns[k][r] / ns[flat][r]).collect());
        println!(
            "  {variant:26} median {:7.2}  min {:7.2}  ratio to {:18} {ratio:.3}",
            median(ns[k].clone()),
            ns[k].iter().copied().fold(f64::MAX, f64::min),
            VARIANTS[flat].0,
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; other flags are this bench's own.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name);
    let rounds = flag("--rounds")
        .and_then(|i| args.get(i + 1))
        .map_or(150, |n| n.parse().expect("--rounds takes a number"));
    if flag("--once-memory").is_some() {
        // One pass of each variant over the large base, each after the eviction buffer: for
        // callgrind's cache simulation.
        let mut memory = Fixture::new(1_000_000, MEMORY_OPS, true);
        let evict = eviction_buffer();
        run("memory-bound", &mut memory, 0, 1, Some(&evict));
        return;
    }
    let mut cached = Fixture::new(10_000, CACHED_OPS, false);
    if flag("--once").is_some() {
        // One pass of each variant over the small base: for callgrind's instruction counts.
        run("cache-resident", &mut cached, 0, 1, None);
        return;
    }
    run(
        "cache-resident",
        &mut cached,
        rounds,
        OPS_PER_SAMPLE / CACHED_OPS,
        None,
    );
    drop(cached);
    let mut memory = Fixture::new(1_000_000, MEMORY_OPS, true);
    let evict = eviction_buffer();
    run("memory-bound", &mut memory, rounds, 1, Some(&evict));
}
