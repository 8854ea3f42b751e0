//! Postgres changes as clients ask for them and as the database reports
//! them: the bindings of a join (`event`, `schema`, `table`, `filter`),
//! the changes wal2json decodes from the project's slot, which binding each
//! change matches, and the payload Supabase sends for it.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The most a record may weigh before its large values are left out (as
/// Supabase does, with an `Error 413` in `errors`).
pub(crate) const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Values kept in an oversized record are at most this long.
const KEPT_VALUE_BYTES: usize = 64;

/// What a binding listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    All,
    Insert,
    Update,
    Delete,
}

impl Event {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "*" => Some(Self::All),
            "INSERT" => Some(Self::Insert),
            "UPDATE" => Some(Self::Update),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }

    /// As `realtime.subscription.action_filter` holds it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::All => "*",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// A filter's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
}

impl Op {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "in" => Self::In,
            _ => return None,
        })
    }

    /// As `realtime.equality_op` names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Neq => "neq",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::In => "in",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Eq | Self::In => "=",
            Self::Neq => "<>",
            Self::Lt => "<",
            Self::Lte => "<=",
            Self::Gt => ">",
            Self::Gte => ">=",
        }
    }

    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Self::Eq | Self::In => ordering == Equal,
            Self::Neq => ordering != Equal,
            Self::Lt => ordering == Less,
            Self::Lte => ordering != Greater,
            Self::Gt => ordering == Greater,
            Self::Gte => ordering != Less,
        }
    }
}

/// `column=op.value` (`in.(a,b,c)` for a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) column: String,
    pub(crate) op: Op,
    /// One value, or the list of `in`.
    pub(crate) values: Vec<String>,
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (column, rest) = text.split_once('=')?;
        let (op, value) = rest.split_once('.')?;
        let op = Op::parse(op)?;
        if column.is_empty() {
            return None;
        }
        let values = if op == Op::In {
            let inner = value.strip_prefix('(')?.strip_suffix(')')?;
            inner
                .split(',')
                .map(|v| {
                    let v = v.trim();
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v)
                        .to_owned()
                })
                .collect()
        } else {
            vec![value.to_owned()]
        };
        Some(Self {
            column: column.to_owned(),
            op,
            values,
        })
    }

    /// The value as `realtime.user_defined_filter.value` holds it.
    pub(crate) fn stored_value(&self) -> String {
        if self.op == Op::In {
            format!("({})", self.values.join(","))
        } else {
            self.values[0].clone()
        }
    }

    /// A filter read back from `realtime.subscription.filters`.
    pub(crate) fn from_stored(column: &str, op: &str, value: &str) -> Option<Self> {
        Self::parse(&format!("{column}={op}.{value}"))
    }
}

/// One `postgres_changes` binding of a join.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Binding {
    /// The id the join reply gives it and changes carry: the same for the
    /// same parameters, as Supabase's are.
    pub(crate) id: u32,
    pub(crate) event: Event,
    pub(crate) schema: String,
    /// None (or `*`): every table of the schema in the publication.
    pub(crate) table: Option<String>,
    pub(crate) filter: Option<Filter>,
    /// What the client sent, echoed in the join reply with the id.
    pub(crate) echo: Value,
}

/// Why a binding cannot be subscribed, in Supabase's words.
pub(crate) fn unable(binding: &Value) -> String {
    format!(
        "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: {}, schema: {}, table: {}, filters: [{}]]",
        binding["event"].as_str().unwrap_or("*"),
        binding["schema"].as_str().unwrap_or("public"),
        binding["table"].as_str().unwrap_or("*"),
        binding["filter"].as_str().unwrap_or("")
    )
}

/// FNV-1a: a binding's id from its parameters.
fn binding_id(parts: &[&str]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    // Positive as a signed 32-bit number, for clients that read it so.
    hash & 0x7fff_ffff
}

impl Binding {
    /// The bindings of a join's `config.postgres_changes`; the error is
    /// Supabase's for the first bad one.
    pub(crate) fn parse_all(list: &Value) -> Result<Vec<Self>, String> {
        let Some(items) = list.as_array() else {
            return Ok(Vec::new());
        };
        items.iter().map(Self::parse).collect()
    }

