//! The writer's WAL writes (`src/wal_vfs.rs`): a commit's frames reach the file in a few
//! writes, and every commit is complete in the file the moment it returns, for connections
//! that know nothing of the writer's VFS, through WAL restarts, transactions larger than the
//! buffer, failed transactions and a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rusqlite::{Connection, OpenFlags};
use storage::{Storage, Writer};

/// Write system calls this thread has made (`syscw` in `/proc/thread-self/io`).
fn thread_writes() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a syscw line")
}

fn open(dir: &tempfile::TempDir) -> (Storage, Writer, u32) {
    let (storage, mut writer) = Storage::open(&dir.path().join("data.sqlite3")).expect("open");
    writer.begin().expect("begin");
    let table = writer.create_table("blobs").expect("table");
    writer.set_ts(1).expect("ts");
    writer.commit().expect("commit");
    (storage, writer, table)
}

/// Commits `n` documents of `size` bytes each, named `{prefix}{i}`, at `ts`.
fn commit_docs(writer: &mut Writer, table: u32, prefix: &str, n: usize, size: usize, ts: u64) {
    writer.begin().expect("begin");
    let value = format!("\"{}\"", "x".repeat(size));
    for i in 0..n {
        writer
            .put_document(&format!("{prefix}{i:06}"), table, &value)
            .expect("put");
    }
    writer.set_ts(ts).expect("ts");
    writer.commit().expect("commit");
}

/// A plain SQLite connection with the default VFS, as another process would open the file.
fn outsider(dir: &tempfile::TempDir) -> Connection {
    Connection::open_with_flags(
        dir.path().join("data.sqlite3"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("outsider")
}

fn count(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn a_commit_of_many_pages_takes_a_few_writes_not_two_per_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_storage, mut writer, table) = open(&dir);
    commit_docs(&mut writer, table, "warm", 10, 100, 2);
    // 100 documents of 3 KiB: about 100 pages, each a frame of the WAL (200 writes without
    // gathering).
    let before = thread_writes();
    commit_docs(&mut writer, table, "big", 100, 3000, 3);
    let writes = thread_writes() - before;
    assert!(
        writes <= 8,
        "a commit of ~100 WAL frames took {writes} write calls"
    );
    assert_eq!(count(&outsider(&dir)), 110);
}

#[test]
fn every_commit_is_complete_for_other_connections_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, mut writer, table) = open(&dir);
    let mut expected = 0;
    for round in 0..60u64 {
        // Mostly small commits, a few past the 4 MiB buffer, and WAL restarts between.
        let (n, size) = match round % 20 {
            7 => (1500, 3500),
            _ => (
                1 + (round as usize * 7) % 40,
                200 + (round as usize * 131) % 3000,
            ),
        };
        commit_docs(
            &mut writer,
            table,
            &format!("r{round:03}-"),
            n,
            size,
            10 + round,
        );
        expected += n as i64;
        // Each read is a fresh connection: it can only know of the commit from the file.
        let conn = outsider(&dir);
        assert_eq!(count(&conn), expected, "after round {round}");
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .expect("quick_check");
        assert_eq!(check, "ok", "after round {round}");
        drop(conn);
        if round % 9 == 8 {
            writer.checkpoint_truncate().expect("checkpoint");
        }
        // A transaction that fails leaves nothing, and the next commit is whole.
        if round % 11 == 3 {
            writer.begin().expect("begin");
            writer.put_document("never", table, "1").expect("put");
            writer.rollback().expect("rollback");
        }
    }
    drop(writer);
    drop(storage);
    let conn = outsider(&dir);
    assert_eq!(count(&conn), expected, "after a reopen");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
}
