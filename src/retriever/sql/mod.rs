//! `kind: sql`: GoFastr's flag table, on PostgreSQL or SQLite.
//!
//! GoFastr (`core/featureflag`) keeps its flags in one table:
//!
//! ```sql
//! feature_flags(key TEXT PRIMARY KEY, enabled INTEGER NOT NULL, rollout INTEGER NOT NULL,
//!               users TEXT NOT NULL, tenants TEXT NOT NULL, envs TEXT NOT NULL DEFAULT '[]')
//! ```
//!
//! with the three lists as JSON arrays of strings. Each row becomes a flag of our model:
//! `enabled` 0 or 1, `rollout` clamped to 0..=100 as GoFastr clamps it, an empty list column
//! `[]`. A custom `query` may return the same columns plus `value_on` / `value_off` (JSON text)
//! and `description`. Anything else is an error naming the row's key and the column: a
//! malformed list never becomes an empty one (an empty allow list changes who sees a flag).
//!
//! The rows become one canonical JSON flag document (keys in order, fields in one order), so
//! the refresher's "same bytes, no rebuild" check is the change detection: an unchanged table
//! costs one query and no parse.
//!
//! Crates: `tokio-postgres` (async, maintained by the rust-postgres project; TLS through
//! `tokio-postgres-rustls` with our aws-lc-rs rustls config, SCRAM through RustCrypto, no
//! `ring`) and `rusqlite` with `bundled` (SQLite compiled in, no system library to match).
//! `sqlx` would also do, but drags in its macros, a pool and several drivers we do not use.

mod postgres;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::{Fetched, RetrieverError, Validators};
use crate::config::RetrieverConfig;
use crate::parse::Format;

/// One cell of a result row, as both backends see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    /// A value of another type; holds the type's name for the error.
    Other(String),
}

/// A result set: column names and rows.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug)]
enum Backend {
    Postgres(Box<postgres::Postgres>),
    Sqlite(sqlite::Sqlite),
}

#[derive(Debug)]
pub struct SqlRetriever {
    backend: Backend,
    query: String,
    source: String,
    max_bytes: u64,
    timeout: Duration,
}

impl SqlRetriever {
    pub(crate) fn new(cfg: &RetrieverConfig) -> Result<Self, RetrieverError> {
        let url = cfg.url.as_deref().unwrap_or_default();
        let timeout = cfg.timeout.duration().unwrap_or(Duration::from_secs(10));
        let table = cfg.table.as_deref().unwrap_or("feature_flags");
        let query = cfg.query.clone().unwrap_or_else(|| {
            format!("SELECT key, enabled, rollout, users, tenants, envs FROM {table}")
        });
        let what = if cfg.query.is_some() {
            "query".to_owned()
        } else {
            format!("table {table}")
        };
        let setup_err = |source: &str, message: String| RetrieverError::Setup {
            source_name: source.to_owned(),
            message,
        };
        if let Err((key, message)) = cfg.check_sql() {
            return Err(setup_err("sql retriever", format!("{key}: {message}")));
        }
        let (backend, location) = if let Some(path) = url.strip_prefix("sqlite://") {
            let db = sqlite::Sqlite::new(path, timeout);
            let location = format!("sqlite://{}", db.path().display());
            (Backend::Sqlite(db), location)
        } else {
            let pg = postgres::Postgres::new(cfg, timeout)
                .map_err(|(location, m)| setup_err(&format!("{location} ({what})"), m))?;
            let location = pg.location().to_owned();
            (Backend::Postgres(Box::new(pg)), location)
        };
        Ok(SqlRetriever {
            backend,
            query,
            source: format!("{location} ({what})"),
            max_bytes: cfg.max_bytes,
            timeout,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Notified on every PostgreSQL notification on `notifyChannel`.
    pub(crate) fn changes(&self) -> Option<Arc<Notify>> {
        match &self.backend {
            Backend::Postgres(pg) => pg.changes(),
            Backend::Sqlite(_) => None,
        }
    }

    pub(crate) async fn fetch(&self, _since: &Validators) -> Result<Fetched, RetrieverError> {
        let rows = match tokio::time::timeout(self.timeout, self.rows()).await {
            Ok(result) => result?,
            Err(_) => return Err(RetrieverError::timeout(&self.source, self.timeout)),
        };
        let doc = to_document(&rows).map_err(|message| self.io(message))?;
        if doc.len() as u64 > self.max_bytes {
            return Err(RetrieverError::TooLarge {
                source_name: self.source.clone(),
                limit: self.max_bytes,
            });
        }
        super::changed(
            &self.source,
            doc.into(),
            Some(Format::Json),
            Validators::default(),
        )
    }

    async fn rows(&self) -> Result<Rows, RetrieverError> {
        let result = match &self.backend {
            Backend::Postgres(pg) => pg.query(&self.query).await,
            Backend::Sqlite(db) => db.query(&self.query).await,
        };
        result.map_err(|message| self.io(message))
    }

    fn io(&self, message: String) -> RetrieverError {
        RetrieverError::Io {
            source_name: self.source.clone(),
            message,
        }
    }
}

/// Rows → the canonical JSON flag document. Errors name the row (its key, else its number)
/// and the column.
pub(crate) fn to_document(rows: &Rows) -> Result<Vec<u8>, String> {
    let col = |name: &str| {
        rows.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    };
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            format!(
                "the result has no column `{name}` (columns: {})",
                rows.columns.join(", ")
            )
        })
    };
    let (key_c, enabled_c, rollout_c) = (need("key")?, need("enabled")?, need("rollout")?);
    let (users_c, tenants_c) = (need("users")?, need("tenants")?);
    // GoFastr added `envs` later, with a default: a query for an older schema may leave it out.
    let envs_c = col("envs");
    let (on_c, off_c, desc_c) = (col("value_on"), col("value_off"), col("description"));

