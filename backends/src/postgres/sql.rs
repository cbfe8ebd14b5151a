//! The SQL text of every statement, built once per store from the validated table name.
//!
//! Columns: `key` (the 32-byte [`SessionKey`](sessionkit::SessionKey), primary key), `kind`
//! (`0` record, `1` grace alias, `2` move tombstone), `expires_at` (Unix ms; an alias's or
//! tombstone's end), `fields` (JSONB, see `fields.rs`), `owner`, `target` (the key an alias
//! or tombstone points to) and `token` (an alias's token). Every write that changes a key
//! announces it with `pg_notify` in the same statement (delivered when it commits), unless
//! notifications are off.

/// Entry kinds in the `kind` column.
pub(super) const RECORD: i16 = 0;
pub(super) const ALIAS: i16 = 1;
pub(super) const TOMBSTONE: i16 = 2;

/// The statements of one table.
#[derive(Debug)]
pub(super) struct Sql {
    /// The idempotent schema: the table and its indexes.
    pub(super) migration: String,
    /// The `NOTIFY` channel's name (see [`channel`]).
    pub(super) channel: String,
    /// `$1` key, `$2` expires, `$3` now, `$4` fields, `$5` owner → keys written: a record,
    /// only where the key holds nothing live, or a tombstone.
    pub(super) create: String,
    /// `$1` key, `$2` now → the live row (kind, expires, fields, owner, target, token) and,
    /// for a grace alias, its target record's fields, expiry and owner.
    pub(super) load: String,
    /// `$1` key, `$2` now, `$3` replace all, `$4` names removed, `$5` fields set, `$6` new
    /// expiry, `$7` owner changed, `$8` owner → keys written: a save merged into a live record
    /// in one statement.
    pub(super) apply: String,
    /// As [`apply`](Self::apply), plus `$9` most fields, `$10` most bytes and `$11` the
    /// quick bound (see [`quick_bound`]): the merge is written only if it keeps within the
    /// limits or does not grow past them. A statement of its own rather than a switch
    /// parameter: with a parameter that prunes the check, PostgreSQL found every custom plan
    /// cheaper than its generic one and planned every save again (measured: ~60 µs of
    /// planning per save).
    pub(super) apply_limited: String,
    /// `$1` key, `$2` now → a live record's (fields, expires, owner), its row locked.
    pub(super) lock: String,
    /// `$1` key, `$2` fields, `$3` expires, `$4` owner → keys written: rewrites a record.
    pub(super) write: String,
    /// `$1` key, `$2` now → (kind, target, live, keys written) of what was there: a record
    /// or an expired row is deleted, a live alias becomes a tombstone.
    pub(super) delete: String,
    /// `$1` from, `$2` to, `$3` now, `$4` kind left at `from`, `$5` token, `$6` its end →
    /// (records found, records inserted, keys written).
    pub(super) rename: String,
    /// `$1` now, `$2` batch: deletes up to a batch of expired rows.
    pub(super) cleanup: String,
    /// `$1` owner, `$2` now → the keys of the owner's live records.
    pub(super) owned_by: String,
    /// `$1` after key, `$2` now, `$3` batch → (key, fields::text, expires_at, owner) of the
    /// live records after the key, in key order.
    pub(super) scan: String,
    /// `$1` now → the number of live records.
    pub(super) count: String,
}

/// The size of a JSONB field map (`pg_column_size`, uncompressed as a computed value is) up to
/// which it certainly keeps within `max_fields` and `max_bytes`, so the exact count of the
/// save's limit check can be skipped: the map holds each name (escaped, never shorter) and
/// each value (base64, never shorter than the decoded bytes) plus 8 bytes of entry headers
/// per field, so its size bounds both the bytes `Record::apply` counts and 8 × the fields.
pub(super) fn quick_bound(max_fields: i64, max_bytes: i64) -> i64 {
    max_bytes.min(max_fields.saturating_mul(8))
}

/// The NOTIFY channel of a table: `sessionkit_<table>` (a table name is at most 48 bytes).
pub(super) fn channel(table: &str) -> String {
    format!("sessionkit_{table}")
}

/// The idempotent schema of `table` (already validated).
pub(super) fn migration(table: &str) -> String {
    format!(
        r#"CREATE TABLE IF NOT EXISTS "{table}" (
    key bytea PRIMARY KEY,
    kind smallint NOT NULL DEFAULT 0,
    expires_at bigint NOT NULL,
    fields jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    owner text,
    target bytea,
    token bytea
);
CREATE INDEX IF NOT EXISTS "{table}_expires" ON "{table}" (expires_at);
CREATE INDEX IF NOT EXISTS "{table}_owner" ON "{table}" (owner, key) WHERE owner IS NOT NULL;
"#
    )
}

