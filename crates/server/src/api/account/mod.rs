//! The account half of the npm API: `npm adduser`/`login`/`logout`, `whoami`, `profile`,
//! `enable-2fa`/`disable-2fa` and `token`.

pub mod login;
pub mod misc;
pub mod oidc;
pub mod profile;
pub mod tokens;
pub mod two_factor;
pub mod web_login;
