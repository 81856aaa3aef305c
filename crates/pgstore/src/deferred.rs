//! [`Deferred`]: the writer's statements that return nothing, held back and sent together.
//!
//! Each statement to PostgreSQL is a round trip, and a mutation's writes (its savepoint, the
//! document, every index entry, its de-duplication record) need no answer. So the writer
//! holds them here and sends them in one round trip (a simple-query batch) just before
//! anything that needs an answer: a read, or `COMMIT` itself. Values are written as
//! literals: text between single quotes with each quote doubled (the connection sets
//! `standard_conforming_strings`, so a backslash is an ordinary character) and bytes in
//! `bytea`'s hex form, which leaves no way for a value to end its literal early.
//!
//! PostgreSQL parses and plans every statement of a batch on its own, and with one small
//! statement per row that was most of its work for a group commit. So the rows of the
//! statements that write one row each ([`RowKind`]) are held as rows and sent as one
//! statement per table and kind: between two statements that must keep their place (a
//! savepoint, anything else), the rows of each table keep their order, and the tables'
//! statements follow one another. Moving one table's rows past another's changes nothing:
//! the tables have no foreign keys or triggers, and a failing row fails the whole
//! transaction at `COMMIT` wherever it is. An upsert's rows start a new statement when a key
//! comes again, since one `ON CONFLICT DO UPDATE` cannot change a row twice; the later row
//! still wins.

use std::collections::HashSet;
use std::fmt::Write as _;

/// The one savepoint a transaction has open at a time (one per mutation of a batch).
const SAVEPOINT: &str = "SAVEPOINT mutation;";

/// Rows per statement at most, so that a large batch (an import) is not one huge statement.
const MAX_ROWS: usize = 1000;

/// A statement that writes one row (or deletes one key), many of which can share one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RowKind {
    /// `(id, table_number, value)`, replacing the document with that id.
    PutDocument,
    /// `id`.
    DeleteDocument,
    /// `(index_id, key, id)`.
    InsertIndexEntry,
    /// `(index_id, key)`.
    DeleteIndexEntry,
    /// `(session_id, request_id, ts, response)`, replacing the record with that key.
    PutMutationResponse,
}

impl RowKind {
    fn table(self) -> &'static str {
        match self {
            RowKind::PutDocument | RowKind::DeleteDocument => "documents",
            RowKind::InsertIndexEntry | RowKind::DeleteIndexEntry => "index_entries",
            RowKind::PutMutationResponse => "_mutations",
        }
    }

    /// The statement's text before its rows.
    fn head(self) -> &'static str {
        match self {
            RowKind::PutDocument => "INSERT INTO documents (id, table_number, value) VALUES ",
            RowKind::DeleteDocument => "DELETE FROM documents WHERE id IN (",
            RowKind::InsertIndexEntry => "INSERT INTO index_entries (index_id, key, id) VALUES ",
            RowKind::DeleteIndexEntry => "DELETE FROM index_entries WHERE (index_id, key) IN (",
            RowKind::PutMutationResponse => {
                "INSERT INTO _mutations (session_id, request_id, ts, response) VALUES "
            }
        }
    }

    /// The statement's text after its rows.
    fn tail(self) -> &'static str {
        match self {
            RowKind::PutDocument => {
                " ON CONFLICT (id) DO UPDATE SET table_number = EXCLUDED.table_number, value = EXCLUDED.value;"
            }
            RowKind::DeleteDocument | RowKind::DeleteIndexEntry => ");",
            RowKind::InsertIndexEntry => ";",
            RowKind::PutMutationResponse => {
                " ON CONFLICT (session_id, request_id) DO UPDATE SET ts = EXCLUDED.ts, response = EXCLUDED.response;"
            }
        }
    }

    /// How many leading values form the key an upsert replaces by (0: not an upsert).
    fn key_values(self) -> usize {
        match self {
            RowKind::PutDocument => 1,
            RowKind::PutMutationResponse => 2,
            _ => 0,
        }
    }
}

