//! HTTP plumbing: the accept loop and its connection limits, the service each connection runs,
//! the one error type, body extraction, the access log and `npm-notice` headers.

pub mod access_log;
pub mod entry;
pub mod error;
pub mod extract;
pub mod listener;
pub mod notice;
