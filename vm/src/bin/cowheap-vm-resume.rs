//! Restores a tenant snapshot holding a run suspended by its budget, resumes the run to its
//! end and prints the answer (a SmallInteger) on standard output. The suspend-and-resume
//! test runs it as a second process.
//!
//! Usage: `cowheap-vm-resume IMAGE SNAPSHOT`

use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{Vm, VmError};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, snapshot] = args.as_slice() else {
        eprintln!("usage: cowheap-vm-resume IMAGE SNAPSHOT");
        return ExitCode::from(2);
    };
    let heap = match cowheap_squeak::import(image) {
        Ok(i) => i.heap,
        Err(e) => {
            eprintln!("importing {image}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = Base::new(heap);
    let mut t = match Tenant::restore(&base, std::path::Path::new(snapshot)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("restoring {snapshot}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut vm = match Vm::new(&t) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut resumes = 0u64;
    loop {
        resumes += 1;
        match vm.resume(&mut t, 1_000_000) {
            Ok(v) => {
                println!(
                    "{}",
                    v.as_int()
                        .map_or_else(|| format!("{v:?}"), |i| i.to_string())
                );
                eprintln!("resumed {resumes} time(s)");
                return ExitCode::SUCCESS;
            }
            Err(VmError::BudgetExhausted { .. }) if resumes < 10_000 => {}
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
}
