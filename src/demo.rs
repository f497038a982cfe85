//! `cowheap demo`: one base, many tenants writing real objects and allocating in parallel,
//! isolation checked, and what each tenant holds.

use crate::{DemoArgs, image_cmd, mib};
use anyhow::{Context, Result, ensure};
use cowheap::{Base, BaseHeap, Format, ObjectSize, Registry, TenantId, Value, synth};
use std::sync::Arc;
use std::time::Instant;

/// The base objects each demo tenant writes, found by shape so the demo runs on a synthetic
/// base and on any real image: pointer objects of two or more slots whose slot 1 a tenant
/// overwrites (globals' associations where the image names its globals), an element of an
/// Array, and an entry of a method dictionary. What the base does not have is skipped, and
/// said so.
struct Targets {
    /// Objects whose slot 1 the tenants write, one per write.
    objects: Vec<Value>,
    /// What `objects` are, in words.
    objects_are: &'static str,
    /// An Array and the element each tenant writes.
    array: Option<(Value, usize)>,
    /// A method dictionary's array and the entry each tenant writes.
    method_entry: Option<(Value, usize)>,
    /// What the base lacked, in words.
    skipped: Vec<&'static str>,
}

/// Most objects found by scanning a base whose globals are not found.
const SCAN_LIMIT: usize = 4_096;

impl Targets {
    fn find(heap: &BaseHeap) -> Result<Targets> {
        let slots = |v: Value| heap.index_of(v).and_then(|x| heap.size(x)).map(|s| s.slots);
        let pointers_with = |v: Value, n: usize| {
            v.is_object()
                && v.word() != heap.nil().word()
                && heap
                    .index_of(v)
                    .and_then(|x| heap.object(x))
                    .is_ok_and(|o| o.format == Format::Pointers && o.slots.len() >= n)
        };
        let mut skipped = Vec::new();
        // A SystemDictionary is (tally, array of associations); a synthetic base's Smalltalk
        // is the array itself. Some images leave the root nil.
        let globals = heap.root("Smalltalk").filter(|&g| pointers_with(g, 1));
        let array_of_globals = globals.map(|g| match heap.slot(g, 1) {
            Ok(a) if pointers_with(a, 8) && slots(g).is_ok_and(|n| n <= 4) => a,
            _ => g,
        });
        let associations: Vec<Value> = array_of_globals
            .into_iter()
            .flat_map(|a| (0..slots(a).unwrap_or(0)).filter_map(move |i| heap.slot(a, i).ok()))
            .filter(|&a| pointers_with(a, 2))
            .collect();
        let (objects, objects_are) = if associations.is_empty() {
            skipped.push("the base names no globals: wrote pointer objects found by a scan");
            let found: Vec<Value> = heap
                .indices()
                .map(Value::base)
                .filter(|&v| pointers_with(v, 2))
                .take(SCAN_LIMIT)
                .collect();
            (found, "pointer objects")
        } else {
            (associations, "global values")
        };
        ensure!(
            !objects.is_empty(),
            "the base has no pointer object of two slots or more for tenants to write"
        );
        let specials = heap.roots().first().map(|r| Value::from(r.value));
        let array = match (specials, array_of_globals) {
            (Some(s), _) if pointers_with(s, 2) && globals.is_none_or(|g| !g.same_word(s)) => {
                Some((s, slots(s)? - 1))
            }
            (_, Some(a)) => Some((a, 0)),
            _ => {
                skipped.push("no Array found: wrote no Array element");
                None
            }
        };
        // A class's slot 1 is its method dictionary, whose slot 1 is the array of its entries.
        let method_entry = heap
            .class_word(heap.index_of(objects[0])?)
            .ok()
            .and_then(|class| heap.slot(Value::from(class), 1).ok())
            .filter(|&md| pointers_with(md, 2))
            .and_then(|md| heap.slot(md, 1).ok())
            .filter(|&entries| pointers_with(entries, 1))
            .map(|entries| (entries, 0))
            // An entry that is the Array's element would overwrite it.
            .filter(|&(e, i)| array.is_none_or(|(a, j)| !(a.same_word(e) && i == j)));
        if method_entry.is_none() {
            skipped.push("no method dictionary found: wrote no method entry");
        }
        // The Array and the method entries are written at their own slots, not as targets;
        // an object the globals name twice is written once, so that each tenant's one write
        // to it is the one it sees.
        let mut objects = objects;
        let others = [array.map(|a| a.0), method_entry.map(|e| e.0)];
        objects.retain(|o| !others.iter().flatten().any(|x| x.same_word(*o)));
        let mut seen = std::collections::HashSet::new();
        objects.retain(|o| seen.insert(o.word()));
        ensure!(
            !objects.is_empty(),
            "the base has no pointer object of two slots or more for tenants to write"
        );
        Ok(Targets {
            objects,
            objects_are,
            array,
            method_entry,
            skipped,
        })
    }

    /// Every place a tenant writes besides `objects`, with the value tenant `tag` writes.
    fn places(&self, tag: i64) -> impl Iterator<Item = (Value, usize, i64)> {
        let array = self.array.map(|(a, i)| (a, i, tag));
        let entry = self.method_entry.map(|(e, i)| (e, i, -tag));
        array.into_iter().chain(entry)
    }
}

