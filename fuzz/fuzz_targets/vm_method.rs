#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowheap_fuzz::vm_method(data));