    fn parse(item: &Value) -> Result<Self, String> {
        let refuse = || unable(item);
        let event = Event::parse(item["event"].as_str().unwrap_or("*")).ok_or_else(refuse)?;
        let schema = match &item["schema"] {
            Value::Null => "public".to_owned(),
            Value::String(s) if !s.is_empty() => s.clone(),
            _ => return Err(refuse()),
        };
        let table = match &item["table"] {
            Value::Null => None,
            Value::String(s) if s == "*" => None,
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => return Err(refuse()),
        };
        let filter = match &item["filter"] {
            Value::Null => None,
            Value::String(s) => Some(Filter::parse(s).ok_or_else(refuse)?),
            _ => return Err(refuse()),
        };
        let id = binding_id(&[
            event.as_str(),
            &schema,
            table.as_deref().unwrap_or("*"),
            item["filter"].as_str().unwrap_or(""),
        ]);
        let mut echo = item.clone();
        if let Value::Object(m) = &mut echo {
            m.insert("id".into(), json!(id));
        }
        Ok(Self {
            id,
            event,
            schema,
            table,
            filter,
            echo,
        })
    }
}

/// A row change's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Insert,
    Update,
    Delete,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    /// Whether a subscription's `action_filter` takes it.
    pub(crate) fn taken_by(self, action_filter: &str) -> bool {
        action_filter == "*" || action_filter == self.as_str()
    }
}

/// A column value of a decoded change.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Column {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value: Value,
}

/// One line of wal2json's format 2.
#[derive(Debug, Deserialize)]
struct Line {
    action: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    table: String,
    #[serde(default)]
    columns: Vec<Column>,
    #[serde(default)]
    identity: Vec<Column>,
}

/// A decoded change of a committed transaction.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) kind: Kind,
    pub(crate) schema: String,
    pub(crate) table: String,
    /// The commit's time, as Supabase writes it (`...T...Z`, milliseconds).
    pub(crate) commit_timestamp: String,
    /// The new row (INSERT, UPDATE).
    pub(crate) columns: Vec<Column>,
    /// The old row's replica identity (UPDATE, DELETE): its key, or all of
    /// it with `replica identity full`.
    pub(crate) identity: Vec<Column>,
}

impl Change {
    /// The value a filter reads: the new row's, or the old one's for a
    /// DELETE.
    pub(crate) fn value_of(&self, column: &str) -> Option<&Value> {
        let row = if self.kind == Kind::Delete {
            &self.identity
        } else {
            &self.columns
        };
        row.iter().find(|c| c.name == column).map(|c| &c.value)
    }
}

/// A decoded slot: changes of whole transactions, and where the last
/// transaction ended.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) changes: Vec<Change>,
    /// The end of the last complete transaction (what to advance to).
    pub(crate) committed: Option<String>,
}

/// Reads wal2json lines (`lsn`, `data`) into changes, keeping only whole
/// transactions.
pub(crate) fn decode(rows: &[(String, String)]) -> Decoded {
    let mut decoded = Decoded::default();
    let mut pending = Vec::new();
    for (lsn, data) in rows {
        let Ok(line) = serde_json::from_str::<Line>(data) else {
            tracing::warn!(%lsn, "an undecodable wal2json line was skipped");
            continue;
        };
        let kind = match line.action.as_str() {
            "B" => {
                pending.clear();
                continue;
            }
            "C" => {
                decoded.changes.append(&mut pending);
                decoded.committed = Some(lsn.clone());
                continue;
            }
            "I" => Kind::Insert,
            "U" => Kind::Update,
            "D" => Kind::Delete,
            // Truncates and logical messages are not Postgres changes.
            _ => continue,
        };
        pending.push(Change {
            kind,
            schema: line.schema,
            table: line.table,
            commit_timestamp: line
                .timestamp
                .as_deref()
                .and_then(commit_timestamp)
                .unwrap_or_default(),
            columns: line.columns,
            identity: line.identity,
        });
    }
    decoded
}

/// `2026-12-02 12:03:58.36775+00` (PostgreSQL's output, any offset) as
/// `2026-12-02T12:03:58.367Z`.
pub(crate) fn commit_timestamp(pg: &str) -> Option<String> {
    let (date, rest) = pg.split_once(' ')?;
    let split = rest.rfind(['+', '-'])?;
    let (time, offset) = rest.split_at(split);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let num = |s: &str| s.parse::<u32>().ok();
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (
        d.next()?.parse::<i64>().ok()?,
        num(d.next()?)?,
        num(d.next()?)?,
    );
    let mut c = clock.splitn(3, ':');
    let (hour, minute, second) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut o = offset[1..].split(':');
    let offset_secs = sign
        * (i64::from(num(o.next()?)?) * 3600
            + o.next().and_then(num).map_or(0, |m| i64::from(m) * 60));
    let unix = supa_core::time::CivilTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    }
    .to_unix()?
        - offset_secs;
    let millis: u64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    Some(supa_core::time::iso8601_millis(
        u64::try_from(unix).ok()? * 1000 + millis,
    ))
}

