//! Two-factor authentication: the enrolment state machine (`enrolment`), the one place a code is
//! checked (`second_factor`), the sealing of TOTP secrets at rest (`sealing`), and security keys
//! and passkeys (`security_keys`, WebAuthn).

pub mod enrolment;
pub mod sealing;
pub mod second_factor;
pub mod security_keys;
