//! Online schema changes (`Database::apply_schema`) against real SQLite: new tables, indexes
//! added and back-filled, indexes dropped with their entries, and a change that stored
//! documents violate refused with the old schema kept in force.

use database::{
    Database, DbError, IndexInfo, MutationOutcome, Order, ScanCursor, SchemaChangeReport,
    Transaction,
};
use schema::Schema;
use value::{KeyRange, Object, Value};

const TODOS: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_user = ["userId"] }
"#;

/// TODOS plus a table and an index on `text`.
const WITH_NOTES_AND_BY_TEXT: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_user = ["userId"], by_text = ["text"] }

[tables.notes]
fields = { body = "string" }
"#;

/// Drops `todos.by_user`.
const WITHOUT_BY_USER: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_text = ["text"] }

[tables.notes]
fields = { body = "string" }
"#;

/// `completed` becomes a string, which every stored todo violates; it also adds an index,
/// which must not appear either.
const COMPLETED_AS_STRING: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "string" }
indexes = { by_text = ["text"], by_completed = ["completed"] }

[tables.notes]
fields = { body = "string" }
"#;

fn parse(text: &str) -> Schema {
    Schema::parse(text, "schema.toml").expect("test schema parses")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn apply(db: &Database, text: &str) -> Result<SchemaChangeReport, DbError> {
    runtime().block_on(db.apply_schema(parse(text), text.to_string()))
}

fn insert(db: &Database, table: &'static str, fields: Object) -> Result<String, String> {
    let outcome = db
        .mutate_blocking(
            None,
            Box::new(move |mut txn| {
                txn.insert(table, fields)
                    .map(|id| id.to_string())
                    .map_err(|e| e.to_string())
            }),
        )
        .expect("the committer runs");
    match outcome {
        MutationOutcome::Committed { response, .. } => Ok(response),
        MutationOutcome::Failed { response } => Err(response),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn todo(text: &str, user: &str) -> Object {
    Object::from([
        ("text".to_string(), Value::from(text)),
        ("userId".to_string(), Value::from(user)),
        ("completed".to_string(), Value::from(false)),
    ])
}

/// The `text` of every document an index holds, in index order; works for an index the
/// catalog no longer lists, since storage is asked by index id.
fn texts_in(db: &Database, index: &IndexInfo) -> Vec<String> {
    db.read(|txn| {
        let mut cursor = ScanCursor::new(index, KeyRange::all(), Order::Asc);
        let mut texts = Vec::new();
        while let Some(doc) = txn.scan_next(&mut cursor).expect("scan") {
            texts.push(doc.fields["text"].as_str().expect("text").to_string());
        }
        texts
    })
    .expect("read")
}

fn index(db: &Database, table: &str, name: &str) -> Result<IndexInfo, DbError> {
    db.catalog().index(table, name).cloned()
}

/// A database at TODOS holding three todos.
fn seeded(dir: &tempfile::TempDir) -> (Database, Vec<String>) {
    let (db, report) =
        Database::open(&dir.path().join("db.sqlite3"), parse(TODOS), TODOS).expect("open");
    assert_eq!(report.tables_added, ["todos"]);
    let ids = [("cherry", "u1"), ("apple", "u2"), ("banana", "u1")]
        .into_iter()
        .map(|(text, user)| insert(&db, "todos", todo(text, user)).expect("insert"))
        .collect();
    (db, ids)
}

#[test]
fn a_new_table_and_an_added_index_are_usable_and_back_filled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _) = seeded(&dir);
    assert!(
        matches!(
            index(&db, "todos", "by_text"),
            Err(DbError::UnknownIndex { .. })
        ),
        "no by_text before the change"
    );

    let report = apply(&db, WITH_NOTES_AND_BY_TEXT).expect("applied");
    assert_eq!(report.tables_added, ["notes"]);
    assert_eq!(report.indexes_added, ["todos.by_text"]);
    assert!(report.indexes_dropped.is_empty());
    assert_eq!(report.documents_backfilled, 3);
    assert_eq!(
        report.to_string(),
        "tables added: notes; indexes added: todos.by_text (3 documents back-filled)"
    );

    let by_text = index(&db, "todos", "by_text").expect("by_text exists");
    assert_eq!(texts_in(&db, &by_text), ["apple", "banana", "cherry"]);
    // The back-filled index is maintained by later writes too.
    insert(&db, "todos", todo("avocado", "u3")).expect("insert");
    assert_eq!(
        texts_in(&db, &by_text),
        ["apple", "avocado", "banana", "cherry"]
    );
    insert(
        &db,
        "notes",
        Object::from([("body".to_string(), Value::from("hi"))]),
    )
    .expect("the new table accepts documents");

    // Applying the same schema again changes nothing.
    let again = apply(&db, WITH_NOTES_AND_BY_TEXT).expect("applied");
    assert!(again.is_empty(), "{again}");
    assert_eq!(again.to_string(), "no table or index changes");
}

#[test]
fn a_dropped_index_is_gone_with_its_entries_and_the_others_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _) = seeded(&dir);
    apply(&db, WITH_NOTES_AND_BY_TEXT).expect("applied");
    let by_user = index(&db, "todos", "by_user").expect("by_user exists");
    assert_eq!(
        texts_in(&db, &by_user).len(),
        3,
        "the index had entries before the drop"
    );

    let report = apply(&db, WITHOUT_BY_USER).expect("applied");
    assert_eq!(report.indexes_dropped, ["todos.by_user"]);
    assert!(report.indexes_added.is_empty() && report.tables_added.is_empty());
    assert_eq!(report.to_string(), "indexes dropped: todos.by_user");

    match index(&db, "todos", "by_user") {
        Err(e @ DbError::UnknownIndex { .. }) => assert_eq!(
            e.to_string(),
            "table \"todos\" has no index \"by_user\" (known: by_creation_time, by_text)"
        ),
        other => panic!("by_user is still in the catalog: {other:?}"),
    }
    assert!(
        texts_in(&db, &by_user).is_empty(),
        "storage still holds entries of the dropped index"
    );
    let by_text = index(&db, "todos", "by_text").expect("by_text stays");
    assert_eq!(texts_in(&db, &by_text), ["apple", "banana", "cherry"]);
    insert(&db, "todos", todo("date", "u1")).expect("writes still pass");
    assert!(
        texts_in(&db, &by_user).is_empty(),
        "a later write did not revive it"
    );
    assert_eq!(texts_in(&db, &by_text).len(), 4);

    // The applied schema is stored: reopening with it finds nothing to change.
    drop(db);
    let (reopened, report) = Database::open(
        &dir.path().join("db.sqlite3"),
        parse(WITHOUT_BY_USER),
        WITHOUT_BY_USER,
    )
    .expect("reopen");
    assert!(report.is_empty(), "{report}");
    assert!(index(&reopened, "todos", "by_user").is_err());
}