/// One held-back write.
enum Op {
    /// A statement that keeps its place among the others.
    Statement(String),
    /// A row of a statement many rows can share.
    Row(Row),
}

/// One row of a [`RowKind`] statement, as literals.
struct Row {
    kind: RowKind,
    /// The row's values, `(a, b, …)` (or one bare value).
    values: String,
    /// How much of `values` is the upsert's key (`None` for the other kinds).
    key_len: Option<usize>,
}

impl Row {
    fn key(&self) -> Option<&str> {
        self.key_len.map(|len| &self.values[..len])
    }
}

#[derive(Default)]
pub(crate) struct Deferred {
    ops: Vec<Op>,
    /// Where the open savepoint's `SAVEPOINT` is in `ops`, when it has not been sent yet:
    /// rolling back to it then only drops what follows.
    savepoint_at: Option<usize>,
}

impl Deferred {
    /// Everything held back, in order, as one batch of statements; leaves nothing.
    pub(crate) fn take(&mut self) -> String {
        self.savepoint_at = None;
        render(std::mem::take(&mut self.ops))
    }

    /// Drops everything held back (the transaction is rolled back).
    pub(crate) fn clear(&mut self) {
        self.ops.clear();
        self.savepoint_at = None;
    }

    /// Holds back `SAVEPOINT mutation`.
    pub(crate) fn savepoint(&mut self) {
        self.savepoint_at = Some(self.ops.len());
        self.ops.push(Op::Statement(SAVEPOINT.into()));
    }

    /// Releasing the open savepoint: `true` when its `SAVEPOINT` was still held back, which
    /// is then dropped (with no `RELEASE` to send). Nothing since it was sent, so it never
    /// served: what follows it either runs or fails the whole transaction at `COMMIT`, with
    /// or without it, and PostgreSQL is spared a subtransaction per mutation.
    pub(crate) fn release_savepoint(&mut self) -> bool {
        let held = self.savepoint_at.take();
        if let Some(at) = held {
            self.ops.remove(at);
        }
        held.is_some()
    }

    /// Rolling back to the open savepoint: `true` when the `SAVEPOINT` was still held back,
    /// so dropping it and what followed is the whole rollback; `false` when it was sent.
    pub(crate) fn drop_savepoint(&mut self) -> bool {
        let held = self.savepoint_at.take();
        if let Some(at) = held {
            self.ops.truncate(at);
        }
        held.is_some()
    }

    /// Holds back `sql`, in which each `$n` is replaced by `values[n - 1]`; it keeps its
    /// place among the other writes.
    pub(crate) fn push(&mut self, sql: &str, values: &[Literal<'_>]) {
        let mut text = String::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let digits: usize = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - at - 1);
            let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
            match n.checked_sub(1).and_then(|i| values.get(i)) {
                Some(value) => value.write(&mut text),
                // Only this crate's own constant statements come here; a `$` that is not a
                // placeholder is kept as it is.
                None => text.push('$'),
            }
            rest = &rest[at + 1 + digits..];
        }
        text.push_str(rest);
        text.push(';');
        self.ops.push(Op::Statement(text));
    }

    /// Holds back one row of `kind`, its values in the order [`RowKind`] names them.
    pub(crate) fn push_row(&mut self, kind: RowKind, values: &[Literal<'_>]) {
        let mut text = String::new();
        let mut key_len = None;
        if values.len() > 1 {
            text.push('(');
        }
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            value.write(&mut text);
            if i + 1 == kind.key_values() {
                key_len = Some(text.len());
            }
        }
        if values.len() > 1 {
            text.push(')');
        }
        self.ops.push(Op::Row(Row {
            kind,
            values: text,
            key_len,
        }));
    }
}

/// The batch for `ops`: statements in place, and between two of them each table's rows
/// gathered into as few statements as their kinds and keys allow (see the module docs).
fn render(ops: Vec<Op>) -> String {
    let mut out = String::new();
    let mut rows = Vec::new();
    for op in ops {
        match op {
            Op::Statement(sql) => {
                write_rows(&mut out, &rows);
                rows.clear();
                out.push_str(&sql);
            }
            Op::Row(row) => rows.push(row),
        }
    }
    write_rows(&mut out, &rows);
    out
}

