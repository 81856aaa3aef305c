//! The PostgreSQL engine against a real, throw-away PostgreSQL cluster (`scripts/pg-cluster.sh`
//! starts it on 127.0.0.1 and stops it by PID): the same conformance checks SQLite passes,
//! then what only a server engine meets — several writers and the commit feed, a dropped
//! connection, a transaction PostgreSQL aborted.

use std::path::{Path, PathBuf};
use std::process::Command;

use storage::{ReadRows, Unavailable};

/// A cluster for this test binary; stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    /// `postgres://pulsebase@127.0.0.1:PORT/pulsebase`
    url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster.sh")
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("pulsebase-pg-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .output()
            .expect("run scripts/pg-cluster.sh");
        assert!(
            out.status.success(),
            "could not start a PostgreSQL cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Cluster { dir, url }
    }

    /// A new, empty database of this cluster; its URL.
    fn database(&self, name: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let base = self.url.rsplit_once('/').expect("a URL with a database").0;
        format!("{base}/{name}")
    }

    fn admin(&self, url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls).expect("connect")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn postgres_engine() {
    let cluster = Cluster::start();

    // The same checks SQLite passes (crates/storage/src/conformance.rs).
    let mut n = 0;
    storage::conformance::run_all(&mut || {
        n += 1;
        pgstore::open(&cluster.database(&format!("conformance_{n}"))).expect("open")
    });

    two_writers_take_turns_and_the_feed_sees_both(&cluster);
    the_writer_and_readers_reconnect(&cluster);
    an_aborted_transaction_is_never_reported_committed(&cluster);
    a_bad_url_or_an_unreachable_server_is_named(&cluster);
}

/// Two nodes on one database take turns: a second writer's `begin` waits while the first
/// holds the commit lock, then reads the first one's timestamp; both commits reach a feed in
/// timestamp order, and only committed ones.
fn two_writers_take_turns_and_the_feed_sees_both(cluster: &Cluster) {
    let url = cluster.database("two_writers");
    let (storage, mut first) = pgstore::open(&url).expect("open");
    let (_other, second) = pgstore::open(&url).expect("a second node opens the same database");
    let mut feed = storage
        .commit_feed()
        .expect("feed")
        .expect("a shared database has one");
    assert!(first.shared());

    first.begin().expect("begin");
    let waiting = std::thread::spawn(move || {
        let mut second = second;
        let started = std::time::Instant::now();
        second.begin().expect("begin waits for the lock");
        let waited = started.elapsed();
        let ts = second.ts().expect("ts");
        second.log_commit(ts + 1, b"second").expect("log");
        second.set_ts(ts + 1).expect("ts");
        second.commit().expect("commit");
        (waited, ts)
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    first.log_commit(100, b"first").expect("log");
    first.set_ts(100).expect("ts");
    first.commit().expect("commit");
    let (waited, seen) = waiting.join().expect("second writer");
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "it waited for the lock: {waited:?}"
    );
    assert_eq!(
        seen, 100,
        "it read the first writer's commit under the lock"
    );

    // A rolled-back commit is never announced.
    first.begin().expect("begin");
    first.log_commit(500, b"rolled back").expect("log");
    first.rollback().expect("rollback");

    let mut got = Vec::new();
    for _ in 0..20 {
        let after = got.last().map_or(0, |c: &storage::LoggedCommit| c.ts);
        got.extend(
            feed.next(after, std::time::Duration::from_millis(200))
                .expect("feed"),
        );
        if got.len() >= 2 {
            break;
        }
    }
    let got: Vec<(u64, &[u8])> = got.iter().map(|c| (c.ts, c.record.as_slice())).collect();
    assert_eq!(got, [(100, &b"first"[..]), (101, &b"second"[..])]);
    assert!(
        feed.next(101, std::time::Duration::from_millis(100))
            .expect("feed")
            .is_empty()
    );

    // A commit announced while the feed waits wakes it well before its wait is over.
    let waker = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        first.begin().expect("begin");
        first.log_commit(102, b"third").expect("log");
        first.set_ts(102).expect("ts");
        first.commit().expect("commit");
    });
    let started = std::time::Instant::now();
    let third = feed
        .next(101, std::time::Duration::from_secs(5))
        .expect("feed");
    assert_eq!(third.len(), 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "woken by the announcement"
    );
    waker.join().expect("waker");
    // Pruning forgets the old part of the log.
    let (_s, mut writer) = pgstore::open(&url).expect("open");
    writer.begin().expect("begin");
    assert_eq!(writer.prune_commit_log(102).expect("prune"), 2);
    writer.commit().expect("commit");
}

