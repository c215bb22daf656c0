//! The SQLite side of `kind: sql`: the database file opened read-only for each fetch (SQLite
//! is in-process, so a fresh handle is cheap and always sees the last committed state), the
//! query run on a blocking thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Cell, Rows};

#[derive(Debug)]
pub(crate) struct Sqlite {
    path: PathBuf,
    timeout: Duration,
}

impl Sqlite {
    /// `path` is what follows `sqlite://` (`/abs/app.db`, or a path relative to the working
    /// directory).
    pub(crate) fn new(path: &str, timeout: Duration) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        Sqlite {
            path: PathBuf::from(path),
            timeout,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn query(&self, sql: &str) -> Result<Rows, String> {
        let (path, sql, timeout) = (self.path.clone(), sql.to_owned(), self.timeout);
        tokio::task::spawn_blocking(move || read(&path, &sql, timeout))
            .await
            .map_err(|e| format!("query task failed: {e}"))?
    }
}

fn read(path: &Path, sql: &str, timeout: Duration) -> Result<Rows, String> {
    // Read-only and never created: a wrong path is an error, not a new empty database.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open the database: {e}"))?;
    // A writer holding the lock makes us wait this long, then fail (a "lock timeout").
    conn.busy_timeout(timeout)
        .map_err(|e| format!("cannot set busy_timeout: {e}"))?;
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| format!("query failed: {e}"))?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let width = columns.len();
    let mut out = Rows {
        columns,
        rows: Vec::new(),
    };
    let mut rows = stmt.query([]).map_err(|e| format!("query failed: {e}"))?;
    while let Some(row) = rows.next().map_err(|e| format!("query failed: {e}"))? {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            let cell = match row.get_ref(i).map_err(|e| format!("query failed: {e}"))? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => Cell::Text(s.to_owned()),
                    Err(_) => Cell::Other("TEXT that is not UTF-8".into()),
                },
                ValueRef::Real(_) => Cell::Other("REAL".into()),
                ValueRef::Blob(_) => Cell::Other("BLOB".into()),
            };
            cells.push(cell);
        }
        out.rows.push(cells);
    }
    Ok(out)
}