fn write_rows(out: &mut String, rows: &[Row]) {
    let mut tables: Vec<&str> = Vec::new();
    for row in rows {
        if !tables.contains(&row.kind.table()) {
            tables.push(row.kind.table());
        }
    }
    for table in tables {
        // The statement being written: its kind, the upsert keys in it, its rows.
        let mut open: Option<(RowKind, HashSet<&str>, usize)> = None;
        for row in rows.iter().filter(|r| r.kind.table() == table) {
            let fits = open.as_ref().is_some_and(|(kind, keys, n)| {
                *kind == row.kind && *n < MAX_ROWS && row.key().is_none_or(|k| !keys.contains(k))
            });
            match &mut open {
                Some((_, keys, n)) if fits => {
                    out.push_str(", ");
                    keys.extend(row.key());
                    *n += 1;
                }
                _ => {
                    if let Some((kind, ..)) = open.take() {
                        out.push_str(kind.tail());
                    }
                    out.push_str(row.kind.head());
                    open = Some((row.kind, row.key().into_iter().collect(), 1));
                }
            }
            out.push_str(&row.values);
        }
        if let Some((kind, ..)) = open {
            out.push_str(kind.tail());
        }
    }
}

/// A value written into held-back SQL.
pub(crate) enum Literal<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    Int(i64),
}

