//! The engine against real SQLite: commits, index scans, read sets and invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use database::{Database, DedupKey, MutationOutcome, Order, Registration, ScanCursor, Transaction};
use schema::Schema;
use value::{KeyRange, Object, Value, key::encode_component};

const SCHEMA: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_user = ["userId"] }
"#;

fn open(dir: &tempfile::TempDir) -> Database {
    let schema = Schema::parse(SCHEMA, "schema.toml").expect("schema");
    Database::open(&dir.path().join("db.sqlite3"), schema, SCHEMA)
        .expect("open")
        .0
}

fn todo(text: &str, user: &str) -> Object {
    Object::from([
        ("text".to_string(), Value::from(text)),
        ("userId".to_string(), Value::from(user)),
        ("completed".to_string(), Value::from(false)),
    ])
}

fn insert(db: &Database, text: &'static str, user: &'static str) -> (u64, String) {
    let outcome = db
        .mutate_blocking(
            None,
            Box::new(move |mut txn| {
                txn.insert("todos", todo(text, user))
                    .map(|id| id.to_string())
                    .map_err(|e| e.to_string())
            }),
        )
        .expect("mutate");
    match outcome {
        MutationOutcome::Committed { ts, response } => (ts, response),
        other => panic!("{other:?}"),
    }
}

fn user_range(user: &str) -> KeyRange {
    let mut prefix = Vec::new();
    encode_component(&mut prefix, Some(&Value::from(user)));
    KeyRange::prefix(prefix)
}

fn texts_of(db: &Database, user: &str, order: Order) -> (Vec<String>, database::ReadSet, u64) {
    db.read(|txn| {
        let index = txn
            .catalog()
            .index("todos", "by_user")
            .expect("index")
            .clone();
        let mut cursor = ScanCursor::new(&index, user_range(user), order);
        let mut texts = Vec::new();
        while let Some(doc) = txn.scan_next(&mut cursor).expect("scan") {
            texts.push(doc.fields["text"].as_str().expect("text").to_string());
        }
        txn.finish_scan(cursor).expect("finish");
        (texts, txn.take_read_set(), txn.ts())
    })
    .expect("read")
}

#[test]
fn index_scans_in_both_orders_and_timestamps_increase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    let (t1, _) = insert(&db, "a", "u1");
    let (t2, _) = insert(&db, "b", "u2");
    let (t3, _) = insert(&db, "c", "u1");
    assert!(t1 < t2 && t2 < t3);
    assert_eq!(texts_of(&db, "u1", Order::Asc).0, ["a", "c"]);
    assert_eq!(texts_of(&db, "u1", Order::Desc).0, ["c", "a"]);
    assert_eq!(texts_of(&db, "u2", Order::Asc).0, ["b"]);
}

#[test]
fn failed_mutation_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    let outcome = db
        .mutate_blocking(
            None,
            Box::new(|mut txn| {
                txn.insert("todos", todo("kept?", "u1"))
                    .map_err(|e| e.to_string())?;
                Err("boom".to_string())
            }),
        )
        .expect("mutate");
    assert_eq!(
        outcome,
        MutationOutcome::Failed {
            response: "boom".into()
        }
    );
    assert!(texts_of(&db, "u1", Order::Asc).0.is_empty());
}

#[test]
fn schema_violations_are_refused_with_the_field_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    let outcome = db
        .mutate_blocking(
            None,
            Box::new(|mut txn| {
                let mut doc = todo("x", "u1");
                doc.insert("completed".into(), Value::from("yes"));
                txn.insert("todos", doc)
                    .map(|_| String::new())
                    .map_err(|e| e.to_string())
            }),
        )
        .expect("mutate");
    let MutationOutcome::Failed { response } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        response,
        "document for table \"todos\" does not match the schema: completed: expected boolean, found string \"yes\""
    );
}

#[test]
fn dedup_applies_a_request_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    let key = DedupKey {
        session_id: "s".into(),
        request_id: 7,
    };
    let run = || -> database::MutationFn {
        Box::new(|mut txn| {
            txn.insert("todos", todo("once", "u1"))
                .map(|id| id.to_string())
                .map_err(|e| e.to_string())
        })
    };
    let first = db.mutate_blocking(Some(key.clone()), run()).expect("first");
    let second = db.mutate_blocking(Some(key), run()).expect("second");
    let (
        MutationOutcome::Committed { ts, response },
        MutationOutcome::Replayed {
            ts: ts2,
            response: r2,
        },
    ) = (first, second)
    else {
        panic!("unexpected outcomes");
    };
    assert_eq!((ts, response), (ts2, r2));
    assert_eq!(texts_of(&db, "u1", Order::Asc).0.len(), 1);
}

