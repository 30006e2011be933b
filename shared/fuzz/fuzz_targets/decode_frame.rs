//! libFuzzer target: the wire-protocol decoder properties of `paddock_shared_fuzz::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paddock_shared_fuzz::check(data);
});
