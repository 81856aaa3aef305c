//! The PostgreSQL engine against a real, throw-away PostgreSQL cluster (`scripts/pg-cluster.sh`
//! starts it on 127.0.0.1 and stops it by PID): the same conformance checks SQLite passes,
//! then what only a server engine meets — a second writer, a dropped connection, a transaction
//! PostgreSQL aborted.

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

    a_second_writer_is_refused(&cluster);
    the_writer_and_readers_reconnect(&cluster);
    an_aborted_transaction_is_never_reported_committed(&cluster);
    a_bad_url_or_an_unreachable_server_is_named(&cluster);
}

/// Two servers on one database would fork its history: the second writer finds the write
/// lock taken, and gets it once the first is gone.
fn a_second_writer_is_refused(cluster: &Cluster) {
    let url = cluster.database("two_writers");
    let (_storage, first) = pgstore::open(&url).expect("open");
    let Err(refused) = pgstore::open(&url) else {
        panic!("a second writer on the same database was accepted");
    };
    assert_eq!(
        refused.unavailable(Path::new("")),
        Some(Unavailable::Locked)
    );
    assert!(refused.to_string().contains("write lock"), "{refused}");
    drop(first);
    let mut again = None;
    // The server notices the closed connection at once, but give it a bounded moment.
    for _ in 0..50 {
        if let Ok(opened) = pgstore::open(&url) {
            again = Some(opened);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(again.is_some(), "the lock came free with the first writer");
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
    // It holds the write lock again.
    assert!(pgstore::open(&url).is_err(), "the lock was taken again");
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
    assert!(
        writer.insert_index_entry(1, &[1], "b").is_err(),
        "duplicate key"
    );
    assert!(writer.commit().is_err(), "COMMIT of an aborted transaction");
    assert!(!writer.in_transaction());
    assert!(writer.get_document("x").expect("read").is_none());
    writer.begin().expect("the writer is usable again");
    writer.rollback().expect("rollback");
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