/// The same request twice in one group commit (a client that re-sent it on a new socket while
/// the first was still queued): the second replays the first, which the batch read up front
/// could not have known.
#[test]
fn dedup_holds_within_one_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    let key = DedupKey {
        session_id: "s".into(),
        request_id: 1,
    };
    let run = || -> database::MutationFn {
        Box::new(|mut txn| {
            txn.insert("todos", todo("twice", "u9"))
                .map(|id| id.to_string())
                .map_err(|e| e.to_string())
        })
    };
    // A slow first job keeps the Committer busy while the two requests queue up behind it.
    let slow: database::MutationFn = Box::new(|_txn| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok("null".into())
    });
    let blocker = db.queue_mutation(None, slow).expect("queue");
    let first = db.queue_mutation(Some(key.clone()), run()).expect("queue");
    let second = db.queue_mutation(Some(key), run()).expect("queue");
    let _ = blocker.blocking_recv();
    let first = first.blocking_recv().expect("reply").expect("first");
    let second = second.blocking_recv().expect("reply").expect("second");
    let MutationOutcome::Committed { ts, response } = first else {
        panic!("the first was not committed: {first:?}");
    };
    assert_eq!(
        second,
        MutationOutcome::Replayed { ts, response },
        "the second replays the first"
    );
    assert_eq!(texts_of(&db, "u9", Order::Asc).0.len(), 1);
}

#[test]
fn commits_invalidate_only_overlapping_read_sets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    insert(&db, "a", "u1");
    let (_, read_set, ts) = texts_of(&db, "u1", Order::Asc);
    let fired = Arc::new(AtomicU64::new(0));
    let f = fired.clone();
    let reg = db.subscriptions().subscribe(
        Arc::new(read_set),
        ts,
        Box::new(move |ts| f.store(ts, Ordering::SeqCst)),
    );
    assert!(matches!(reg, Registration::Subscribed(_)));
    insert(&db, "other user", "u2");
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "u2's write is outside u1's range"
    );
    let (t, _) = insert(&db, "b", "u1");
    assert_eq!(
        fired.load(Ordering::SeqCst),
        t,
        "invalidated by the commit at its ts, before the mutation returned"
    );
}

#[test]
fn take_limits_the_read_set_to_what_was_consumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    insert(&db, "a", "u1");
    insert(&db, "b", "u1");
    let (read_set, ts) = db
        .read(|txn| {
            let index = txn
                .catalog()
                .index("todos", "by_user")
                .expect("index")
                .clone();
            let mut cursor = ScanCursor::new(&index, user_range("u1"), Order::Asc);
            txn.scan_next(&mut cursor).expect("first").expect("a doc");
            txn.finish_scan(cursor).expect("finish");
            (txn.take_read_set(), txn.ts())
        })
        .expect("read");
    let fired = Arc::new(AtomicU64::new(0));
    let f = fired.clone();
    db.subscriptions().subscribe(
        Arc::new(read_set),
        ts,
        Box::new(move |ts| f.store(ts, Ordering::SeqCst)),
    );
    insert(&db, "c", "u1");
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "an insert after the first document does not change first()"
    );
}

#[test]
fn timestamps_survive_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t1, id) = {
        let db = open(&dir);
        insert(&db, "a", "u1")
    };
    let db = open(&dir);
    let (t2, _) = insert(&db, "b", "u1");
    assert!(t2 > t1);
    let got = db
        .read(|txn| txn.get(&id).expect("get").map(|d| d.fields["text"].clone()))
        .expect("read");
    assert_eq!(got, Some(Value::from("a")));
}

