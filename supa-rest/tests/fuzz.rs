//! Fuzz targets of the data plane's request grammar: the query string
//! (`select`, filters, `and`/`or` trees, `order`, `columns`, `limit`...),
//! and the `Prefer`, `Range` and `Accept` (plan) headers. Nothing may
//! panic, and every refusal is a 4xx PostgREST error, never a 500.

use proptest::prelude::*;
use supa_core::fuzz::{for_a_while, near};
use supa_rest::grammar;
use supa_rest::request::{PlanRequest, Prefer, QueryParams, decode_query, parse_range};

const QUERY_PIECES: &[&str] = &[
    "select=",
    "id,name",
    "*",
    "author:authors!inner(name)",
    "items(*)",
    "...",
    "->",
    "->>",
    "::text",
    "&",
    "=",
    "id=",
    "eq.",
    "neq.",
    "in.(",
    ")",
    "(",
    "is.null",
    "not.",
    "like.",
    "ilike.*a*",
    "fts(english).",
    "cs.{1,2}",
    "or=(",
    "and=(",
    "a.eq.1,b.gt.2",
    "order=",
    "name.desc.nullslast",
    "limit=",
    "offset=",
    "columns=",
    "on_conflict=",
    "%20",
    "%22",
    "\"",
    ",",
    ".",
    "{",
    "}",
    "[",
    "]",
];

#[test]
fn fuzz_url_grammar() {
    for_a_while(
        "query strings",
        near(QUERY_PIECES, "[a-z0-9_.,()*!:>=&%\"-]{0,12}"),
        |query| {
            let pairs = decode_query(&query);
            if let Err(e) = QueryParams::parse(&pairs, &[]) {
                prop_assert!((400..500).contains(&e.status()), "{query}: {e:?}");
            }
            Ok(())
        },
    );
    for_a_while(
        "select, order, logic and filter values",
        (
            near(QUERY_PIECES, "[a-z0-9_.,()*!:>-]{0,12}"),
            "[a-z_]{1,8}",
        ),
        |(value, key)| {
            for result in [
                grammar::parse_select(&value).err(),
                grammar::parse_order(&value).err(),
                grammar::parse_logic("or", &value).err(),
                grammar::parse_filter(&key, &value).err(),
                grammar::parse_columns("columns", &value).err(),
            ]
            .into_iter()
            .flatten()
            {
                prop_assert!((400..500).contains(&result.status()), "{value}: {result:?}");
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_prefer_range_and_accept_headers() {
    let prefer = near(
        &[
            "return=representation",
            "count=exact",
            "resolution=merge-duplicates",
            "missing=default",
            "handling=strict",
            "tx=rollback",
            "max-affected=",
            "timezone=",
            ",",
            " ",
            ";",
            "=",
        ],
        "[a-z0-9=,; /-]{0,10}",
    );
    let range = near(&["0-", "9", "-", "items ", "*", "/"], "[0-9 -]{0,10}");
    let accept = near(
        &[
            "application/vnd.pgrst.plan",
            "+json",
            "+text",
            "; for=",
            "\"application/json\"",
            "; options=",
            "analyze|verbose|buffers",
            ",",
            "text/csv",
        ],
        "[a-z/+;=|\" ,-]{0,10}",
    );
    for_a_while(
        "prefer, range and accept",
        (prefer, range, accept),
        |(prefer, range, accept)| {
            let parsed = Prefer::parse(std::iter::once(prefer.as_str()));
            let _ = format!("{parsed:?}");
            if let Some((from, to)) = parse_range(&range) {
                prop_assert!(from >= 0 && to.is_none_or(|to| to >= 0), "{range}");
            }
            if let Err(e) = PlanRequest::parse(&accept) {
                prop_assert!((400..500).contains(&e.status()), "{accept}: {e:?}");
            }
            Ok(())
        },
    );
}
