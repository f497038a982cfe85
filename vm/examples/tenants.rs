//! Many tenants of one base running at once: aggregate throughput on 1 thread and on 2.
//! `cargo run --release -p cowheap-vm --example tenants -- IMAGES_DIR [TENANTS] [N]` runs
//! `N benchFib` (default 18) in each of TENANTS (default 1,000) tenants of
//! bootstrapped.image, and prints both reports and the ratio.

use cowheap_forwarders::Base;
use cowheap_vm::Symbols;
use cowheap_vm::run::{RunOptions, run_base};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "../shared/images".into());
    let tenants: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let n = args.next().unwrap_or_else(|| "18".into());
    let heap = cowheap_squeak::import(format!("{dir}/bootstrapped.image"))
        .unwrap()
        .heap;
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut rates = Vec::new();
    for threads in [1, 2] {
        let options = RunOptions {
            tenants,
            budget: u64::MAX,
            threads: Some(threads),
            selector: Some("benchFib".into()),
        };
        let report = run_base(&base, &symbols, &n, &options).unwrap();
        println!("{report}\n");
        rates.push(report.bytecodes() as f64 / report.elapsed.as_secs_f64());
    }
    println!(
        "2 threads / 1 thread aggregate throughput: {:.2}x",
        rates[1] / rates[0]
    );
}