/// Bytes a demo tenant holds besides its writes and allocations: its record in the registry,
/// its tables and its root (about 2 KiB measured with a few writes; counted high).
const TENANT_BYTES: u64 = 1024;
/// Bytes a demo tenant holds per base object it writes: the copy of a small pointer object
/// and its table entry (about 75 bytes measured on mini.image's globals; counted high).
const WRITE_BYTES: u64 = 128;
/// Bytes a demo tenant holds per object it allocates: a two-slot object and its entry
/// (56 bytes measured).
const ALLOC_BYTES: u64 = 64;

/// About how many bytes the demo holds at its peak on a base of `base_bytes` in `objects`
/// objects: the base, then every tenant with its writes (at most one per base object) and
/// its allocations. A synthetic base is built from a base's worth of parts first
/// (`building`: three times what the base then holds, as the bench counts it). Saturating,
/// so that counts at their bounds give `u64::MAX`, never a wrapped figure. Time: O(1).
fn memory_estimate(args: &DemoArgs, base_bytes: u64, objects: u64, building: bool) -> u64 {
    let n = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
    let writes = n(args.writes).clamp(1, objects.max(1));
    let per_tenant = TENANT_BYTES
        .saturating_add(writes.saturating_mul(WRITE_BYTES))
        .saturating_add(n(args.allocs).saturating_mul(ALLOC_BYTES));
    let running = base_bytes.saturating_add(n(args.tenants).saturating_mul(per_tenant));
    if building {
        running.max(base_bytes.saturating_mul(3))
    } else {
        running
    }
}

/// Ends the process with an argument error (exit 2) if [`memory_estimate`] passes the memory
/// available to the process ([`cowheap_bench::proc_status::available_memory`]), unless
/// `--no-memory-check`: a demo of many tenants that each allocate many objects would
/// otherwise be ended by the allocator or the system part-way, after minutes of work.
fn check_memory(args: &DemoArgs, base_bytes: u64, objects: u64, building: bool) {
    if args.no_memory_check {
        return;
    }
    let Some(available) = cowheap_bench::proc_status::available_memory() else {
        return;
    };
    let needed = memory_estimate(args, base_bytes, objects, building);
    if needed > available {
        let message = format!(
            "this demo would hold about {} MiB at its peak, but {} MiB are available: lower \
             --tenants, --allocs, --writes or --objects, or pass --no-memory-check",
            needed >> 20,
            available >> 20
        );
        crate::argument_error(&["demo"], clap::error::ErrorKind::ValueValidation, message).exit();
    }
}

pub(crate) fn demo(args: &DemoArgs) -> Result<()> {
    ensure!(args.tenants > 0, "--tenants must be at least 1");
    let t0 = Instant::now();
    let (heap, what) = match &args.image {
        Some(path) => {
            let (heap, what) = image_cmd::load(path, cowheap::Verification::Full)?;
            check_memory(args, heap.memory_bytes() as u64, heap.len() as u64, false);
            (heap, what)
        }
        None => {
            // A synthetic base holds at least a few hundred objects, whatever is asked.
            let objects = (args.objects as u64).max(1_000);
            let bytes = objects.saturating_mul(cowheap_bench::SYNTHETIC_BYTES_PER_OBJECT);
            check_memory(args, bytes, objects, true);
            (
                synth::image(args.objects, args.seed),
                format!("synthetic Smalltalk-shaped image, seed {}", args.seed),
            )
        }
    };
    let base = Base::new(heap);
    outln!("cowheap demo: one base, many tenants")?;
    outln!(
        "base: {} objects, {:.1} MiB, ready in {:.0} ms ({what})",
        base.heap().len(),
        mib(base.memory_bytes() as u64),
        t0.elapsed().as_secs_f64() * 1e3,
    )?;
    let targets = Targets::find(base.heap())?;
    for s in &targets.skipped {
        outln!("note: {s}")?;
    }
    let registry = Registry::new(base.clone());
    let t0 = Instant::now();
    let ids: Vec<_> = (0..args.tenants).map(|_| registry.spawn()).collect();
    let fork = t0.elapsed();
    outln!(
        "forked {} tenants in {:.2} ms ({:.2} µs each)",
        ids.len(),
        fork.as_secs_f64() * 1e3,
        fork.as_secs_f64() * 1e6 / ids.len() as f64
    )?;
    // Each tenant writes distinct objects, so its last write to each is the one it sees.
    let writes = args.writes.clamp(1, targets.objects.len());
    work(&registry, &targets, writes, args.allocs)?;
    check_isolation(&base, &registry, &ids, &targets)?;
    print_memory(&base, &registry, &ids)
}

