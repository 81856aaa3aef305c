//! The behaviour every engine must show, as plain functions over a fresh, empty database:
//! SQLite runs them in this crate's tests and PostgreSQL in `crates/pgstore/tests`, so both
//! engines answer the Committer, the readers and the subscription index the same way.
//! (Compiled for tests and with the `conformance` feature only.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{Order, ReadRows, Storage, Writer};

/// Every check, in order, each on its own fresh database from `fresh`.
pub fn run_all(fresh: &mut dyn FnMut() -> (Storage, Writer)) {
    writes_become_visible_to_new_snapshots_only(fresh());
    savepoints_undo_one_unit(fresh());
    a_failed_write_is_undone_with_its_savepoint_alone(fresh());
    keys_and_ids_compare_as_bytes(fresh());
    pruning_walks_the_table_in_slices(fresh());
    claims_and_config(fresh());
    catalog_numbers_count_up(fresh());
    a_batch_that_rewrites_keys_keeps_the_last_write(fresh());
}

pub fn writes_become_visible_to_new_snapshots_only((storage, mut writer): (Storage, Writer)) {
    writer.begin().expect("begin");
    let table = writer.create_table("todos").expect("table");
    let index = writer
        .create_index(table, "by_creation_time", "[]")
        .expect("index");
    writer.set_ts(5).expect("ts");
    writer.commit().expect("commit");

    let mut reader = storage.reader().expect("reader");
    assert_eq!(reader.begin().expect("snapshot"), 5);

    writer.begin().expect("begin");
    writer.put_document("a", table, "{}").expect("doc");
    writer
        .insert_index_entry(index, &[3, 1], "a")
        .expect("entry");
    writer.set_ts(6).expect("ts");
    assert_eq!(writer.ts().expect("ts"), 6, "the writer sees its own write");
    writer.commit().expect("commit");

    assert!(
        reader.get_document("a").expect("read").is_none(),
        "old snapshot is stable"
    );
    reader.end();
    assert_eq!(reader.begin().expect("snapshot"), 6);
    let rows = reader.scan(index, &[], None, Order::Asc, 10).expect("scan");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, "a");
    assert_eq!(rows[0].value, "{}");
    reader.end();
}

pub fn savepoints_undo_one_unit((_storage, mut writer): (Storage, Writer)) {
    writer.begin().expect("begin");
    writer.savepoint().expect("sp");
    writer.put_document("kept", 1, "{}").expect("doc");
    writer.release_savepoint().expect("release");
    writer.savepoint().expect("sp");
    writer.put_document("undone", 1, "{}").expect("doc");
    writer.rollback_to_savepoint().expect("rollback");
    writer.commit().expect("commit");
    assert!(writer.get_document("kept").expect("read").is_some());
    assert!(writer.get_document("undone").expect("read").is_none());
}

/// A statement that fails inside a savepoint (a duplicate index key) is undone with it, and
/// the rest of the transaction still commits. The failure may show at the write itself or,
/// for an engine that holds writes back (PostgreSQL), at the next read at the latest.
pub fn a_failed_write_is_undone_with_its_savepoint_alone(
    (_storage, mut writer): (Storage, Writer),
) {
    writer.begin().expect("begin");
    writer.savepoint().expect("sp");
    writer.insert_index_entry(1, &[1], "a").expect("entry");
    writer.release_savepoint().expect("release");
    writer.savepoint().expect("sp");
    writer.put_document("b", 1, "{}").expect("doc");
    let failed = writer
        .insert_index_entry(1, &[1], "b")
        .and_then(|()| writer.count(1, &[], None).map(|_| ()));
    assert!(failed.is_err(), "same key twice");
    writer
        .rollback_to_savepoint()
        .expect("rollback to savepoint");
    writer
        .put_document("c", 1, "{}")
        .expect("doc after the failure");
    writer.commit().expect("commit");
    assert!(writer.get_document("b").expect("read").is_none());
    assert!(writer.get_document("c").expect("read").is_some());
    assert_eq!(writer.count(1, &[], None).expect("count"), 1);
}

