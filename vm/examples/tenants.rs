//! Many tenants of one base running at once: aggregate throughput on 1 thread and on 2.
//! `cargo run --release -p cowheap-vm --example tenants -- IMAGES_DIR [TENANTS] [N] [ROUNDS]`
//! runs `N benchFib` (default 18) in each of TENANTS (default 1,000) tenants of
//! bootstrapped.image, on 1 thread then on 2, ROUNDS times (default 3), and prints each
//! report, the ratio of the best rates and each round's ratio.
//!
//! On a shared machine a ratio means nothing unless the second core was free, so on Linux
//! each run also says how many CPUs this process used and how many the rest of the machine
//! used meanwhile (from `/proc/self/stat` and `/proc/stat`): a round in which others used
//! more than a few tenths of a CPU did not measure scaling.

use cowheap_forwarders::Base;
use cowheap_vm::Symbols;
use cowheap_vm::run::{RunOptions, run_base};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "../shared/images".into());
    let tenants: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let n = args.next().unwrap_or_else(|| "18".into());
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let heap = cowheap_squeak::import(format!("{dir}/bootstrapped.image"))
        .unwrap()
        .heap;
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    // Per round: (bytecodes per second, CPUs of this process, CPUs of others) on 1 and 2.
    let mut results: Vec<[(f64, Option<Cpus>); 2]> = Vec::new();
    for round in 1..=rounds {
        let mut pair = [(0.0, None); 2];
        for (slot, threads) in [1, 2].into_iter().enumerate() {
            let options = RunOptions {
                tenants,
                budget: u64::MAX,
                threads: Some(threads),
                selector: Some("benchFib".into()),
            };
            let before = Ticks::now();
            let report = run_base(&base, &symbols, &n, &options).unwrap();
            let cpus = before.and_then(|b| Ticks::now().map(|a| a.since(&b)));
            println!("round {round}: {report}");
            match cpus {
                Some(c) => println!(
                    "CPUs used meanwhile: this process {:.2}, the rest of the machine {:.2} (of {})\n",
                    c.own, c.others, c.cores
                ),
                None => println!("(no /proc: CPU use unknown)\n"),
            }
            pair[slot] = (
                report.bytecodes() as f64 / report.elapsed.as_secs_f64(),
                cpus,
            );
        }
        results.push(pair);
    }
    let best = |i: usize| results.iter().map(|r| r[i].0).fold(0.0, f64::max);
    println!(
        "best of {rounds}: 1 thread {:.1} M bytecodes/s, 2 threads {:.1} M/s: {:.2}x",
        best(0) / 1e6,
        best(1) / 1e6,
        best(1) / best(0)
    );
    for (i, [one, two]) in results.iter().enumerate() {
        let others = |c: &Option<Cpus>| c.map_or("?".into(), |c| format!("{:.2}", c.others));
        println!(
            "round {}: 2 threads / 1 thread {:.2}x (others used {} CPUs during the 1-thread run, {} during the 2-thread run)",
            i + 1,
            two.0 / one.0,
            others(&one.1),
            others(&two.1)
        );
    }
}

/// Clock ticks of CPU time: this process's (all its threads), the whole machine's busy time
/// and its total (busy and idle, over every CPU).
#[derive(Clone, Copy, Debug)]
struct Ticks {
    own: u64,
    busy: u64,
    total: u64,
    cores: usize,
}

/// CPUs in use on average over an interval.
#[derive(Clone, Copy, Debug)]
struct Cpus {
    own: f64,
    others: f64,
    cores: usize,
}

impl Ticks {
    /// The counters now, from `/proc/self/stat` and `/proc/stat`; `None` without `/proc`.
    fn now() -> Option<Ticks> {
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at field 3, `state`;
        // `utime` and `stime` are fields 14 and 15.
        let fields: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        let cores = stat
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        Some(Ticks {
            own,
            busy,
            total: busy + at(3) + at(4),
            cores,
        })
    }

    /// What was used between `earlier` and `self`, in CPUs (unit-free: ticks over all the
    /// ticks the machine had, times its CPUs).
    fn since(&self, earlier: &Ticks) -> Cpus {
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        let own = self.own.saturating_sub(earlier.own) as f64;
        let busy = self.busy.saturating_sub(earlier.busy) as f64;
        let cores = self.cores.max(1) as f64;
        Cpus {
            own: own / total * cores,
            others: (busy - own).max(0.0) / total * cores,
            cores: self.cores,
        }
    }
}
