//! The package half of the npm API: reads (packuments, tarballs, search) and every change to a
//! package (publish, unpublish, deprecate, dist-tags, owners, access, stars). `paths` parses the
//! package namespace and dispatches; `writes` sorts the shared `PUT /:pkg` bodies.

pub mod access;
pub mod attestations;
pub mod audit;
pub mod deprecate;
pub mod dist_tags;
pub mod owners;
pub mod paths;
pub mod publish;
pub mod read;
pub mod search;
pub mod signatures;
pub mod stage;
pub mod star;
pub mod trust;
pub mod unpublish;
pub mod writes;
