#![no_main]
//! Fuzz target: see `tessera_server::fuzzing::tarball`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tessera_server::fuzzing::tarball(data)
});
