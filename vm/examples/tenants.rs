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

#[path = "common/cpu.rs"]
mod cpu;

use cowheap_forwarders::Base;
use cowheap_vm::Symbols;
use cowheap_vm::run::{RunOptions, run_base};
use cpu::{Cpus, Ticks};

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