/// The stored commit timestamp is a high-water mark: after a restart on a machine whose clock
/// is behind the last commit (here, a stored ts an hour ahead of the clock), new commits and
/// creation times still go forward.
#[test]
fn timestamps_and_creation_times_never_go_back_when_the_clock_is_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t1, _) = {
        let db = open(&dir);
        insert(&db, "a", "u1")
    };
    let ahead = t1 + 3_600 * 1_000_000_000;
    {
        let (_storage, mut writer) =
            storage::Storage::open(&dir.path().join("db.sqlite3")).expect("storage");
        writer.begin().expect("begin");
        writer.set_ts(ahead).expect("ts");
        writer.commit().expect("commit");
    }
    let db = open(&dir);
    let (t2, id) = insert(&db, "b", "u1");
    assert!(
        t2 > ahead,
        "the commit after the restart ({t2}) is past the stored one ({ahead})"
    );
    let created = db
        .read(|txn| txn.get(&id).expect("get").map(|d| d.creation_time))
        .expect("read")
        .expect("the document");
    assert!(
        created >= ahead as f64 / 1e6,
        "its creation time ({created}) follows the commit timestamp, not the clock"
    );
}

/// Under a steady stream of commits the WAL must start over now and then instead of growing
/// with every commit (a background checkpoint alone always trails the writer).
#[test]
fn the_wal_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir);
    let wal = dir.path().join("db.sqlite3-wal");
    // ~64 KiB per commit, ~290 MiB of WAL in all. The WAL may keep 64 MiB between restarts
    // and overshoot while a checkpoint is copying; without restarts it would hold it all.
    let text: &'static str = Box::leak("x".repeat(64 << 10).into_boxed_str());
    let mut largest = 0;
    for _ in 0..4_500 {
        insert(&db, text, "u1");
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(
        largest < 160 << 20,
        "the WAL grew to {} MiB; it should restart after a checkpoint",
        largest >> 20
    );
}

/// Mutations that queue up while one runs share the next SQLite commit (one `ts`), and a
/// mutation of that batch that fails rolls back only its own writes.
#[test]
fn queued_mutations_share_a_commit_and_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(open(&dir));
    let (started, wait_started) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    // Holds the Committer until the other mutations are queued behind it.
    let blocker = {
        let db = db.clone();
        std::thread::spawn(move || {
            db.mutate_blocking(
                None,
                Box::new(move |mut txn| {
                    let _ = started.send(());
                    let _ = released.recv_timeout(std::time::Duration::from_secs(10));
                    txn.insert("todos", todo("first", "u0"))
                        .map(|id| id.to_string())
                        .map_err(|e| e.to_string())
                }),
            )
        })
    };
    wait_started
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the first mutation started");
    let queued = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8u64)
        .map(|n| {
            let db = db.clone();
            let queued = queued.clone();
            std::thread::spawn(move || {
                queued.fetch_add(1, Ordering::SeqCst);
                db.mutate_blocking(
                    None,
                    Box::new(move |mut txn| {
                        let user = format!("u{n}");
                        txn.insert("todos", todo("queued", &user))
                            .map_err(|e| e.to_string())?;
                        if n == 3 {
                            return Err("mutation 3 fails after writing".into());
                        }
                        Ok(user)
                    }),
                )
            })
        })
        .collect();
    // Every worker is about to submit; give the submissions a moment to reach the queue.
    for _ in 0..200 {
        if queued.load(Ordering::SeqCst) == 8 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    release.send(()).expect("release the first mutation");
    let first = blocker.join().expect("join").expect("mutate");
    let first_ts = match first {
        MutationOutcome::Committed { ts, .. } => ts,
        other => panic!("{other:?}"),
    };
    let mut batch_ts = Vec::new();
    for (n, worker) in workers.into_iter().enumerate() {
        match worker.join().expect("join").expect("mutate") {
            MutationOutcome::Committed { ts, .. } => batch_ts.push(ts),
            MutationOutcome::Failed { response } => {
                assert_eq!(n, 3, "only mutation 3 fails");
                assert!(response.contains("fails after writing"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(batch_ts.len(), 7);
    assert!(batch_ts.iter().all(|ts| *ts > first_ts));
    assert!(
        batch_ts.windows(2).all(|w| w[0] == w[1]),
        "the queued mutations share one commit: {batch_ts:?}"
    );
    // Mutation 3's insert is gone; every other one is there.
    for n in 0..8 {
        let (texts, _, _) = texts_of(&db, &format!("u{n}"), Order::Asc);
        let queued = texts.iter().filter(|t| *t == "queued").count();
        assert_eq!(queued, usize::from(n != 3), "user u{n}: {texts:?}");
    }
}