/// Index keys compare as unsigned bytes (a prefix first), in both directions, and bounds are
/// `[start, end)`.
pub fn keys_and_ids_compare_as_bytes((_storage, mut writer): (Storage, Writer)) {
    let keys: [&[u8]; 6] = [
        &[0x01],
        &[0x01, 0x00],
        &[0x01, 0xFF],
        &[0x7F],
        &[0x80],
        &[0xFE, 0x01],
    ];
    writer.begin().expect("begin");
    // Inserted out of order, with ids whose byte order differs from a case-blind one.
    for (i, key) in keys.iter().enumerate().rev() {
        let id = format!("{}{i}", if i % 2 == 0 { "B" } else { "a" });
        writer.put_document(&id, 1, &format!("{i}")).expect("doc");
        writer.insert_index_entry(7, key, &id).expect("entry");
    }
    writer.commit().expect("commit");
    let asc = writer.scan(7, &[], None, Order::Asc, 100).expect("scan");
    let got: Vec<Vec<u8>> = asc.iter().map(|r| r.key.clone()).collect();
    let want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    assert_eq!(got, want);
    let desc = writer
        .scan(7, &[0x01, 0x00], Some(&[0x80]), Order::Desc, 100)
        .expect("scan");
    let got: Vec<&str> = desc.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(got, ["3", "2", "1"], "[start, end) from the top");
    let limited = writer.scan(7, &[], None, Order::Desc, 2).expect("scan");
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].key, [0xFE, 0x01]);
    assert_eq!(writer.count(7, &[0x01], Some(&[0x02])).expect("count"), 3);
    assert_eq!(writer.count(8, &[], None).expect("count"), 0);
    // Document ids order bytewise too ("B" < "a"), which the de-duplication walk relies on.
    writer.begin().expect("begin");
    for (session, request) in [("a", 1u64), ("B", 2), ("b", 3)] {
        writer
            .put_mutation_response(session, request, 1, "{}")
            .expect("put");
    }
    writer.commit().expect("commit");
    writer.begin().expect("begin");
    let (_, next) = writer.prune_mutation_responses(0, None, 1).expect("prune");
    writer.commit().expect("commit");
    assert_eq!(next, Some(("B".to_string(), 2)), "uppercase sorts first");
}

