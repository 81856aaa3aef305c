//! `ctx.storage` and `ctx.db.system`, Convex's file storage API:
//!
//! - queries: `ctx.storage.getUrl(id)`;
//! - mutations: also `generateUploadUrl()` and `delete(id)`;
//! - actions (HTTP actions today): `getUrl`, `generateUploadUrl`, `delete`, `store(bytes)` /
//!   `store(bytes, #{ contentType })`, `get(id)` (the bytes as a blob, or `()`);
//! - queries and mutations: `ctx.db.system.get(id)` and `ctx.db.system.query(table)` (the
//!   usual chain) over system tables, which `ctx.db.get` / `ctx.db.query` refuse.
//!
//! In queries and mutations the `_storage` row is read and deleted through the call's
//! transaction, so `getUrl` is reactive and a deletion commits or rolls back with the
//! mutation; the signed URLs and the bytes on disk are the [`FileHost`]'s.

use std::sync::Arc;

use database::Transaction;
use rhai::{Blob, Dynamic, Engine, Map};

use crate::action_ctx::ActionCtx;
use crate::convert::to_dynamic;
use crate::definition::FunctionKind;
use crate::file_host::FileHost;
use crate::host_api::ctx::{Ctx, Db};
use crate::host_error::{HostResult, host_error, string_arg};
use crate::query_builder::QueryBuilder;
use crate::sandbox::Exec;

const STORAGE_TABLE: &str = "_storage";

/// `ctx.storage`.
#[derive(Clone)]
struct Storage {
    exec: Arc<Exec>,
}

/// `ctx.db.system`.
#[derive(Clone)]
struct SystemDb(Arc<Exec>);

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Storage>("Storage");
    engine.register_type_with_name::<SystemDb>("SystemDb");
    engine.register_get("storage", |ctx: &mut Ctx| Storage {
        exec: ctx.0.clone(),
    });
    engine.register_get("storage", |ctx: &mut ActionCtx| Storage {
        exec: ctx.exec().clone(),
    });
    engine.register_get("system", |db: &mut Db| SystemDb(db.0.clone()));

    engine.register_fn("getUrl", |s: Storage, id: Dynamic| s.get_url(&id));
    engine.register_fn("generateUploadUrl", |s: Storage| s.upload_url());
    engine.register_fn("delete", |s: Storage, id: Dynamic| s.delete(&id));
    engine.register_fn("store", |s: Storage, data: Dynamic| s.store(data, None));
    engine.register_fn("store", |s: Storage, data: Dynamic, options: Map| {
        s.store(data, Some(options))
    });
    engine.register_fn("get", |s: Storage, id: Dynamic| s.get(&id));

    engine.register_fn(
        "get",
        |db: SystemDb, id: Dynamic| -> HostResult<Dynamic> {
            let id = string_arg(&id, "ctx.db.system.get(id): id")?;
            let table = table_of(&db.0, &id)?;
            if !schema::is_system_table(&table) {
                return Err(host_error(format!(
                    "ctx.db.system.get reads system tables; {id:?} is an id of {table}: read it with ctx.db.get(id)"
                )));
            }
            let doc = db.0.with_txn(|txn| txn.get(&id))?;
            Ok(doc.map_or(Dynamic::UNIT, |d| to_dynamic(&d.to_value())))
        },
    );
    engine.register_fn("query", |db: SystemDb, table: &str| {
        QueryBuilder::new_system(db.0.clone(), table)
    });
}

/// The table an id names, or the refusal `ctx.db.get` gives for a malformed id.
fn table_of(exec: &Exec, id: &str) -> HostResult<String> {
    exec.with_txn(|txn| {
        txn.catalog()
            .resolve_id(id)
            .map(|(_, table)| table.name.clone())
    })
}

impl Storage {
    fn files(&self) -> HostResult<Arc<dyn FileHost>> {
        self.exec.modules.files().cloned().ok_or_else(|| {
            host_error(
                "file storage is not configured on this server (ctx.storage needs a server started with pulsebase dev or serve)"
                    .to_string(),
            )
        })
    }

