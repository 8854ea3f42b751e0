//! Catalog rows to JSON text, as postgres-meta's driver shows them:
//! 64-bit integers and oids as numbers, `real` as JavaScript prints it,
//! arrays as arrays, and `json`/`jsonb` values copied through as
//! PostgreSQL wrote them. Encoding here rather than with `json_agg` in the
//! database halves the time of the large lists (10,000 columns).

use std::collections::HashMap;
use std::error::Error as StdError;

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use crate::Error;

/// A `json` or `jsonb` value's text, borrowed from the row.
struct RawJson<'a>(&'a str);

impl<'a> FromSql<'a> for RawJson<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            // Binary jsonb is a version byte, then the text.
            raw.strip_prefix(&[1])
                .ok_or("unknown jsonb format version")?
        } else {
            raw
        };
        Ok(RawJson(std::str::from_utf8(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// A JavaScript number's text for a `real` (integral values without `.0`).
fn push_real(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        out.extend_from_slice((v as i64).to_string().as_bytes());
    } else if v.is_finite() {
        out.extend_from_slice(v.to_string().as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn push_array<'a, T: FromSql<'a>>(
    out: &mut Vec<u8>,
    row: &'a Row,
    i: usize,
    mut push: impl FnMut(&mut Vec<u8>, T),
) -> Result<(), Box<dyn StdError + Sync + Send>> {
    match row.try_get::<_, Option<Vec<Option<T>>>>(i)? {
        None => out.extend_from_slice(b"null"),
        Some(items) => {
            out.push(b'[');
            for (n, item) in items.into_iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                match item {
                    Some(v) => push(out, v),
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.push(b']');
        }
    }
    Ok(())
}

fn push_scalar<'a, T: FromSql<'a>>(
    out: &mut Vec<u8>,
    row: &'a Row,
    i: usize,
    push: impl FnOnce(&mut Vec<u8>, T),
) -> Result<(), Box<dyn StdError + Sync + Send>> {
    match row.try_get::<_, Option<T>>(i)? {
        Some(v) => push(out, v),
        None => out.extend_from_slice(b"null"),
    }
    Ok(())
}

fn number<T: ToString>(out: &mut Vec<u8>, v: T) {
    out.extend_from_slice(v.to_string().as_bytes());
}

/// Column `i` of `row` as JSON.
fn push_value(out: &mut Vec<u8>, row: &Row, i: usize) -> Result<(), Error> {
    let ty = row.columns()[i].type_().clone();
    let pushed = match ty {
        Type::BOOL => push_scalar(out, row, i, |o, v: bool| {
            o.extend_from_slice(if v { b"true" } else { b"false" })
        }),
        Type::INT2 => push_scalar(out, row, i, number::<i16>),
        Type::INT4 => push_scalar(out, row, i, number::<i32>),
        Type::INT8 => push_scalar(out, row, i, number::<i64>),
        Type::OID => push_scalar(out, row, i, number::<u32>),
        Type::FLOAT4 => push_scalar(out, row, i, push_real),
        Type::TEXT | Type::NAME | Type::VARCHAR | Type::BPCHAR => {
            push_scalar(out, row, i, |o, v: &str| push_str(o, v))
        }
        Type::JSON | Type::JSONB => push_scalar(out, row, i, |o, v: RawJson<'_>| {
            o.extend_from_slice(v.0.as_bytes())
        }),
        Type::TEXT_ARRAY | Type::NAME_ARRAY => push_array(out, row, i, |o, v: &str| push_str(o, v)),
        Type::INT2_ARRAY => push_array(out, row, i, number::<i16>),
        Type::INT4_ARRAY => push_array(out, row, i, number::<i32>),
        other => {
            return Err(Error::Internal(format!(
                "column {} has type {other}, which the encoder does not map",
                row.columns()[i].name()
            )));
        }
    };
    pushed.map_err(|e| Error::Internal(format!("decoding {}: {e}", row.columns()[i].name())))
}

/// Each column's name as a JSON key (`"name":`), escaped once per result
/// rather than once per row.
fn keys(rows: &[Row]) -> Vec<Vec<u8>> {
    rows.first().map_or_else(Vec::new, |row| {
        row.columns()
            .iter()
            .map(|c| {
                let mut key = Vec::with_capacity(c.name().len() + 3);
                push_str(&mut key, c.name());
                key.push(b':');
                key
            })
            .collect()
    })
}

/// One row as a JSON object without column `skip`, then each of `extra`
/// (`,"columns":[...]`) before its closing brace; `keys` from [`keys`].
fn push_object(
    out: &mut Vec<u8>,
    row: &Row,
    keys: &[Vec<u8>],
    skip: Option<usize>,
    extra: &[(&str, &[u8])],
) -> Result<(), Error> {
    out.push(b'{');
    let mut first = true;
    for (i, key) in keys.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(key);
        push_value(out, row, i)?;
    }
    for (name, value) in extra {
        out.push(b',');
        push_str(out, name);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    Ok(())
}

/// The rows as a JSON array.
pub(crate) fn rows(rows: &[Row]) -> Result<String, Error> {
    with_children(rows, &[])
}

/// The rows as a JSON array, each object given, in order, every field of
/// `children` found by its `id` (an empty array for none).
pub(crate) fn with_children(
    rows: &[Row],
    children: &[(&str, &HashMap<i64, Vec<u8>>)],
) -> Result<String, Error> {
    let nested: usize = children
        .iter()
        .flat_map(|(_, map)| map.values().map(Vec::len))
        .sum();
    let mut out = Vec::with_capacity(256 * rows.len() + nested + 2);
    out.push(b'[');
    let keys = keys(rows);
    let mut extra = Vec::with_capacity(children.len());
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        extra.clear();
        if !children.is_empty() {
            let id: i64 = row
                .try_get("id")
                .map_err(|e| Error::Internal(format!("a relation without an id: {e}")))?;
            for (field, map) in children {
                extra.push((*field, map.get(&id).map_or(&b"[]"[..], Vec::as_slice)));
            }
        }
        push_object(&mut out, row, &keys, None, &extra)?;
    }
    out.push(b']');
    String::from_utf8(out).map_err(|e| Error::Internal(e.to_string()))
}

/// Rows grouped by the integer column `key` into JSON arrays; `keep`
/// leaves the key in the objects.
pub(crate) fn group_by(
    rows: &[Row],
    key: &str,
    keep: bool,
) -> Result<HashMap<i64, Vec<u8>>, Error> {
    let mut groups: HashMap<i64, Vec<u8>> = HashMap::new();
    let Some(first) = rows.first() else {
        return Ok(groups);
    };
    let index = first
        .columns()
        .iter()
        .position(|c| c.name() == key)
        .ok_or_else(|| Error::Internal(format!("rows without {key}")))?;
    let names = keys(rows);
    for row in rows {
        let id: i64 = row
            .try_get(index)
            .map_err(|e| Error::Internal(format!("{key}: {e}")))?;
        let group = groups.entry(id).or_insert_with(|| vec![b'[']);
        if group.len() > 1 {
            group.push(b',');
        }
        push_object(group, row, &names, (!keep).then_some(index), &[])?;
    }
    for group in groups.values_mut() {
        group.push(b']');
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_print_as_javascript_does() {
        let text = |v: f32| {
            let mut out = Vec::new();
            push_real(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(1000.0), "1000");
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(2.5), "2.5");
        assert_eq!(text(f32::NAN), "null");
    }
}
