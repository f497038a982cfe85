//! The interpreter's third comparator: `fork()`ed children inheriting a plain heap, beside a
//! cowheap tenant and the flat heap in this process.
//!
//! For each program (`N benchFib` and `10 benchmark`, the image's sieve, on
//! bootstrapped.image; a compile-and-run of `Integer>>triple` with the image's own compiler
//! on mini.image and on Scratch), the parent builds one [`FlatHeap`] of the image before it
//! forks; each of CHILDREN children makes a `Vm` on its copy-on-write copy of that heap,
//! runs the program ROUNDS times and reports the best time and its `Private_Dirty` (read in
//! the child from `/proc/self/smaps_rollup`, as it starts and after its runs) through a pipe.
//! The same program runs ROUNDS times on a second flat heap in this process and on a
//! tenant, the best round of each counting, taking turns with the children (a round on the
//! flat heap, one on the tenant, a wave of PARALLEL children, again), and the tenant is then
//! collected and asked for its private bytes. Every side must give the same answer, bytecodes
//! and sends in its first run. The CPUs the rest of the machine used meanwhile are printed:
//! on a shared machine, figures taken while others used a CPU compare nothing.
//!
//! `cargo run --release -p cowheap-vm --example fork -- IMAGES_DIR [CHILDREN] [N] [ROUNDS]
//! [PARALLEL]` (defaults 8, 26, 3, 1: children run one at a time). `FORK_COLLECTION_STEP=BYTES`
//! sets every `Vm`'s collection step (8 MB by default), `FORK_IMAGES=mini,Scratch` picks
//! images. Linux only.