/// A column of a subscribed table, as the catalog has it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TableColumn {
    pub(crate) name: String,
    /// `int4`, `text`...: what clients convert values by.
    #[serde(rename = "type")]
    pub(crate) type_name: String,
    /// The type as a cast names it (`integer`, `public."Mood"`).
    pub(crate) cast: String,
    pub(crate) pk: bool,
    /// Whether the subscriber's role may select it.
    pub(crate) selectable: bool,
}

/// A value as text, the way PostgreSQL would read it back.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether a filter holds for a change, if that can be told without the
/// database: equality on integers, text, uuids and booleans, and order on
/// integers. `None`: ask the database (other types compare by their own
/// rules).
pub(crate) fn filter_holds(filter: &Filter, type_name: &str, value: &Value) -> Option<bool> {
    let Some(left) = text_of(value) else {
        // NULL equals nothing, as in SQL.
        return Some(false);
    };
    let ordered = !matches!(filter.op, Op::Eq | Op::Neq | Op::In);
    let compare = |right: &str| -> Option<std::cmp::Ordering> {
        match type_name {
            "int2" | "int4" | "int8" => {
                let (l, r) = (left.parse::<i64>().ok()?, right.trim().parse::<i64>().ok()?);
                Some(l.cmp(&r))
            }
            "text" | "varchar" if !ordered => Some(left.as_str().cmp(right)),
            "uuid" if !ordered => Some(left.to_ascii_lowercase().cmp(&right.to_ascii_lowercase())),
            "bool" if !ordered => {
                let b = |s: &str| match s.to_ascii_lowercase().as_str() {
                    "t" | "true" | "yes" | "on" | "1" => Some(true),
                    "f" | "false" | "no" | "off" | "0" => Some(false),
                    _ => None,
                };
                Some(b(&left)?.cmp(&b(right)?))
            }
            _ => None,
        }
    };
    if filter.op == Op::In {
        let mut any = false;
        for v in &filter.values {
            any |= compare(v)? == std::cmp::Ordering::Equal;
        }
        return Some(any);
    }
    Some(filter.op.holds(compare(&filter.values[0])?))
}

/// The database's check of a filter on `cast`-typed values: a query of
/// one boolean whose argument is `[value, right]` (`right` a list for `in`).
pub(crate) fn filter_check(filter: &Filter, cast: &str, value: &Value) -> (String, Value) {
    let left = text_of(value);
    if filter.op == Op::In {
        (
            format!(
                "SELECT ($1->>0)::{cast} = ANY (SELECT v::{cast} FROM jsonb_array_elements_text($1->1) v)"
            ),
            json!([left, filter.values]),
        )
    } else {
        (
            format!(
                "SELECT coalesce(($1->>0)::{cast} {} ($1->>1)::{cast}, false)",
                filter.op.sql()
            ),
            json!([left, filter.values[0]]),
        )
    }
}

/// The check that a subscriber may see a row under row level security:
/// it selects the row by its primary key, as the subscriber.
pub(crate) fn visibility_check(
    qualified: &str,
    columns: &[TableColumn],
    change: &Change,
) -> Option<(String, Value)> {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    for (i, c) in columns.iter().filter(|c| c.pk).enumerate() {
        conditions.push(format!(
            "{} = ($1->>{i})::{}",
            supa_core::quote_ident(&c.name),
            c.cast
        ));
        args.push(text_of(change.value_of(&c.name)?));
    }
    if conditions.is_empty() {
        return None;
    }
    Some((
        format!(
            "SELECT EXISTS (SELECT 1 FROM {qualified} WHERE {})",
            conditions.join(" AND ")
        ),
        Value::from(args),
    ))
}

/// A row's values as an object, only `columns` the subscriber may select;
/// JSON columns as JSON (wal2json gives their text).
fn record(row: &[Column], columns: &[TableColumn], keys_only: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for col in columns
        .iter()
        .filter(|c| c.selectable && (!keys_only || c.pk))
    {
        let Some(v) = row.iter().find(|c| c.name == col.name) else {
            continue;
        };
        let value = match (&v.value, col.type_name.as_str()) {
            (Value::String(s), "json" | "jsonb") => {
                serde_json::from_str(s).unwrap_or_else(|_| v.value.clone())
            }
            (other, _) => other.clone(),
        };
        out.insert(col.name.clone(), value);
    }
    out
}