impl Sql {
    /// The statements for `table` (validated by the caller: it is pasted, quoted, into SQL).
    pub(super) fn new(table: &str, notify: bool) -> Self {
        let channel = channel(table);
        let t = format!(r#""{table}""#);
        // How many keys the CTE `w` wrote, announcing each (the volatile call in the inner
        // select is never optimized away).
        let announce = if notify {
            format!(
                "(SELECT count(*) FROM (SELECT pg_notify('{channel}', encode(w.key, 'hex')) \
                 FROM w) n)"
            )
        } else {
            "(SELECT count(*) FROM w)".to_owned()
        };
        // Replaces an expired row, or a tombstone, under an inserted key.
        let take_over = format!(
            "ON CONFLICT (key) DO UPDATE SET kind = {RECORD}, expires_at = EXCLUDED.expires_at, \
             fields = EXCLUDED.fields, owner = EXCLUDED.owner, target = NULL, token = NULL \
             WHERE s.expires_at <= $3 OR s.kind = {TOMBSTONE}"
        );
        let merged = "(((CASE WHEN $3 THEN '{}'::jsonb ELSE s.fields END) - $4::text[]) \
                      || $5::jsonb)";
        let count = |m: &str| format!("(SELECT count(*) FROM jsonb_object_keys({m}))");
        // Bytes of names (unescaped: each `%` escape added two) plus decoded values.
        let bytes = |m: &str| {
            format!(
                "(SELECT coalesce(sum(octet_length(k) - 2 * (length(k) - \
                 length(replace(k, '%', ''))) + length(v) / 4 * 3 - (length(v) - \
                 length(rtrim(v, '=')))), 0) FROM jsonb_each_text({m}) AS e(k, v))"
            )
        };
        // The SET and WHERE of a save's one-statement merge.
        let set = format!(
            "fields = {merged}, expires_at = coalesce($6, s.expires_at), \
             owner = CASE WHEN $7 THEN $8 ELSE s.owner END"
        );
        let live = format!("s.key = $1 AND s.kind = {RECORD} AND s.expires_at > $2");
        Sql {
            migration: migration(table),
            create: format!(
                "WITH w AS (INSERT INTO {t} AS s (key, kind, expires_at, fields, owner) \
                 VALUES ($1, {RECORD}, $2, $4::jsonb, $5) {take_over} RETURNING s.key) \
                 SELECT {announce}"
            ),
            load: format!(
                "SELECT a.kind, a.expires_at, a.fields::text, a.owner, a.target, a.token, \
                 r.fields::text, r.expires_at, r.owner FROM {t} a LEFT JOIN {t} r \
                 ON a.kind = {ALIAS} AND r.key = a.target AND r.kind = {RECORD} \
                 AND r.expires_at > $2 \
                 WHERE a.key = $1 AND a.expires_at > $2 AND a.kind <> {TOMBSTONE}"
            ),
            apply: format!(
                "WITH w AS (UPDATE {t} s SET {set} WHERE {live} RETURNING s.key) SELECT {announce}"
            ),
            // The exact check walks the merged map twice; the quick one reads its size.
            apply_limited: format!(
                "WITH w AS (UPDATE {t} s SET {set} WHERE {live} \
                 AND (pg_column_size({merged}) <= $11 \
                 OR (({cm} <= $9 OR {cm} <= {cs}) AND ({bm} <= $10 OR {bm} <= {bs}))) \
                 RETURNING s.key) SELECT {announce}",
                cm = count(merged),
                cs = count("s.fields"),
                bm = bytes(merged),
                bs = bytes("s.fields"),
            ),
            lock: format!(
                "SELECT fields::text, expires_at, owner FROM {t} \
                 WHERE key = $1 AND kind = {RECORD} AND expires_at > $2 FOR UPDATE"
            ),
            write: format!(
                "WITH w AS (UPDATE {t} SET fields = $2::jsonb, expires_at = $3, owner = $4 \
                 WHERE key = $1 RETURNING key) SELECT {announce}"
            ),
            delete: format!(
                "WITH old AS (SELECT key, kind, target, expires_at > $2 AS live FROM {t} \
                 WHERE key = $1 FOR UPDATE), \
                 d AS (DELETE FROM {t} s USING old WHERE s.key = old.key \
                 AND (old.kind = {RECORD} OR NOT old.live) RETURNING s.key), \
                 u AS (UPDATE {t} s SET kind = {TOMBSTONE}, token = NULL FROM old \
                 WHERE s.key = old.key AND old.kind <> {RECORD} AND old.live RETURNING s.key), \
                 w AS (SELECT key FROM d UNION ALL SELECT key FROM u) \
                 SELECT old.kind, old.target, old.live, {announce} FROM old"
            ),
            rename: format!(
                "WITH src AS (SELECT key, fields, expires_at, owner FROM {t} \
                 WHERE key = $1 AND kind = {RECORD} AND expires_at > $3 FOR UPDATE), \
                 ins AS (INSERT INTO {t} AS s (key, kind, expires_at, fields, owner) \
                 SELECT $2, {RECORD}, expires_at, fields, owner FROM src {take_over} \
                 RETURNING s.key), \
                 up AS (UPDATE {t} s SET kind = $4, fields = '{{}}'::jsonb, owner = NULL, \
                 target = $2, token = $5, expires_at = least(src.expires_at, $6) FROM src \
                 WHERE s.key = src.key AND EXISTS (SELECT 1 FROM ins) RETURNING s.key), \
                 w AS (SELECT key FROM ins UNION ALL SELECT key FROM up) \
                 SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins), {announce}"
            ),
            cleanup: format!(
                "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at <= $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            owned_by: format!(
                "SELECT key FROM {t} WHERE owner = $1 AND kind = {RECORD} AND expires_at > $2"
            ),
            scan: format!(
                "SELECT key, fields::text, expires_at, owner FROM {t} \
                 WHERE key > $1 AND kind = {RECORD} AND expires_at > $2 ORDER BY key LIMIT $3"
            ),
            count: format!("SELECT count(*) FROM {t} WHERE kind = {RECORD} AND expires_at > $1"),
            channel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_bound_is_the_tighter_bound_and_never_overflows() {
        assert_eq!(quick_bound(10_000, 4 << 20), 80_000);
        assert_eq!(quick_bound(3, 200), 24);
        assert_eq!(quick_bound(i64::MAX, 100), 100);
        assert_eq!(quick_bound(i64::MAX, i64::MAX), i64::MAX);
    }
}
