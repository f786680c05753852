//! Authentication: who is calling. `caller` turns a request's credential (token, Basic, or
//! website session) into a [`caller::Caller`]; `passwords` and `api_tokens` hash the secrets;
//! `throttle` counts failures; `handshakes` carry npm's browser login flows; `address_budget`
//! limits the rows unauthenticated requests may create.

pub mod address_budget;
pub mod api_tokens;
pub mod caller;
pub mod handshakes;
pub mod passwords;
pub mod throttle;
