//! Authorisation: what a caller may do. `gate` holds the 2FA rules; `token_scope` what a granular
//! token reaches; `policy` the registry-wide 2FA requirement.

pub mod gate;
pub mod policy;
pub mod token_scope;
