//! Trusted publishing: CI jobs publish with a short-lived token they get by exchanging their
//! identity token (OIDC), instead of a long-lived secret. `identity` verifies the identity token
//! against a configured issuer; `publishers` holds what `npm trust` configures and the matching.
//! The routes are `api/packages/trust.rs` (configuration) and `api/account/oidc.rs` (exchange).

pub mod identity;
pub mod publishers;
