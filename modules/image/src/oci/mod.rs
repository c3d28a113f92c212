//! OCI images on disk: the source syntax ([`source`]), reading an image's files from a
//! layout directory or an archive ([`blobs`]), what an import will do ([`plan`]), applying
//! layers safely ([`apply`]) and packing the result ([`build`]). Blocking code only; the
//! engine runs it on the blocking pool.

pub mod apply;
pub mod blobs;
pub mod build;
pub mod plan;
pub mod source;
