//! HTTP plumbing: the one error type, body extraction, the access log and `npm-notice` headers.

pub mod access_log;
pub mod error;
pub mod extract;
pub mod notice;