#[test]
fn a_change_stored_documents_violate_is_refused_and_the_old_schema_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, ids) = seeded(&dir);
    apply(&db, WITH_NOTES_AND_BY_TEXT).expect("applied");

    let refused = apply(&db, COMPLETED_AS_STRING).expect_err("violating change refused");
    let message = refused.to_string();
    assert!(matches!(refused, DbError::SchemaRejected(_)), "{refused:?}");
    assert!(
        message.contains("3 of 3 documents in table \"todos\" do not match the new schema"),
        "{message}"
    );
    assert!(
        message.contains("completed: expected string, found boolean false"),
        "{message}"
    );
    // Up to three example ids, each a stored document's.
    let named = ids
        .iter()
        .filter(|id| message.contains(id.as_str()))
        .count();
    assert_eq!(named, 3, "example ids in: {message}");
    assert!(message.contains("the previous schema stays"), "{message}");

    // Nothing of the refused change applied: old types, old indexes, no new index.
    let catalog = db.catalog();
    assert_eq!(
        *catalog.schema,
        parse(WITH_NOTES_AND_BY_TEXT).with_system_tables()
    );
    assert!(matches!(
        index(&db, "todos", "by_completed"),
        Err(DbError::UnknownIndex { .. })
    ));
    assert!(index(&db, "todos", "by_user").is_ok());
    let wrong = Object::from([
        ("text".to_string(), Value::from("e")),
        ("userId".to_string(), Value::from("u1")),
        ("completed".to_string(), Value::from("yes")),
    ]);
    let err = insert(&db, "todos", wrong).expect_err("the old type still applies");
    assert!(err.contains("completed: expected boolean"), "{err}");
    insert(&db, "todos", todo("fig", "u2")).expect("old-shaped writes pass");

    // The refusal was not stored: a restart with the old schema changes nothing.
    drop(db);
    let (_, report) = Database::open(
        &dir.path().join("db.sqlite3"),
        parse(WITH_NOTES_AND_BY_TEXT),
        WITH_NOTES_AND_BY_TEXT,
    )
    .expect("reopen");
    assert!(report.is_empty(), "{report}");
}