#[cfg(target_os = "linux")]
#[path = "common/cpu.rs"]
mod cpu;
#[cfg(target_os = "linux")]
#[path = "fork/probe.rs"]
mod probe;

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the fork comparator reads /proc: Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use super::cpu::Ticks;
    use super::probe::{self, Best, ChildReport, ChildRuns, Outcome, Program};
    use cowheap_forwarders::Base;
    use cowheap_tenants::Tenant;
    use cowheap_vm::{FlatHeap, Symbols, Vm};

    /// The budget of every run: far above what the programs take.
    const BUDGET: u64 = 10_000_000_000;

    struct Args {
        dir: String,
        children: usize,
        n: i64,
        rounds: usize,
        parallel: usize,
        /// `FORK_COLLECTION_STEP`: every `Vm`'s collection step in bytes.
        collection_step: Option<u64>,
        /// `FORK_IMAGES`: the images to run (a comma-separated list of names' prefixes).
        images: Option<String>,
    }

    pub(super) fn main() {
        let mut a = std::env::args().skip(1);
        let dir = a.next().unwrap_or_else(|| "../shared/images".into());
        let mut num = |d: usize| a.next().and_then(|x| x.parse().ok()).unwrap_or(d);
        let args = Args {
            dir,
            children: num(8),
            n: num(26) as i64,
            rounds: num(3).max(1),
            parallel: num(1).max(1),
            collection_step: std::env::var("FORK_COLLECTION_STEP")
                .ok()
                .and_then(|s| s.parse().ok()),
            images: std::env::var("FORK_IMAGES").ok(),
        };
        let triple_mini = "Integer addSelector: #triple withMethod: ((Compiler new compile: \
                           'triple ^self * 3' in: Integer notifying: nil ifFail: [nil]) \
                           generate: #(0 0 0 0)). 14 triple";
        let triple_scratch = "Integer compile: 'triple ^self * 3'. 14 triple";
        let images: [(&str, Vec<Program>); 3] = [
            (
                "bootstrapped.image",
                vec![
                    Program::Send {
                        receiver: args.n,
                        selector: "benchFib",
                    },
                    Program::Send {
                        receiver: 10,
                        selector: "benchmark",
                    },
                ],
            ),
            ("mini.image", vec![Program::Evaluate(triple_mini.into())]),
            (
                "Scratch-1.4.0.6.image",
                vec![Program::Evaluate(triple_scratch.into())],
            ),
        ];
        println!(
            "{} children per program, {} at a time; every side runs each program {} times, the best counting",
            args.children, args.parallel, args.rounds
        );
        if let Some(step) = args.collection_step {
            println!("collection step {step} bytes");
        }
        for (image, programs) in images {
            if let Some(only) = &args.images
                && !only.split(',').any(|p| image.starts_with(p))
            {
                continue;
            }
            let heap = cowheap_squeak::import(format!("{}/{image}", args.dir))
                .unwrap_or_else(|e| panic!("importing {image}: {e}"))
                .heap;
            let symbols = Symbols::from_base(&heap);
            // The heap the children inherit, never run in this process, and a second one to
            // run here.
            let mut inherited = FlatHeap::from_base(&heap);
            let mut here = inherited.clone();
            let base = Base::new(heap);
            println!(
                "\n{image}: {} objects; this process's resident set with both flat heaps and the base: {:.1} MB",
                inherited.len(),
                probe::self_rss().unwrap_or(0) as f64 / 1e6
            );
            for program in &programs {
                compare(&args, program, &symbols, &mut inherited, &mut here, &base);
            }
        }
    }

    fn compare(
        args: &Args,
        program: &Program,
        symbols: &Symbols,
        inherited: &mut FlatHeap,
        here: &mut FlatHeap,
        base: &std::sync::Arc<Base>,
    ) {
        assert_eq!(
            probe::thread_count(),
            Some(1),
            "the fork comparator forks from a single thread"
        );
        let mut vf = Vm::new(&*here).unwrap();
        let mut tenant = Tenant::fork(base);
        let mut vt = Vm::new(&tenant).unwrap();
        if let Some(step) = args.collection_step {
            vf.set_collection_step(step);
            vt.set_collection_step(step);
        }
        let runs = ChildRuns {
            budget: BUDGET,
            rounds: args.rounds,
            collection_step: args.collection_step,
        };
        // The sides take turns (a round on the flat heap, one on the tenant, a wave of
        // children), so that all of them see the same disturbances of a shared machine.
        let (mut flat, mut ten): (Option<Best>, Option<Best>) = (None, None);
        let mut reports: Vec<ChildReport> = Vec::with_capacity(args.children);
        let mut wall = std::time::Duration::ZERO;
        let before = Ticks::now();
        for round in 0..args.rounds.max(args.children.div_ceil(args.parallel)) {
            if round < args.rounds {
                let f = program.run(&mut vf, here, symbols, BUDGET).unwrap();
                let t = program.run(&mut vt, &mut tenant, symbols, BUDGET).unwrap();
                flat.get_or_insert(Best::new(f)).add(f);
                ten.get_or_insert(Best::new(t)).add(t);
            }
            let wave = args.parallel.min(args.children - reports.len());
            if wave > 0 {
                let children =
                    probe::run_children(inherited, symbols, program, runs, wave, args.parallel)
                        .expect("fork children");
                reports.extend(children.reports);
                wall += children.wall;
            }
        }
        let cpus = before.and_then(|b| Ticks::now().map(|a| a.since(&b)));
        let (flat, ten) = (flat.unwrap(), ten.unwrap());
        tenant.collect();
        let private = tenant.stats().private_bytes;
        let memory = tenant.memory_bytes();
        let bests: Vec<Best> = reports
            .iter()
            .map(|r| r.outcome.expect("a child's run"))
            .collect();
        let key = |b: &Best| (b.first.answer, b.first.bytecodes, b.first.sends);
        let agree = bests.iter().all(|b| key(b) == key(&flat)) && key(&ten) == key(&flat);
        println!(
            "{} = {}: {} bytecodes, {} sends in the first run; {}",
            program.label(),
            flat.first
                .answer
                .map_or("(not a SmallInteger)".into(), |a| a.to_string()),
            flat.first.bytecodes,
            flat.first.sends,
            if agree {
                "every child, the flat heap and the tenant agree"
            } else {
                "THE SIDES DISAGREE"
            }
        );
        assert!(agree, "flat {flat:?}, tenant {ten:?}, children {bests:?}");
        let line = |label: &str, o: &Outcome| {
            println!(
                "  {label:32} {:8.4} s {:7.1} M bytecodes/s {:6.2} M sends/s",
                o.time.as_secs_f64(),
                o.bytecodes_per_s() / 1e6,
                o.sends_per_s() / 1e6
            );
        };
        line("flat heap, first run", &flat.first);
        line("tenant, first run", &ten.first);
        let mut firsts: Vec<Outcome> = bests.iter().map(|b| b.first).collect();
        firsts.sort_by(|a, b| b.bytecodes_per_s().total_cmp(&a.bytecodes_per_s()));
        line("fork() child, first run, median", &firsts[firsts.len() / 2]);
        line("flat heap, fastest run", &flat.fastest);
        line("tenant, fastest run", &ten.fastest);
        let mut by_speed: Vec<Outcome> = bests.iter().map(|b| b.fastest).collect();
        by_speed.sort_by(|a, b| b.bytecodes_per_s().total_cmp(&a.bytecodes_per_s()));
        let median = by_speed[by_speed.len() / 2];
        line("fork() child, fastest", &by_speed[0]);
        line("fork() child, median", &median);
        line("fork() child, slowest", &by_speed[by_speed.len() - 1]);
        let rate = |b: &Outcome| b.bytecodes_per_s();
        println!(
            "  tenant / flat heap {:.2}x; median child / flat heap {:.2}x; {} children in {:.3} s of wall time",
            rate(&ten.fastest) / rate(&flat.fastest),
            rate(&median) / rate(&flat.fastest),
            bests.len(),
            wall.as_secs_f64()
        );
        if let Some(c) = cpus {
            println!(
                "  CPUs used meanwhile: this process and its children {:.2}, the rest of the machine {:.2} (of {})",
                c.own, c.others, c.cores
            );
        }
        let dirty = |f: fn(&ChildReport) -> Option<u64>| {
            let mut v: Vec<u64> = reports.iter().filter_map(f).collect();
            v.sort_unstable();
            v
        };
        let faults = dirty(|r| r.minor_faults);
        let start = dirty(|r| r.dirty_at_start);
        let with_vm = dirty(|r| r.dirty_with_vm);
        let after = dirty(|r| r.dirty_after);
        let kib = |v: &[u64], i: usize| v.get(i).map_or(f64::NAN, |&b| b as f64 / 1024.0);
        println!(
            "  private memory: tenant {private} bytes after collection ({memory} bytes with its record and tables); \
             fork() child Private_Dirty after its runs {:.0} KiB median ({:.0}-{:.0}); at its start {:.0} KiB, with its Vm made {:.0} KiB",
            kib(&after, after.len() / 2),
            kib(&after, 0),
            kib(&after, after.len().saturating_sub(1)),
            kib(&start, start.len() / 2),
            kib(&with_vm, with_vm.len() / 2),
        );
        println!(
            "  fork() child minor page faults during its runs: {} median ({}-{})",
            faults.get(faults.len() / 2).map_or(0, |&f| f),
            faults.first().map_or(0, |&f| f),
            faults.last().map_or(0, |&f| f),
        );
    }
}