    fn in_action(&self) -> bool {
        self.exec.kind == FunctionKind::HttpAction
    }

    /// The `_storage` row of `id` through the call's transaction (recorded as read), or
    /// `None`; refuses ids of other tables.
    fn storage_row(&self, id: &str, call: &str) -> HostResult<Option<value::Object>> {
        let table = table_of(&self.exec, id)?;
        if table != STORAGE_TABLE {
            return Err(host_error(format!(
                "ctx.storage.{call} takes a storage id (an id<_storage>), not an id of {table}"
            )));
        }
        let doc = self
            .exec
            .with_txn(|txn: &mut dyn Transaction| txn.get(id))?;
        Ok(doc.map(|d| d.fields))
    }

    fn get_url(&self, id: &Dynamic) -> HostResult<Dynamic> {
        let id = string_arg(id, "ctx.storage.getUrl(storageId): storageId")?;
        let files = self.files()?;
        if self.in_action() {
            let url = files.url_if_exists(&id).map_err(host_error)?;
            return Ok(url.map_or(Dynamic::UNIT, Dynamic::from));
        }
        Ok(match self.storage_row(&id, "getUrl")? {
            Some(_) => Dynamic::from(files.file_url(&id)),
            None => Dynamic::UNIT,
        })
    }

    fn upload_url(&self) -> HostResult<String> {
        if self.exec.read_only && !self.in_action() {
            return Err(host_error(
                "ctx.storage.generateUploadUrl() is not available in a query; call it from a mutation or an action".to_string(),
            ));
        }
        Ok(self.files()?.upload_url(self.exec.now_ms))
    }

    fn delete(&self, id: &Dynamic) -> HostResult<()> {
        let id = string_arg(id, "ctx.storage.delete(storageId): storageId")?;
        let files = self.files()?;
        if self.in_action() {
            return files.delete(&id).map_err(host_error);
        }
        if self.exec.read_only {
            return Err(host_error(
                "ctx.storage.delete is not available in a query; call it from a mutation or an action".to_string(),
            ));
        }
        let Some(row) = self.storage_row(&id, "delete")? else {
            return Err(host_error(format!(
                "ctx.storage.delete: there is no stored file with id {id:?}"
            )));
        };
        self.exec.with_txn(|txn| txn.system_delete(&id))?;
        if let Some(sha) = row.get("sha256").and_then(|v| v.as_str()) {
            files.released(sha);
        }
        Ok(())
    }

    fn action_only(&self, call: &str) -> HostResult<()> {
        if self.in_action() {
            Ok(())
        } else {
            Err(host_error(format!(
                "ctx.storage.{call} is only available in actions; a mutation gets bytes in through an upload URL (ctx.storage.generateUploadUrl())"
            )))
        }
    }

    fn store(&self, data: Dynamic, options: Option<Map>) -> HostResult<String> {
        self.action_only("store")?;
        let bytes = if data.is_blob() {
            data.cast::<Blob>()
        } else if let Ok(text) = data.clone().into_string() {
            text.into_bytes()
        } else {
            return Err(host_error(format!(
                "ctx.storage.store(data) takes a blob or a string, not {}",
                data.type_name()
            )));
        };
        let content_type = match options.as_ref().and_then(|o| o.get("contentType")) {
            None => None,
            Some(v) if v.is_unit() => None,
            Some(v) => Some(string_arg(v, "ctx.storage.store options.contentType")?),
        };
        self.files()?.store(bytes, content_type).map_err(host_error)
    }

    fn get(&self, id: &Dynamic) -> HostResult<Dynamic> {
        self.action_only("get")?;
        let id = string_arg(id, "ctx.storage.get(storageId): storageId")?;
        let max = self.exec.modules.engine().max_array_size();
        let bytes = self.files()?.read(&id, max).map_err(host_error)?;
        Ok(bytes.map_or(Dynamic::UNIT, Dynamic::from_blob))
    }
}