    let mut flags: BTreeMap<String, Value> = BTreeMap::new();
    for (n, row) in rows.rows.iter().enumerate() {
        let key = match &row[key_c] {
            Cell::Text(k) if !k.is_empty() => k.clone(),
            Cell::Text(_) => return Err(format!("row {}: column `key` is empty", n + 1)),
            Cell::Null => return Err(format!("row {}: column `key` is NULL", n + 1)),
            other => {
                return Err(format!(
                    "row {}: column `key` is {}, expected text",
                    n + 1,
                    type_name(other)
                ));
            }
        };
        let at =
            |column: &str, message: String| format!("row {key:?}: column `{column}` {message}");
        let enabled = match &row[enabled_c] {
            Cell::Int(0) => false,
            Cell::Int(1) => true,
            Cell::Bool(b) => *b,
            Cell::Int(i) => return Err(at("enabled", format!("is {i}, expected 0 or 1"))),
            other => return Err(at("enabled", wrong(other, "an integer 0 or 1"))),
        };
        let rollout = match &row[rollout_c] {
            Cell::Int(i) => (*i).clamp(0, 100),
            other => return Err(at("rollout", wrong(other, "an integer"))),
        };
        let list = |column: &str, c: usize| -> Result<Value, String> {
            match &row[c] {
                Cell::Text(t) if t.trim().is_empty() => Ok(Value::Array(Vec::new())),
                Cell::Text(t) => match serde_json::from_str::<Vec<String>>(t) {
                    Ok(items) => Ok(items.into_iter().map(Value::String).collect()),
                    Err(e) => Err(at(column, format!("is not a JSON array of strings ({e})"))),
                },
                other => Err(at(column, wrong(other, "JSON text"))),
            }
        };
        let mut flag = Map::new();
        flag.insert("enabled".into(), Value::Bool(enabled));
        flag.insert("rollout".into(), Value::from(rollout));
        flag.insert("users".into(), list("users", users_c)?);
        flag.insert("tenants".into(), list("tenants", tenants_c)?);
        let envs = match envs_c {
            Some(c) => list("envs", c)?,
            None => Value::Array(Vec::new()),
        };
        flag.insert("envs".into(), envs);
        let json_value = |column: &str, c: Option<usize>| -> Result<Option<Value>, String> {
            match c.map(|c| &row[c]) {
                None | Some(Cell::Null) => Ok(None),
                Some(Cell::Text(t)) => serde_json::from_str(t)
                    .map(Some)
                    .map_err(|e| at(column, format!("is not JSON ({e})"))),
                Some(other) => Err(at(column, wrong(other, "JSON text"))),
            }
        };
        let (on, off) = (
            json_value("value_on", on_c)?,
            json_value("value_off", off_c)?,
        );
        if on.is_some() || off.is_some() {
            let mut value = Map::new();
            value.insert("on".into(), on.unwrap_or(Value::Bool(true)));
            value.insert("off".into(), off.unwrap_or(Value::Bool(false)));
            flag.insert("value".into(), Value::Object(value));
        }
        match desc_c.map(|c| &row[c]) {
            None | Some(Cell::Null) => {}
            Some(Cell::Text(d)) => {
                flag.insert("description".into(), Value::String(d.clone()));
            }
            Some(other) => return Err(at("description", wrong(other, "text"))),
        }
        if flags.insert(key.clone(), Value::Object(flag)).is_some() {
            return Err(format!("row {key:?}: the key appears in more than one row"));
        }
    }
    let doc: Map<String, Value> = flags.into_iter().collect();
    Ok(serde_json::to_vec(&Value::Object(doc)).expect("a JSON value serializes"))
}

fn wrong(cell: &Cell, expected: &str) -> String {
    match cell {
        // Says "NULL" plainly: a NULL in a NOT NULL column is the usual hand-written mistake.
        Cell::Null => format!("is NULL, expected {expected}"),
        other => format!("is {}, expected {expected}", type_name(other)),
    }
}

fn type_name(cell: &Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Int(_) => "an integer".into(),
        Cell::Bool(_) => "a boolean".into(),
        Cell::Text(_) => "text".into(),
        Cell::Other(t) => format!("of type {t}"),
    }
}

#[cfg(test)]
mod tests;
