//! System tables against real SQLite: `_storage` exists beside the user's tables, user writes
//! to it are refused while the engine's go through, `id<_storage>` validates its ids, imports
//! keep given ids and refuse taken ones, claims are single-use, and a whole-database snapshot
//! reads one commit, also from a second connection opened on the file.

use database::{Database, DbError, MutationOutcome, MutationTxn, Snapshot, Transaction};
use schema::Schema;
use value::{DocumentId, Object, Value};

const SCHEMA: &str = r#"
[tables.files]
fields = { file = "id<_storage>", name = "string" }
"#;

fn open(dir: &tempfile::TempDir) -> Database {
    let schema = Schema::parse(SCHEMA, "schema.toml").expect("schema");
    Database::open(&dir.path().join("db.sqlite3"), schema, SCHEMA)
        .expect("open")
        .0
}

fn storage_row() -> Object {
    Object::from([
        ("sha256".to_string(), Value::from("abc=")),
        ("size".to_string(), Value::Float64(3.0)),
    ])
}

fn run(
    db: &Database,
    f: impl FnOnce(&mut MutationTxn) -> Result<String, DbError> + Send + 'static,
) -> Result<String, String> {
    match db
        .mutate_blocking(
            None,
            Box::new(move |mut txn| f(&mut txn).map_err(|e| e.to_string())),
        )
        .expect("mutate")
    {
        MutationOutcome::Committed { response, .. } => Ok(response),
        MutationOutcome::Failed { response } => Err(response),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_the_engine_writes_system_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    assert!(db.catalog().table("_storage").is_ok());
    let refused = run(&db, |txn| {
        txn.insert("_storage", storage_row())
            .map(|id| id.to_string())
    });
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("cannot write the system table \"_storage\"")),
        "{refused:?}"
    );
    let id = run(&db, |txn| {
        txn.system_insert("_storage", storage_row())
            .map(|id| id.to_string())
    })
    .expect("the engine inserts");
    let file_id = id.clone();
    run(&db, move |txn| {
        let mut doc = Object::new();
        doc.insert("file".into(), Value::from(file_id.as_str()));
        doc.insert("name".into(), Value::from("a.txt"));
        txn.insert("files", doc).map(|id| id.to_string())
    })
    .expect("id<_storage> accepts a storage id");
    let bad = run(&db, |txn| {
        let mut doc = Object::new();
        doc.insert("file".into(), Value::from("nonsense"));
        doc.insert("name".into(), Value::from("b.txt"));
        txn.insert("files", doc).map(|id| id.to_string())
    });
    assert!(bad.is_err(), "id<_storage> refuses other strings");
    let deleted = id.clone();
    assert!(run(&db, move |txn| txn.delete(&deleted).map(|()| String::new())).is_err());
    let deleted = id.clone();
    run(&db, move |txn| {
        txn.system_delete(&deleted).map(|()| String::new())
    })
    .expect("engine delete");
}

#[test]
fn imports_keep_ids_and_claims_are_single_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    let number = db.catalog().table("_storage").expect("table").number;
    let id = DocumentId::from_seed(number, b"an old id");
    let given = id.clone();
    let kept = run(&db, move |txn| {
        txn.insert_with_id("_storage", given, Some(1234.5), storage_row())
            .map(|id| id.to_string())
    })
    .expect("insert with id");
    assert_eq!(kept, id.to_string());
    let again = id.clone();
    let duplicate = run(&db, move |txn| {
        txn.insert_with_id("_storage", again, None, storage_row())
            .map(|id| id.to_string())
    });
    assert!(duplicate.is_err_and(|e| e.contains("already exists")));
    assert_eq!(
        run(&db, |txn| txn
            .claim("k", u64::MAX, 0)
            .map(|b| b.to_string())),
        Ok("true".into())
    );
    assert_eq!(
        run(&db, |txn| txn
            .claim("k", u64::MAX, 0)
            .map(|b| b.to_string())),
        Ok("false".into())
    );

    let snapshot = db.full_snapshot().expect("snapshot");
    let rows = snapshot.documents("_storage", None, 10).expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].document.creation_time, 1234.5);
    assert!(snapshot.is_claimed("k").expect("claimed"));
    assert!(
        snapshot
            .index_has("_storage", "by_sha256", &[Value::from("abc=")])
            .expect("index")
    );
    let ts = snapshot.ts();
    run(&db, |txn| {
        txn.system_insert("_storage", storage_row())
            .map(|id| id.to_string())
    })
    .expect("a later commit");
    assert_eq!(
        snapshot
            .documents("_storage", None, 10)
            .expect("rows")
            .len(),
        1,
        "one commit"
    );
    let other = Snapshot::open_file(&dir.path().join("db.sqlite3")).expect("second connection");
    assert!(other.ts() > ts);
    assert_eq!(
        other.documents("_storage", None, 10).expect("rows").len(),
        2
    );
    assert!(other.catalog().table("files").is_ok());
}
