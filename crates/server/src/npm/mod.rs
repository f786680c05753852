//! npm's formats: package names and specs, versions, tarballs, packuments and their cache.

pub mod ids;
pub mod names;
pub mod packument;
pub mod packument_cache;
pub mod tarball;
pub mod versions;