/// Leaves out the values of an oversized record; true if it did.
fn trim(record: &mut Map<String, Value>) -> bool {
    let size: usize = record
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .sum();
    if size <= MAX_RECORD_BYTES {
        return false;
    }
    record.retain(|_, v| v.to_string().len() <= KEPT_VALUE_BYTES);
    true
}

/// The `data` of a `postgres_changes` message for a subscriber who may
/// select `columns` of the table (`rls`: whether row level security is on,
/// which keeps an old record to its key); `error` replaces the records.
pub(crate) fn payload_data(
    change: &Change,
    columns: &[TableColumn],
    rls: bool,
    error: Option<&str>,
) -> Value {
    let mut errors: Vec<&str> = error.into_iter().collect();
    let mut data = Map::new();
    data.insert("schema".into(), json!(change.schema));
    data.insert("table".into(), json!(change.table));
    data.insert("commit_timestamp".into(), json!(change.commit_timestamp));
    data.insert("type".into(), json!(change.kind.as_str()));
    data.insert(
        "columns".into(),
        Value::Array(
            columns
                .iter()
                .filter(|c| c.selectable)
                .map(|c| json!({"name": c.name, "type": c.type_name}))
                .collect(),
        ),
    );
    if error.is_none() {
        if change.kind != Kind::Delete {
            let mut new = record(&change.columns, columns, false);
            if trim(&mut new) {
                errors.push("Error 413: Payload Too Large");
            }
            data.insert("record".into(), Value::Object(new));
        }
        if change.kind != Kind::Insert {
            let mut old = record(&change.identity, columns, rls);
            if trim(&mut old) && !errors.contains(&"Error 413: Payload Too Large") {
                errors.push("Error 413: Payload Too Large");
            }
            data.insert("old_record".into(), Value::Object(old));
        }
    } else {
        if change.kind != Kind::Delete {
            data.insert("record".into(), json!({}));
        }
        if change.kind != Kind::Insert {
            data.insert("old_record".into(), json!({}));
        }
    }
    data.insert(
        "errors".into(),
        if errors.is_empty() {
            Value::Null
        } else {
            json!(errors)
        },
    );
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_as_supabase_writes_them() {
        let f = Filter::parse("id=eq.5").unwrap();
        assert_eq!(
            (f.column.as_str(), f.op, f.values.clone()),
            ("id", Op::Eq, vec!["5".into()])
        );
        let f = Filter::parse("name=in.(red, \"blue\",x)").unwrap();
        assert_eq!(f.op, Op::In);
        assert_eq!(f.values, ["red", "blue", "x"]);
        assert_eq!(f.stored_value(), "(red,blue,x)");
        let f = Filter::parse("note=eq.a.b=c").unwrap();
        assert_eq!(f.values, ["a.b=c"]);
        for bad in ["id", "id=5", "id=like.5", "=eq.5", "c=in.1,2"] {
            assert!(Filter::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bindings_default_like_the_clients_and_ids_follow_parameters() {
        let list = json!([
            {"event": "*", "schema": "public", "table": "todos"},
            {"event": "INSERT", "schema": "public", "table": "todos", "filter": "id=eq.1"},
            {"event": "*", "schema": "public", "table": "todos"},
        ]);
        let b = Binding::parse_all(&list).unwrap();
        assert_eq!(b[0].id, b[2].id);
        assert_ne!(b[0].id, b[1].id);
        assert_eq!(b[1].echo["id"], json!(b[1].id));
        assert_eq!(b[1].echo["filter"], "id=eq.1");
        let err = Binding::parse_all(&json!([{"event": "TRUNCATE", "table": "t"}])).unwrap_err();
        assert!(err.starts_with("Unable to subscribe to changes"), "{err}");
        assert!(Binding::parse_all(&json!([{"table": "t", "filter": "x"}])).is_err());
        assert!(Binding::parse_all(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn commit_times_become_utc_milliseconds() {
        assert_eq!(
            commit_timestamp("2026-12-02 12:03:58.36775+00").unwrap(),
            "2026-12-02T12:03:58.367Z"
        );
        assert_eq!(
            commit_timestamp("2026-12-02 14:03:58+02").unwrap(),
            "2026-12-02T12:03:58.000Z"
        );
        assert_eq!(
            commit_timestamp("2026-12-02 06:33:58.5-05:30").unwrap(),
            "2026-12-02T12:03:58.500Z"
        );
        assert!(commit_timestamp("yesterday").is_none());
    }

    #[test]
    fn whole_transactions_only_and_the_end_of_the_last() {
        let rows = [
            ("0/1", r#"{"action":"B"}"#),
            ("0/1", r#"{"action":"I","timestamp":"2026-01-01 00:00:00+00","schema":"public","table":"t","columns":[{"name":"id","type":"integer","value":1}]}"#),
            ("0/2", r#"{"action":"C"}"#),
            ("0/2", r#"{"action":"B"}"#),
            ("0/3", r#"{"action":"D","schema":"public","table":"t","identity":[{"name":"id","type":"integer","value":1}]}"#),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        let d = decode(&rows);
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.committed.as_deref(), Some("0/2"));
        assert_eq!(d.changes[0].commit_timestamp, "2026-01-01T00:00:00.000Z");
        assert_eq!(d.changes[0].value_of("id"), Some(&json!(1)));
    }

    #[test]
    fn filters_on_simple_types_are_decided_here_and_others_are_not() {
        let f = |s| Filter::parse(s).unwrap();
        assert_eq!(filter_holds(&f("id=gt.4"), "int8", &json!(5)), Some(true));
        assert_eq!(
            filter_holds(&f("id=in.(1,2,5)"), "int4", &json!(5)),
            Some(true)
        );
        assert_eq!(filter_holds(&f("id=neq.5"), "int4", &json!(5)), Some(false));
        assert_eq!(filter_holds(&f("n=eq.a"), "text", &json!("a")), Some(true));
        assert_eq!(
            filter_holds(&f("n=eq.a"), "text", &Value::Null),
            Some(false)
        );
        assert_eq!(filter_holds(&f("n=lt.b"), "text", &json!("a")), None);
        assert_eq!(
            filter_holds(&f("t=eq.2026-01-01"), "timestamptz", &json!("x")),
            None
        );
        let (sql, args) = filter_check(
            &f("t=gte.2026-01-01"),
            "timestamp with time zone",
            &json!("2026-02-01 00:00:00+00"),
        );
        assert!(sql.contains(">="), "{sql}");
        assert_eq!(args, json!(["2026-02-01 00:00:00+00", "2026-01-01"]));
    }

    #[test]
    fn payloads_carry_what_the_role_may_see() {
        let columns = vec![
            TableColumn {
                name: "id".into(),
                type_name: "int8".into(),
                cast: "bigint".into(),
                pk: true,
                selectable: true,
            },
            TableColumn {
                name: "doc".into(),
                type_name: "jsonb".into(),
                cast: "jsonb".into(),
                pk: false,
                selectable: true,
            },
            TableColumn {
                name: "secret".into(),
                type_name: "text".into(),
                cast: "text".into(),
                pk: false,
                selectable: false,
            },
        ];
        let col = |n: &str, v: Value| Column {
            name: n.into(),
            value: v,
        };
        let change = Change {
            kind: Kind::Update,
            schema: "public".into(),
            table: "t".into(),
            commit_timestamp: "x".into(),
            columns: vec![
                col("id", json!(1)),
                col("doc", json!("{\"a\": 1}")),
                col("secret", json!("s")),
            ],
            identity: vec![
                col("id", json!(1)),
                col("doc", json!("{}")),
                col("secret", json!("s")),
            ],
        };
        let data = payload_data(&change, &columns, true, None);
        assert_eq!(data["record"], json!({"id": 1, "doc": {"a": 1}}));
        assert_eq!(data["old_record"], json!({"id": 1}));
        assert_eq!(data["columns"].as_array().unwrap().len(), 2);
        assert_eq!(data["errors"], Value::Null);
        let data = payload_data(&change, &columns, false, None);
        assert_eq!(data["old_record"], json!({"id": 1, "doc": {}}));
        let data = payload_data(&change, &columns, false, Some("Error 401: Unauthorized"));
        assert_eq!(data["record"], json!({}));
        assert_eq!(data["errors"], json!(["Error 401: Unauthorized"]));
        let big = Change {
            kind: Kind::Insert,
            columns: vec![
                col("id", json!(1)),
                col("doc", json!("x".repeat(MAX_RECORD_BYTES))),
            ],
            ..change
        };
        let data = payload_data(&big, &columns, false, None);
        assert_eq!(data["record"], json!({"id": 1}));
        assert_eq!(data["errors"], json!(["Error 413: Payload Too Large"]));
    }
}