/// Pruning walks the table a slice at a time, removes only records older than the cutoff,
/// and starts over at the end.
pub fn pruning_walks_the_table_in_slices((_storage, mut writer): (Storage, Writer)) {
    writer.begin().expect("begin");
    for session in ["a", "b", "c"] {
        for request in 0..10u64 {
            // Requests below 5 are old.
            let ts = if request < 5 { 100 } else { 1_000 };
            writer
                .put_mutation_response(session, request, ts, "{}")
                .expect("put");
        }
    }
    writer.commit().expect("commit");
    writer.begin().expect("begin");
    let mut cursor = None;
    let mut removed = 0;
    let mut slices = 0;
    loop {
        let (n, next) = writer
            .prune_mutation_responses(500, cursor.as_ref(), 7)
            .expect("prune");
        removed += n;
        slices += 1;
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    writer.commit().expect("commit");
    assert_eq!(removed, 15, "the old half of every session");
    assert_eq!(slices, 5, "30 records in slices of 7");
    for session in ["a", "b", "c"] {
        assert!(
            writer
                .get_mutation_response(session, 4)
                .expect("get")
                .is_none()
        );
        let kept = writer.get_mutation_response(session, 5).expect("get");
        assert_eq!(kept.map(|r| r.ts), Some(1_000));
    }
}

pub fn claims_and_config((storage, mut writer): (Storage, Writer)) {
    writer.begin().expect("begin");
    assert!(writer.claim("nonce", 100).expect("claim"));
    assert!(!writer.claim("nonce", 100).expect("claim again"));
    assert!(writer.claim("forever", u64::MAX).expect("claim"));
    writer.put_config("schema", "v1").expect("config");
    writer.put_config("schema", "v2").expect("config");
    writer.put_config("gone", "x").expect("config");
    writer.delete_config("gone").expect("config");
    writer.commit().expect("commit");
    // A shared database's begin reads the latest ts and a setting under its lock.
    let (ts, schema) = writer.begin_shared("schema").expect("begin_shared");
    assert_eq!((ts, schema.as_deref()), (0, Some("v2")));
    writer.rollback().expect("rollback");
    assert_eq!(writer.begin_shared("none").expect("again").1, None);
    writer.rollback().expect("rollback");
    // A claim rolls back with its transaction.
    writer.begin().expect("begin");
    assert!(writer.claim("rolled back", 100).expect("claim"));
    writer.rollback().expect("rollback");

    let mut reader = storage.reader().expect("reader");
    reader.begin().expect("snapshot");
    assert!(reader.is_claimed("nonce").expect("read"));
    assert!(!reader.is_claimed("rolled back").expect("read"));
    assert_eq!(
        reader.get_config("schema").expect("read").as_deref(),
        Some("v2")
    );
    assert_eq!(reader.get_config("gone").expect("read"), None);
    reader.end();

    writer.begin().expect("begin");
    assert_eq!(
        writer.prune_claims(101).expect("prune"),
        1,
        "only the expired one"
    );
    writer.commit().expect("commit");
    assert!(writer.is_claimed("forever").expect("read"));
}

/// Tables and indexes are numbered from 1 up, and a dropped index takes its entries along.
pub fn catalog_numbers_count_up((_storage, mut writer): (Storage, Writer)) {
    writer.begin().expect("begin");
    let a = writer.create_table("a").expect("table");
    let b = writer.create_table("b").expect("table");
    let i = writer.create_index(a, "by_x", "[\"x\"]").expect("index");
    let j = writer.create_index(b, "by_x", "[\"x\"]").expect("index");
    writer.insert_index_entry(i, &[1], "d").expect("entry");
    writer.commit().expect("commit");
    assert_eq!((a, b), (1, 2));
    assert_eq!(j, i + 1);
    let catalog = writer.catalog().expect("catalog");
    assert_eq!(catalog.tables.len(), 2);
    assert_eq!(catalog.indexes[0].fields, "[\"x\"]");
    writer.begin().expect("begin");
    writer.drop_index(i).expect("drop");
    writer.commit().expect("commit");
    assert_eq!(writer.count(i, &[], None).expect("count"), 0);
    assert_eq!(writer.catalog().expect("catalog").indexes.len(), 1);
}

/// One transaction of several mutations (as a group commit is) that write the same document,
/// index key and de-duplication record more than once, move an index entry, and create and
/// delete a document: what is stored is what the last write said. (PostgreSQL sends such a
/// batch as few statements as it can, `pgstore/src/deferred.rs`; this pins its order.)
pub fn a_batch_that_rewrites_keys_keeps_the_last_write((_storage, mut writer): (Storage, Writer)) {
    writer.begin().expect("begin");
    writer.savepoint().expect("sp");
    writer.put_document("a", 1, "1").expect("doc");
    writer.insert_index_entry(9, &[1], "a").expect("entry");
    writer.put_mutation_response("s", 1, 5, "r1").expect("put");
    writer.release_savepoint().expect("release");
    writer.savepoint().expect("sp");
    writer.put_document("a", 1, "2").expect("doc");
    writer.delete_index_entry(9, &[1]).expect("entry");
    writer.insert_index_entry(9, &[2], "a").expect("entry");
    writer.put_mutation_response("s", 2, 5, "r2").expect("put");
    writer.put_mutation_response("s", 1, 5, "r1b").expect("put");
    writer.release_savepoint().expect("release");
    writer.savepoint().expect("sp");
    writer.put_document("b", 1, "{}").expect("doc");
    writer.insert_index_entry(9, &[3], "b").expect("entry");
    writer.delete_document("b").expect("delete");
    writer.delete_index_entry(9, &[3]).expect("entry");
    writer.put_document("a", 1, "3").expect("doc");
    writer.release_savepoint().expect("release");
    writer.savepoint().expect("sp");
    writer.put_document("c", 1, "{}").expect("doc");
    writer.put_document("a", 1, "undone").expect("doc");
    writer.rollback_to_savepoint().expect("rollback");
    writer.commit().expect("commit");
    let a = writer
        .get_document("a")
        .expect("read")
        .expect("a is stored");
    assert_eq!(a.value, "3");
    assert!(writer.get_document("b").expect("read").is_none());
    assert!(writer.get_document("c").expect("read").is_none());
    let rows = writer.scan(9, &[], None, Order::Asc, 10).expect("scan");
    let got: Vec<(Vec<u8>, &str)> = rows
        .iter()
        .map(|r| (r.key.clone(), r.id.as_str()))
        .collect();
    assert_eq!(got, [(vec![2], "a")]);
    let found = writer
        .get_mutation_responses(&[("s", 1), ("s", 2)])
        .expect("responses");
    let responses: Vec<Option<&str>> = found
        .iter()
        .map(|r| r.as_ref().map(|r| r.response.as_str()))
        .collect();
    assert_eq!(responses, [Some("r1b"), Some("r2")]);
}

#[cfg(test)]
mod tests {
    /// SQLite passes every check.
    #[test]
    fn sqlite_conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = 0;
        super::run_all(&mut || {
            n += 1;
            crate::Storage::open(&dir.path().join(format!("db{n}.sqlite3"))).expect("open")
        });
    }
}
