//! HTTP plumbing: the accept loop and its connection limits, the service each connection runs,
//! the one error type, body extraction, the access log, `npm-notice` headers and the large
//! bodies sent with `sendfile`.

pub mod access_log;
pub mod entry;
pub mod error;
pub mod extract;
pub mod listener;
pub mod notice;
pub mod sendable;
