//! Stored files on disk, knowing nothing of the database: [`BlobStore`] (`blobs.rs`) keeps
//! each distinct content once, under its SHA-256, and [`UrlSigner`] (`signer.rs`) signs the
//! upload URLs a mutation hands out and the download URLs `ctx.storage.getUrl` returns.
//!
//! The one thing to know: a blob becomes visible only by `rename` of a complete, fsynced
//! temporary file, so a crash leaves at most a stray temporary file (removed at the next
//! start), never a half-written blob under a real name. Which blobs are still wanted is the
//! database's business (`_storage` rows); this crate only writes, lists and removes them, and
//! offers the lock that keeps removal away from a running export or backup.

mod blobs;
mod digest;
mod signer;
mod spool;
mod writeback;

pub use blobs::{BlobError, BlobStore, BlobWriter, GcLock, ReadersGuard, StagedBlob};
pub use digest::Sha256Digest;
pub use signer::{TokenError, UploadToken, UrlSigner};
