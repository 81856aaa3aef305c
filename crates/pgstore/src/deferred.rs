//! [`Deferred`]: the writer's statements that return nothing, held back and sent together.
//!
//! Each statement to PostgreSQL is a round trip, and a mutation's writes (its savepoint, the
//! document, every index entry, its de-duplication record) need no answer. So the writer
//! appends them here as SQL text and sends them in one round trip (a simple-query batch)
//! just before anything that needs an answer: a read, or `COMMIT` itself. Values are written
//! as literals: text between single quotes with each quote doubled (the connection sets
//! `standard_conforming_strings`, so a backslash is an ordinary character) and bytes in
//! `bytea`'s hex form, which leaves no way for a value to end its literal early.

use std::fmt::Write as _;

#[derive(Default)]
pub(crate) struct Deferred {
    sql: String,
    /// Where the statements after the open savepoint start in `sql`, when the `SAVEPOINT`
    /// itself has not been sent yet: rolling back to it then only drops text.
    savepoint_at: Option<usize>,
}

impl Deferred {
    /// Everything held back, in order; leaves nothing.
    pub(crate) fn take(&mut self) -> String {
        self.savepoint_at = None;
        std::mem::take(&mut self.sql)
    }

    /// Drops everything held back (the transaction is rolled back).
    pub(crate) fn clear(&mut self) {
        self.sql.clear();
        self.savepoint_at = None;
    }

    /// Holds back `SAVEPOINT mutation`.
    pub(crate) fn savepoint(&mut self) {
        self.savepoint_at = Some(self.sql.len());
        self.sql.push_str("SAVEPOINT mutation;");
    }

    /// Rolling back to the open savepoint: `true` when the `SAVEPOINT` was still held back,
    /// so dropping it and what followed is the whole rollback; `false` when it was sent.
    pub(crate) fn drop_savepoint(&mut self) -> bool {
        match self.savepoint_at.take() {
            Some(at) => {
                self.sql.truncate(at);
                true
            }
            None => false,
        }
    }

    /// Holds back `sql`, in which each `$n` is replaced by `values[n - 1]`.
    pub(crate) fn push(&mut self, sql: &str, values: &[Literal<'_>]) {
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            self.sql.push_str(&rest[..at]);
            let digits: usize = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - at - 1);
            let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
            match n.checked_sub(1).and_then(|i| values.get(i)) {
                Some(value) => value.write(&mut self.sql),
                // Only this crate's own constant statements come here; a `$` that is not a
                // placeholder is kept as it is.
                None => self.sql.push('$'),
            }
            rest = &rest[at + 1 + digits..];
        }
        self.sql.push_str(rest);
        self.sql.push(';');
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
}
