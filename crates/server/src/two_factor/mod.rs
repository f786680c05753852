//! Two-factor authentication: the enrolment state machine (`enrolment`), the one place a code is
//! checked (`second_factor`), and the sealing of TOTP secrets at rest (`sealing`).

pub mod enrolment;
pub mod sealing;
pub mod second_factor;