/// A writer or reader whose connection was cut (a server restart, a network cut) fails the
/// operation under way with "unreachable", then reconnects — the writer taking the write
/// lock again — and carries on.
fn the_writer_and_readers_reconnect(cluster: &Cluster) {
    let url = cluster.database("reconnects");
    let (storage, mut writer) = pgstore::open(&url).expect("open");
    writer.begin().expect("begin");
    writer.put_document("a", 1, "{}").expect("doc");
    writer.set_ts(10).expect("ts");
    writer.commit().expect("commit");
    let mut reader = storage.reader().expect("reader");
    assert_eq!(reader.begin().expect("snapshot"), 10);
    reader.end();

    let mut admin = cluster.admin(&url);
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .expect("terminate");

    // The first use of a cut connection fails, as unreachable.
    let failed = (|| -> Result<(), storage::StorageError> {
        writer.begin()?;
        writer.put_document("b", 1, "{}")
    })();
    if let Err(e) = &failed {
        assert_eq!(writer.unavailable(e), Some(Unavailable::Unreachable), "{e}");
        let _ = writer.rollback();
    }
    writer.begin().expect("begin after reconnecting");
    writer.put_document("b", 1, "{}").expect("doc");
    writer.set_ts(11).expect("ts");
    writer.commit().expect("commit");
    assert_eq!(reader.begin().expect("a reader reconnects too"), 11);
    assert!(reader.get_document("b").expect("read").is_some());
    reader.end();
}

/// PostgreSQL aborts a transaction at its first failed statement and answers a later COMMIT
/// with a silent ROLLBACK; the writer reports that as the failure it is.
fn an_aborted_transaction_is_never_reported_committed(cluster: &Cluster) {
    let url = cluster.database("aborted");
    let (_storage, mut writer) = pgstore::open(&url).expect("open");
    writer.begin().expect("begin");
    writer.insert_index_entry(1, &[1], "a").expect("entry");
    writer.commit().expect("commit");
    writer.begin().expect("begin");
    writer.put_document("x", 1, "{}").expect("doc");
    let failed = writer
        .insert_index_entry(1, &[1], "b")
        .and_then(|()| writer.get_document("x").map(|_| ()));
    assert!(failed.is_err(), "duplicate key, reported by the next read");
    assert!(writer.commit().is_err(), "COMMIT of an aborted transaction");
    assert!(!writer.in_transaction());
    assert!(writer.get_document("x").expect("read").is_none());
    // A held-back failure that nothing read after is reported by the commit itself.
    writer.begin().expect("the writer is usable again");
    writer.put_document("y", 1, "{}").expect("doc");
    writer.insert_index_entry(1, &[1], "c").expect("held back");
    assert!(
        writer.commit().is_err(),
        "the commit reports the held-back failure"
    );
    assert!(!writer.in_transaction());
    assert!(writer.get_document("y").expect("read").is_none());
}

fn a_bad_url_or_an_unreachable_server_is_named(cluster: &Cluster) {
    let Err(bad) = pgstore::open("postgres://nobody@127.0.0.1:notaport/x") else {
        panic!("a malformed URL was accepted");
    };
    assert!(bad.to_string().contains("database URL"), "{bad}");
    // A port nothing listens on: take the cluster's and add one is not safe; bind and drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let Err(down) = pgstore::open(&format!("postgres://pulsebase@127.0.0.1:{port}/pulsebase"))
    else {
        panic!("connected to a port nothing listens on");
    };
    assert_eq!(
        down.unavailable(Path::new("")),
        Some(Unavailable::Unreachable),
        "{down}"
    );
    let _ = cluster;
}
