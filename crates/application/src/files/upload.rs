//! Getting bytes in and rows out: checking an upload URL, recording an uploaded blob (one
//! commit that claims the URL's token and inserts the `_storage` row), storing bytes from an
//! action, and deleting a file from an action.
//!
//! The order that makes a refusal write nothing: the token is checked (signature, expiry, not
//! yet claimed) before the body is read; the body goes to a temporary file; only then, under
//! the commit lock, is the blob promoted and the row committed, and if that commit refuses
//! (the token was claimed meanwhile) the collector's check removes the blob again unless
//! another row has the same bytes.

use database::{Database, DbError, MutationOutcome, MutationTxn, Transaction};
use filestore::{StagedBlob, UploadToken};
use value::{Object, Value};

use super::{FileError, FileStorage, STORAGE_TABLE, now_ms};

/// What a failed record commit answers when the token was already claimed.
const TOKEN_USED: &str = "upload token already used";

impl FileStorage {
    /// Checks an upload URL's token before its body is read: signature, expiry, and that no
    /// upload used it yet. Blocking (one snapshot read).
    pub fn check_upload(&self, db: &Database, token: &str) -> Result<UploadToken, FileError> {
        let token = self.signer.check_upload_token(token, now_ms())?;
        if db.full_snapshot()?.is_claimed(&claim_key(&token))? {
            return Err(FileError::UsedToken);
        }
        Ok(token)
    }

    /// A writer for an upload, bounded by the upload limit.
    pub fn writer(&self) -> Result<filestore::BlobWriter, FileError> {
        Ok(self.blobs.writer(self.max_upload_bytes)?)
    }

    /// Records a finished upload: promotes the blob and commits its `_storage` row, claiming
    /// `token` in the same commit. Returns the storage id. Blocking (waits for the commit).
    pub fn commit_upload(
        &self,
        db: &Database,
        token: Option<&UploadToken>,
        staged: StagedBlob,
        content_type: Option<String>,
    ) -> Result<String, FileError> {
        let size = staged.size;
        let _commit = self.commit_lock.lock();
        let digest = self.blobs.promote(staged)?;
        let claim = token.map(|t| (claim_key(t), t.expires_ms));
        let sha256 = digest.base64();
        let run: database::MutationFn = Box::new(move |mut txn: MutationTxn| {
            if let Some((key, expires)) = &claim {
                match txn.claim(key, *expires, now_ms()) {
                    Ok(true) => {}
                    Ok(false) => return Err(TOKEN_USED.to_string()),
                    Err(e) => return Err(e.to_string()),
                }
            }
            let mut fields = Object::new();
            fields.insert("sha256".into(), Value::String(sha256));
            fields.insert("size".into(), Value::Float64(size as f64));
            if let Some(content_type) = content_type {
                fields.insert("contentType".into(), Value::String(content_type));
            }
            txn.system_insert(STORAGE_TABLE, fields)
                .map(|id| id.to_string())
                .map_err(|e| e.to_string())
        });
        let outcome = db.mutate_blocking(None, run);
        match outcome {
            Ok(MutationOutcome::Committed { response, .. }) => Ok(response),
            Ok(MutationOutcome::Replayed { response, .. }) => Ok(response),
            failed => {
                // Nothing refers to the promoted blob unless another row has these bytes.
                self.remove_if_unreferenced(db, &[digest]);
                match failed {
                    Ok(MutationOutcome::Failed { response }) if response == TOKEN_USED => {
                        Err(FileError::UsedToken)
                    }
                    Ok(MutationOutcome::Failed { response }) => Err(DbError::internal(format!(
                        "recording an upload failed: {response}"
                    ))
                    .into()),
                    Err(e) => Err(e.into()),
                    Ok(_) => Err(DbError::internal("unreachable upload outcome").into()),
                }
            }
        }
    }

    /// `ctx.storage.store(bytes)` in an action: writes and records the bytes. Blocking.
    pub fn store_bytes(
        &self,
        db: &Database,
        bytes: &[u8],
        content_type: Option<String>,
    ) -> Result<String, FileError> {
        let mut writer = self.writer()?;
        writer.write(bytes)?;
        let staged = writer.finish()?;
        self.commit_upload(db, None, staged, content_type)
    }

    /// `ctx.storage.delete(id)` in an action: deletes the row in a commit of its own; the
    /// collector removes the bytes. Blocking.
    pub fn delete(&self, db: &Database, id: &str) -> Result<(), FileError> {
        let Some(file) = self.lookup(db, id)? else {
            return Err(FileError::NotFound(id.to_string()));
        };
        let target = id.to_string();
        let run: database::MutationFn = Box::new(move |mut txn: MutationTxn| {
            txn.system_delete(&target)
                .map(|()| String::new())
                .map_err(|e| e.to_string())
        });
        match db.mutate_blocking(None, run)? {
            MutationOutcome::Committed { .. } | MutationOutcome::Replayed { .. } => {
                self.release(file.sha256);
                Ok(())
            }
            // Deleted by someone else between the lookup and the commit.
            MutationOutcome::Failed { .. } => Err(FileError::NotFound(id.to_string())),
        }
    }
}

/// The claim an upload token makes when it is used.
fn claim_key(token: &UploadToken) -> String {
    format!("upload:{}", token.nonce)
}