impl Literal<'_> {
    fn write(&self, out: &mut String) {
        match self {
            Literal::Text(text) => {
                out.push('\'');
                for c in text.chars() {
                    if c == '\'' {
                        out.push('\'');
                    }
                    out.push(c);
                }
                out.push('\'');
            }
            Literal::Bytes(bytes) => {
                out.push_str("'\\x");
                for b in *bytes {
                    let _ = write!(out, "{b:02x}");
                }
                out.push_str("'::bytea");
            }
            Literal::Int(n) => {
                let _ = write!(out, "{n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_literals_that_cannot_escape() {
        let mut d = Deferred::default();
        d.push(
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)",
            &[
                Literal::Text("it's \\'; DROP TABLE t; --"),
                Literal::Bytes(&[0, 0xff, 0x27]),
                Literal::Int(-5),
            ],
        );
        assert_eq!(
            d.take(),
            "INSERT INTO t (a, b, c) VALUES ('it''s \\''; DROP TABLE t; --', '\\x00ff27'::bytea, -5);"
        );
        d.push("SELECT $10, $2", &[Literal::Int(1), Literal::Int(2)]);
        assert_eq!(
            d.take(),
            "SELECT $, 2;",
            "a placeholder without a value stays inert"
        );
    }

    #[test]
    fn a_savepoint_still_held_back_is_rolled_back_by_dropping_text() {
        let mut d = Deferred::default();
        d.push("A", &[]);
        d.savepoint();
        d.push("B", &[]);
        assert!(d.drop_savepoint());
        assert_eq!(d.take(), "A;");
        d.savepoint();
        let _ = d.take();
        assert!(!d.drop_savepoint(), "sent already");
    }

    #[test]
    fn a_savepoint_released_before_it_was_sent_is_never_sent() {
        let mut d = Deferred::default();
        d.push("A", &[]);
        d.savepoint();
        d.push("B", &[]);
        assert!(d.release_savepoint());
        d.push("C", &[]);
        assert_eq!(d.take(), "A;B;C;");
        d.savepoint();
        d.push("D", &[]);
        assert_eq!(d.take(), "SAVEPOINT mutation;D;", "a read sends it");
        assert!(
            !d.release_savepoint(),
            "sent already: the RELEASE must be sent too"
        );
    }

    fn doc(d: &mut Deferred, id: &str, value: &str) {
        d.push_row(
            RowKind::PutDocument,
            &[Literal::Text(id), Literal::Int(1), Literal::Text(value)],
        );
    }

    fn entry(d: &mut Deferred, key: u8, id: &str) {
        d.push_row(
            RowKind::InsertIndexEntry,
            &[Literal::Int(7), Literal::Bytes(&[key]), Literal::Text(id)],
        );
    }

    #[test]
    fn each_tables_rows_go_in_one_statement_in_their_order() {
        let mut d = Deferred::default();
        for (id, key) in [("a", 1), ("b", 2)] {
            d.savepoint();
            doc(&mut d, id, "{}");
            entry(&mut d, key, id);
            d.push_row(
                RowKind::PutMutationResponse,
                &[
                    Literal::Text("s"),
                    Literal::Int(i64::from(key)),
                    Literal::Int(9),
                    Literal::Text("r"),
                ],
            );
            assert!(d.release_savepoint());
        }
        d.push("NOTIFY x", &[]);
        assert_eq!(
            d.take(),
            "INSERT INTO documents (id, table_number, value) VALUES ('a', 1, '{}'), ('b', 1, '{}') \
             ON CONFLICT (id) DO UPDATE SET table_number = EXCLUDED.table_number, value = EXCLUDED.value;\
             INSERT INTO index_entries (index_id, key, id) VALUES (7, '\\x01'::bytea, 'a'), (7, '\\x02'::bytea, 'b');\
             INSERT INTO _mutations (session_id, request_id, ts, response) VALUES ('s', 1, 9, 'r'), ('s', 2, 9, 'r') \
             ON CONFLICT (session_id, request_id) DO UPDATE SET ts = EXCLUDED.ts, response = EXCLUDED.response;\
             NOTIFY x;"
        );
    }

    #[test]
    fn an_upserts_repeated_key_starts_a_new_statement_and_deletes_keep_their_place() {
        let mut d = Deferred::default();
        doc(&mut d, "a", "1");
        doc(&mut d, "b", "1");
        doc(&mut d, "a", "2");
        d.push_row(RowKind::DeleteDocument, &[Literal::Text("b")]);
        d.push_row(RowKind::DeleteDocument, &[Literal::Text("c")]);
        doc(&mut d, "b", "3");
        let sql = d.take();
        let statements: Vec<&str> = sql.split_terminator(';').collect();
        assert_eq!(statements.len(), 4, "{sql}");
        assert!(statements[0].contains("VALUES ('a', 1, '1'), ('b', 1, '1') ON"));
        assert!(statements[1].contains("VALUES ('a', 1, '2') ON"));
        assert_eq!(
            statements[2],
            "DELETE FROM documents WHERE id IN ('b', 'c')"
        );
        assert!(statements[3].contains("VALUES ('b', 1, '3') ON"));
    }

    #[test]
    fn rows_never_cross_a_statement_that_keeps_its_place() {
        let mut d = Deferred::default();
        entry(&mut d, 1, "a");
        d.savepoint();
        entry(&mut d, 2, "b");
        d.push_row(
            RowKind::DeleteIndexEntry,
            &[Literal::Int(7), Literal::Bytes(&[1])],
        );
        let _ = d.take();
        entry(&mut d, 3, "c");
        d.savepoint();
        entry(&mut d, 4, "d");
        assert!(d.drop_savepoint());
        assert_eq!(
            d.take(),
            "INSERT INTO index_entries (index_id, key, id) VALUES (7, '\\x03'::bytea, 'c');",
            "a rolled-back savepoint takes its rows with it"
        );
        entry(&mut d, 5, "e");
        d.savepoint();
        entry(&mut d, 6, "f");
        d.push_row(
            RowKind::DeleteIndexEntry,
            &[Literal::Int(7), Literal::Bytes(&[5])],
        );
        assert_eq!(
            d.take(),
            "INSERT INTO index_entries (index_id, key, id) VALUES (7, '\\x05'::bytea, 'e');\
             SAVEPOINT mutation;\
             INSERT INTO index_entries (index_id, key, id) VALUES (7, '\\x06'::bytea, 'f');\
             DELETE FROM index_entries WHERE (index_id, key) IN ((7, '\\x05'::bytea));"
        );
    }
}
