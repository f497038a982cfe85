#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowheap_fuzz::swap_adopt(data));
