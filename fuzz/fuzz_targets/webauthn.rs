#![no_main]
//! Fuzz target: see `tessera_server::fuzzing::webauthn`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tessera_server::fuzzing::webauthn(text);
    }
});
