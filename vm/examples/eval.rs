//! Evaluates Smalltalk source in a real image: `cargo run -p cowheap-vm --example eval -- IMAGE EXPR...`.

use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: eval IMAGE EXPR...");
    let heap = cowheap_squeak::import(&path).expect("import").heap;
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).expect("vm");
    for src in args {
        let before = vm.stats();
        let r = vm
            .evaluate(&mut t, &symbols, &src, 500_000_000)
            .and_then(|v| vm.print_string(&mut t, &symbols, v, 500_000_000));
        let st = vm.stats();
        match r {
            Ok(s) => println!("{src} => {s}"),
            Err(e) => println!("{src} => ERROR {e}"),
        }
        println!(
            "   bytecodes {} sends {} contexts {}",
            st.bytecodes - before.bytecodes,
            st.sends - before.sends,
            st.contexts - before.contexts
        );
    }
}