/// Every tenant writes into the targets, then allocates objects linked from a root of its own.
fn work(registry: &Registry, targets: &Targets, writes: usize, allocs: usize) -> Result<()> {
    let t0 = Instant::now();
    let failures = std::sync::Mutex::new(Vec::new());
    registry.par_for_each(|t| {
        let result = (|| -> cowheap::Result<()> {
            let tag = tag(t.id());
            for (i, &obj) in targets.objects.iter().take(writes).enumerate() {
                t.set_slot(obj, 1, Value::int(tag * 1000 + i as i64))?;
            }
            for (obj, slot, value) in targets.places(tag) {
                t.set_slot(obj, slot, Value::int(value))?;
            }
            let class = t.class_of(targets.objects[0])?;
            let mut list = t.base().heap().nil();
            for i in 0..allocs {
                let node = t.alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })?;
                t.set_slot(node, 0, Value::int(i as i64))?;
                t.set_slot(node, 1, list)?;
                list = node;
            }
            t.set_root("mine", list)?;
            Ok(())
        })();
        if let Err(e) = result {
            failures.lock().expect("no panics hold this lock").push(e);
        }
    });
    if let Some(e) = failures
        .into_inner()
        .expect("no panics hold this lock")
        .pop()
    {
        return Err(e).context("a tenant's work failed");
    }
    let mut wrote = format!("each tenant wrote {writes} {}", targets.objects_are);
    if targets.array.is_some() {
        wrote.push_str(", an Array element");
    }
    if targets.method_entry.is_some() {
        wrote.push_str(", a method dictionary entry");
    }
    outln!(
        "{wrote} and allocated {allocs} objects: {:.1} ms in all",
        t0.elapsed().as_secs_f64() * 1e3
    )?;
    Ok(())
}

/// The value a tenant writes is made of its id.
fn tag(id: TenantId) -> i64 {
    i64::try_from(id.get()).unwrap_or(i64::MAX) % 1_000_000_000
}

/// Every tenant sees its own writes; the base and a fresh tenant see none.
fn check_isolation(
    base: &Arc<Base>,
    registry: &Registry,
    ids: &[TenantId],
    targets: &Targets,
) -> Result<()> {
    let heap = base.heap();
    let first = targets.objects[0];
    let mut checked = 0u64;
    for &id in ids {
        registry
            .with(id, |t| -> Result<()> {
                let tag = tag(t.id());
                let v = t.slot(first, 1)?.as_int();
                ensure!(v == Some(tag * 1000), "{id} sees {v:?} where it wrote");
                for (obj, slot, value) in targets.places(tag) {
                    ensure!(
                        t.slot(obj, slot)?.as_int() == Some(value),
                        "{id} lost a write"
                    );
                    checked += 1;
                }
                checked += 1;
                Ok(())
            })
            .context("tenant vanished")??;
    }
    let fresh = cowheap::Tenant::fork(base);
    let places = std::iter::once((first, 1)).chain(targets.places(0).map(|(o, i, _)| (o, i)));
    for (obj, i) in places {
        let original = heap.slot(obj, i)?;
        ensure!(
            fresh.slot(obj, i)?.same_word(original),
            "a fresh tenant sees a write"
        );
        ensure!(
            base.heap().slot(obj, i)?.same_word(original),
            "the base changed"
        );
    }
    outln!(
        "isolation: checked {checked} reads; each tenant sees only its own writes, the base none"
    )?;
    Ok(())
}

/// What the first tenants hold, and all of them together against full copies.
fn print_memory(base: &Arc<Base>, registry: &Registry, ids: &[TenantId]) -> Result<()> {
    outln!()?;
    outln!(
        "{:>10} {:>7} {:>7} {:>9} {:>12} {:>12}",
        "tenant",
        "copies",
        "allocs",
        "private",
        "private B",
        "memory B"
    )?;
    let mut total_private = 0u64;
    let mut total_memory = 0u64;
    for (row, &id) in ids.iter().enumerate() {
        registry
            .with(id, |t| -> Result<()> {
                let s = t.stats();
                total_private += s.private_bytes;
                total_memory += t.memory_bytes() as u64;
                if row < 5 {
                    outln!(
                        "{:>10} {:>7} {:>7} {:>9} {:>12} {:>12}",
                        id.get(),
                        s.copies,
                        s.allocations,
                        s.private_objects,
                        s.private_bytes,
                        t.memory_bytes()
                    )?;
                }
                Ok(())
            })
            .context("tenant vanished")??;
    }
    if ids.len() > 5 {
        outln!("{:>10}", format!("(+{} more)", ids.len() - 5))?;
    }
    let n = ids.len() as u64;
    let full_copies = base.heap().memory_bytes() as u64 * n;
    outln!()?;
    outln!(
        "private memory: {:.2} MiB for {} tenants ({:.0} B each); the shared base: {:.1} MiB once",
        mib(total_memory),
        n,
        total_memory as f64 / n as f64,
        mib(base.memory_bytes() as u64)
    )?;
    outln!(
        "a full copy of the base per tenant would take {:.1} MiB: {:.0}x more",
        mib(full_copies),
        full_copies as f64 / total_memory.max(1) as f64
    )?;
    outln!(
        "charged private bytes (quota accounting): {:.2} MiB",
        mib(total_private)
    )?;
    outln!(
        "diverted base objects (shared marks set): {}",
        base.marks().count()
    )?;
    Ok(())
}
