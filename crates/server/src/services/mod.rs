//! Account services shared by the npm API, the website and the admin CLI: `accounts` (sign-up,
//! password check, profile, password), `tokens` (spec, minting, create, revoke, summary) and the
//! `security_log`. They take typed input and an account the door has already let through.

pub mod accounts;
pub mod security_log;
pub mod tokens;
