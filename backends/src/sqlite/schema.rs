//! The table, its indexes, and every statement the store runs, built once per store from the
//! checked table name.

/// What a row holds, in its `kind` column.
pub(crate) const KIND_RECORD: i64 = 0;
pub(crate) const KIND_ALIAS: i64 = 1;
pub(crate) const KIND_TOMBSTONE: i64 = 2;

/// The statements of one store. The table name has passed
/// [`check_table_name`](super::config::check_table_name) and is quoted besides.
#[derive(Debug)]
pub(crate) struct Sql {
    /// Creates the table and indexes if missing (several statements; idempotent).
    pub(crate) migrate: String,
    /// `?1` key → the row's entry and, for a grace alias, its target's entry, in one statement.
    pub(crate) load: String,
    /// `?1` key → entry.
    pub(crate) entry: String,
    /// `?1` key, `?2` other key → (key, entry) of each that exists.
    pub(crate) entries2: String,
    /// `?1` key, `?2` expires, `?3` owner, `?4` entry, `?5` now: a record, only where the key
    /// holds nothing that resolves (no row, an expired row, or a tombstone).
    pub(crate) create: String,
    /// `?1` key, `?2` kind, `?3` expires, `?4` owner, `?5` moved-to, `?6` entry: write a row.
    pub(crate) put: String,
    /// `?1` key, `?2` expires, `?3` owner, `?4` entry: rewrite a record row.
    pub(crate) update_record: String,
    /// `?1` key, `?2` entry: turn an alias into a tombstone (expiry, owner, target kept).
    pub(crate) to_tombstone: String,
    /// `?1` key.
    pub(crate) delete: String,
    /// `?1` now, `?2` batch: delete up to a batch of expired rows.
    pub(crate) cleanup: String,
    /// `?1` owner, `?2` after key, `?3` batch → (key, kind, expires, moved-to), in key order.
    pub(crate) owner_page: String,
    /// `?1` key → (kind, expires, owner, moved-to), to follow a move.
    pub(crate) hop: String,
    /// `?1` after key, `?2` now, `?3` batch → (key, entry) of the live records after the key,
    /// in key order (a range of the primary key).
    pub(crate) scan: String,
    /// `?1` now → the number of live records.
    pub(crate) count: String,
}

impl Sql {
    pub(crate) fn new(table: &str) -> Sql {
        let t = format!("\"{table}\"");
        Sql {
            migrate: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\n\
                 \x20   key BLOB PRIMARY KEY NOT NULL CHECK (length(key) = 32),\n\
                 \x20   kind INTEGER NOT NULL,\n\
                 \x20   expires_at INTEGER NOT NULL,\n\
                 \x20   owner TEXT,\n\
                 \x20   moved_to BLOB,\n\
                 \x20   entry BLOB NOT NULL\n\
                 ) WITHOUT ROWID;\n\
                 CREATE INDEX IF NOT EXISTS \"{table}_expires\" ON {t} (expires_at);\n\
                 CREATE INDEX IF NOT EXISTS \"{table}_owner\" ON {t} (owner, key) \
                 WHERE owner IS NOT NULL;\n"
            ),
            load: format!(
                "SELECT a.entry, b.entry FROM {t} AS a \
                 LEFT JOIN {t} AS b ON a.kind = {KIND_ALIAS} AND b.key = a.moved_to \
                 WHERE a.key = ?1"
            ),
            entry: format!("SELECT entry FROM {t} WHERE key = ?1"),
            entries2: format!("SELECT key, entry FROM {t} WHERE key IN (?1, ?2)"),
            create: format!(
                "INSERT INTO {t} (key, kind, expires_at, owner, moved_to, entry) \
                 VALUES (?1, {KIND_RECORD}, ?2, ?3, NULL, ?4) \
                 ON CONFLICT (key) DO UPDATE SET kind = {KIND_RECORD}, \
                 expires_at = excluded.expires_at, owner = excluded.owner, moved_to = NULL, \
                 entry = excluded.entry \
                 WHERE {t}.kind = {KIND_TOMBSTONE} OR {t}.expires_at <= ?5"
            ),
            put: format!(
                "INSERT OR REPLACE INTO {t} (key, kind, expires_at, owner, moved_to, entry) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            update_record: format!(
                "UPDATE {t} SET expires_at = ?2, owner = ?3, entry = ?4 WHERE key = ?1"
            ),
            to_tombstone: format!(
                "UPDATE {t} SET kind = {KIND_TOMBSTONE}, entry = ?2 WHERE key = ?1"
            ),
            delete: format!("DELETE FROM {t} WHERE key = ?1"),
            cleanup: format!(
                "DELETE FROM {t} WHERE key IN \
                 (SELECT key FROM {t} WHERE expires_at <= ?1 LIMIT ?2)"
            ),
            owner_page: format!(
                "SELECT key, kind, expires_at, moved_to FROM {t} \
                 WHERE owner = ?1 AND key > ?2 ORDER BY key LIMIT ?3"
            ),
            hop: format!("SELECT kind, expires_at, owner, moved_to FROM {t} WHERE key = ?1"),
            scan: format!(
                "SELECT key, entry FROM {t} \
                 WHERE key > ?1 AND kind = {KIND_RECORD} AND expires_at > ?2 \
                 ORDER BY key LIMIT ?3"
            ),
            count: format!(
                "SELECT count(*) FROM {t} WHERE kind = {KIND_RECORD} AND expires_at > ?1"
            ),
        }
    }
}
