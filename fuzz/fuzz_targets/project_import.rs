#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowheap_fuzz::project_import(data));
