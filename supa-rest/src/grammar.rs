//! PostgREST's URL grammar: `select`, filters, logic trees and `order`
//! parsed into an AST. Nothing here touches SQL; [`crate::query`] turns the
//! AST into statements with quoted identifiers and bound values.
//!
//! Errors carry PostgREST's wording: `"failed to parse <what> (<input>)"
//! (line 1, column N)` with a parser-style `unexpected .. expecting ..`.

use crate::Error;

/// One step of a JSON path: `->key`, `->>key`, `->0`, `->>-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonStep {
    /// `->>` (text) rather than `->` (json).
    pub as_text: bool,
    /// The key or index.
    pub key: JsonKey,
}

/// A JSON object key or array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonKey {
    /// An object key.
    Key(String),
    /// An array index (negative counts from the end).
    Index(i64),
}

/// A column, possibly followed by a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// JSON path into it.
    pub path: Vec<JsonStep>,
}

impl Field {
    /// The name PostgREST gives the output column: the last JSON key, or
    /// the column name.
    pub fn output_name(&self) -> String {
        match self.path.last() {
            Some(JsonStep {
                key: JsonKey::Key(k),
                ..
            }) => k.clone(),
            Some(JsonStep {
                key: JsonKey::Index(_),
                ..
            }) => self
                .path
                .iter()
                .rev()
                .find_map(|s| match &s.key {
                    JsonKey::Key(k) => Some(k.clone()),
                    JsonKey::Index(_) => None,
                })
                .unwrap_or_else(|| self.name.clone()),
            None => self.name.clone(),
        }
    }
}

/// An aggregate function of `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `count()`.
    Count,
    /// `sum()`.
    Sum,
    /// `avg()`.
    Avg,
    /// `max()`.
    Max,
    /// `min()`.
    Min,
}

impl Aggregate {
    /// SQL function name.
    pub fn sql(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Avg => "avg",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
        }
    }
}

/// One item of `select`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`.
    Star,
    /// A column or JSON path, maybe renamed, cast or aggregated.
    Field {
        /// The column.
        field: Field,
        /// `alias:`.
        alias: Option<String>,
        /// `::type`.
        cast: Option<String>,
        /// `.sum()` and friends.
        aggregate: Option<Aggregate>,
        /// `::type` after the aggregate.
        aggregate_cast: Option<String>,
    },
    /// `count()` alone.
    CountAll {
        /// `alias:`.
        alias: Option<String>,
        /// `::type` after it.
        cast: Option<String>,
    },
    /// A related resource: `alias:rel!hint!inner(...)`, `...rel(...)`.
    Embed {
        /// Relation (table, view or FK/column name).
        name: String,
        /// `alias:`.
        alias: Option<String>,
        /// `!hint` (FK name or column).
        hint: Option<String>,
        /// `!inner` / `!left`.
        inner: Option<bool>,
        /// `...` spread.
        spread: bool,
        /// Its own select list.
        items: Vec<SelectItem>,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`.
    Eq,
    /// `<>`.
    Neq,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// `LIKE` (`*` stands for `%`).
    Like,
    /// `ILIKE`.
    Ilike,
    /// `~`.
    Match,
    /// `~*`.
    Imatch,
    /// `@>`.
    Cs,
    /// `<@`.
    Cd,
    /// `&&`.
    Ov,
    /// `<<`.
    Sl,
    /// `>>`.
    Sr,
    /// `&<`.
    Nxr,
    /// `&>`.
    Nxl,
    /// `-|-`.
    Adj,
    /// `IS DISTINCT FROM`.
    IsDistinct,
}

impl CmpOp {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "eq" => CmpOp::Eq,
            "neq" => CmpOp::Neq,
            "gt" => CmpOp::Gt,
            "gte" => CmpOp::Gte,
            "lt" => CmpOp::Lt,
            "lte" => CmpOp::Lte,
            "like" => CmpOp::Like,
            "ilike" => CmpOp::Ilike,
            "match" => CmpOp::Match,
            "imatch" => CmpOp::Imatch,
            "cs" => CmpOp::Cs,
            "cd" => CmpOp::Cd,
            "ov" => CmpOp::Ov,
            "sl" => CmpOp::Sl,
            "sr" => CmpOp::Sr,
            "nxr" => CmpOp::Nxr,
            "nxl" => CmpOp::Nxl,
            "adj" => CmpOp::Adj,
            "isdistinct" => CmpOp::IsDistinct,
            _ => return None,
        })
    }

    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "<>",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Like => "LIKE",
            CmpOp::Ilike => "ILIKE",
            CmpOp::Match => "~",
            CmpOp::Imatch => "~*",
            CmpOp::Cs => "@>",
            CmpOp::Cd => "<@",
            CmpOp::Ov => "&&",
            CmpOp::Sl => "<<",
            CmpOp::Sr => ">>",
            CmpOp::Nxr => "&<",
            CmpOp::Nxl => "&>",
            CmpOp::Adj => "-|-",
            CmpOp::IsDistinct => "IS DISTINCT FROM",
        }
    }

    /// Whether `(any)`/`(all)` may follow it.
    fn quantifiable(self) -> bool {
        matches!(
            self,
            CmpOp::Eq
                | CmpOp::Gt
                | CmpOp::Gte
                | CmpOp::Lt
                | CmpOp::Lte
                | CmpOp::Like
                | CmpOp::Ilike
                | CmpOp::Match
                | CmpOp::Imatch
        )
    }
}

/// `(any)` / `(all)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `= ANY(...)`.
    Any,
    /// `= ALL(...)`.
    All,
}

/// The right side of `is`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    /// `NULL`.
    Null,
    /// `NOT NULL`.
    NotNull,
    /// `TRUE`.
    True,
    /// `FALSE`.
    False,
    /// `UNKNOWN`.
    Unknown,
}

/// A full-text search operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsOp {
    /// `to_tsquery`.
    Fts,
    /// `plainto_tsquery`.
    Plain,
    /// `phraseto_tsquery`.
    Phrase,
    /// `websearch_to_tsquery`.
    Websearch,
}

impl FtsOp {
    /// The tsquery function.
    pub fn function(self) -> &'static str {
        match self {
            FtsOp::Fts => "to_tsquery",
            FtsOp::Plain => "plainto_tsquery",
            FtsOp::Phrase => "phraseto_tsquery",
            FtsOp::Websearch => "websearch_to_tsquery",
        }
    }
}

/// An operation with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// A binary comparison, maybe quantified over a `{a,b}` list.
    Cmp(CmpOp, Option<Quantifier>, String),
    /// `in.(a,b)`.
    In(Vec<String>),
    /// `is.null` and friends.
    Is(IsValue),
    /// `fts(lang).terms`.
    Fts(FtsOp, Option<String>, String),
}

/// A horizontal filter: `field=not.op.value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The column or JSON path.
    pub field: Field,
    /// `not.`.
    pub negated: bool,
    /// What it does.
    pub op: Operation,
}

/// `and=(...)`/`or=(...)` trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicTree {
    /// A combination.
    Expr {
        /// `not.`.
        negated: bool,
        /// `or` rather than `and`.
        or: bool,
        /// Its children.
        children: Vec<LogicTree>,
    },
    /// A leaf.
    Filter(Filter),
}

/// One term of `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    /// `relation(column)` ordering by an embedded to-one resource.
    pub relation: Option<String>,
    /// The column or JSON path.
    pub field: Field,
    /// `desc` (else ascending).
    pub desc: bool,
    /// `nullsfirst` (`Some(true)`) or `nullslast`.
    pub nulls_first: Option<bool>,
}

/// A character cursor reporting 1-based columns as PostgREST does.
struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    what: &'a str,
    input: String,
}

type PResult<T> = Result<T, Error>;

impl<'a> Cursor<'a> {
    fn new(what: &'a str, input: &str) -> Self {
        Self {
            chars: input.chars().collect(),
            pos: 0,
            what,
            input: input.to_owned(),
        }
    }

    /// A cursor over `text` whose errors show `shown` (logic trees are
    /// parsed as `or(...)` but shown as their value).
    fn showing(what: &'a str, text: &str, shown: &str) -> Self {
        let mut c = Self::new(what, text);
        c.input = shown.to_owned();
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.starts_with(s) {
            self.pos += s.chars().count();
            true
        } else {
            false
        }
    }

    fn unexpected_text(&self, quote: char) -> String {
        match self.peek() {
            Some(c) => format!("unexpected {quote}{c}{quote}"),
            None => "unexpected end of input".to_owned(),
        }
    }

    fn fail(&self, expecting: &str) -> Error {
        self.fail_quoted('"', expecting)
    }

    fn fail_quoted(&self, quote: char, expecting: &str) -> Error {
        let details = if expecting.is_empty() {
            self.unexpected_text(quote)
        } else {
            format!("{} expecting {expecting}", self.unexpected_text(quote))
        };
        Error::parse(
            format!(
                "\"failed to parse {} ({})\" (line 1, column {})",
                self.what,
                self.input,
                self.pos + 1
            ),
            details,
        )
    }

    fn expect(&mut self, s: &str, expecting: &str) -> PResult<()> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.fail(expecting))
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// A name: `"quoted"` or identifier characters, with single dashes between
/// parts (`field-with_sep`) but never the `->` of a JSON path.
fn field_name(c: &mut Cursor<'_>) -> PResult<String> {
    if c.peek() == Some('"') {
        return quoted(c);
    }
    let mut name = String::new();
    loop {
        let start = c.pos;
        while let Some(ch) = c.peek().filter(|ch| is_ident_char(*ch)) {
            name.push(ch);
            c.pos += 1;
        }
        if c.pos == start {
            if name.is_empty() {
                return Err(c.fail("field name (* or [a..z0..9_$])"));
            }
            break;
        }
        if c.peek() == Some('-') && c.peek_at(1).is_some_and(is_ident_char) {
            name.push('-');
            c.pos += 1;
        } else {
            break;
        }
    }
    Ok(name)
}

/// `"..."` with `\"` and `\\` escapes.
fn quoted(c: &mut Cursor<'_>) -> PResult<String> {
    c.expect("\"", "\"\\\"\"")?;
    let mut out = String::new();
    loop {
        match c.peek() {
            None => return Err(c.fail("\"\\\"\"")),
            Some('\\') => {
                c.pos += 1;
                match c.peek() {
                    Some(ch) => {
                        out.push(ch);
                        c.pos += 1;
                    }
                    None => return Err(c.fail("escaped character")),
                }
            }
            Some('"') => {
                c.pos += 1;
                return Ok(out);
            }
            Some(ch) => {
                out.push(ch);
                c.pos += 1;
            }
        }
    }
}

fn json_path(c: &mut Cursor<'_>) -> PResult<Vec<JsonStep>> {
    let mut path = Vec::new();
    loop {
        let as_text = if c.starts_with("->>") {
            c.pos += 3;
            true
        } else if c.starts_with("->") {
            c.pos += 2;
            false
        } else {
            return Ok(path);
        };
        let key = match c.peek() {
            Some(ch) if ch == '-' || ch.is_ascii_digit() => {
                let negative = c.eat("-");
                let start = c.pos;
                while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                    c.pos += 1;
                }
                if c.pos == start {
                    return Err(c.fail("digit"));
                }
                let digits: String = c.chars[start..c.pos].iter().collect();
                let n: i64 = digits.parse().map_err(|_| c.fail("digit"))?;
                // An index followed by letters is a key like `0a`: PostgREST
                // reads keys starting with digits as keys only when quoted.
                JsonKey::Index(if negative { -n } else { n })
            }
            _ => JsonKey::Key(field_name(c)?),
        };
        path.push(JsonStep { as_text, key });
    }
}

fn field(c: &mut Cursor<'_>) -> PResult<Field> {
    let name = field_name(c)?;
    let path = json_path(c)?;
    Ok(Field { name, path })
}

/// A type name after `::`: letters, digits, `_`, spaces inside, `[]`.
fn cast_type(c: &mut Cursor<'_>) -> PResult<String> {
    let start = c.pos;
    while let Some(ch) = c.peek() {
        if is_ident_char(ch) || ch == '[' || ch == ']' || ch == ' ' || ch == '.' {
            c.pos += 1;
        } else {
            break;
        }
    }
    if c.pos == start {
        return Err(c.fail("letter or digit"));
    }
    Ok(c.chars[start..c.pos]
        .iter()
        .collect::<String>()
        .trim()
        .to_owned())
}

fn aggregate(name: &str) -> Option<Aggregate> {
    Some(match name {
        "count" => Aggregate::Count,
        "sum" => Aggregate::Sum,
        "avg" => Aggregate::Avg,
        "max" => Aggregate::Max,
        "min" => Aggregate::Min,
        _ => return None,
    })
}

/// Parses `select`.
pub fn parse_select(input: &str) -> PResult<Vec<SelectItem>> {
    let mut c = Cursor::new("select parameter", input);
    let items = select_list(&mut c, false)?;
    if !c.at_end() {
        return Err(c.fail("\",\" or end of input"));
    }
    Ok(items)
}

fn skip_spaces(c: &mut Cursor<'_>) {
    while c.peek() == Some(' ') {
        c.pos += 1;
    }
}

fn select_list(c: &mut Cursor<'_>, nested: bool) -> PResult<Vec<SelectItem>> {
    let mut items = Vec::new();
    if nested && c.peek() == Some(')') {
        return Ok(items);
    }
    loop {
        skip_spaces(c);
        items.push(select_item(c)?);
        skip_spaces(c);
        if !c.eat(",") {
            return Ok(items);
        }
    }
}

fn select_item(c: &mut Cursor<'_>) -> PResult<SelectItem> {
    if c.eat("*") {
        return Ok(SelectItem::Star);
    }
    let spread = c.eat("...");
    // `alias:` comes first; a name followed by `:` but not `::` is an alias.
    let mut alias = None;
    let save = c.pos;
    if !spread && let Ok(name) = field_name(c) {
        if c.peek() == Some(':') && c.peek_at(1) != Some(':') {
            c.pos += 1;
            alias = Some(name);
        } else {
            c.pos = save;
        }
    } else {
        c.pos = save;
    }
    if c.starts_with("count()") {
        c.pos += "count()".len();
        let cast = if c.eat("::") {
            Some(cast_type(c)?)
        } else {
            None
        };
        return Ok(SelectItem::CountAll { alias, cast });
    }
    let f = field(c)?;
    // Embedding: `name!hint!inner(...)` or `name(...)`.
    if f.path.is_empty() && matches!(c.peek(), Some('!') | Some('(')) {
        let mut hint = None;
        let mut inner = None;
        while c.eat("!") {
            let word = field_name(c)?;
            match word.as_str() {
                "inner" => inner = Some(true),
                "left" => inner = Some(false),
                _ => hint = Some(word),
            }
        }
        c.expect("(", "\"(\"")?;
        let items = select_list(c, true)?;
        skip_spaces(c);
        c.expect(")", "\",\" or \")\"")?;
        return Ok(SelectItem::Embed {
            name: f.name,
            alias,
            hint,
            inner,
            spread,
            items,
        });
    }
    if spread {
        return Err(c.fail("\"(\""));
    }
    let cast = if c.eat("::") {
        Some(cast_type(c)?)
    } else {
        None
    };
    let mut agg = None;
    let mut aggregate_cast = None;
    if c.peek() == Some('.') {
        let save = c.pos;
        c.pos += 1;
        let name = field_name(c).unwrap_or_default();
        match aggregate(&name) {
            Some(a) if c.eat("()") => {
                agg = Some(a);
                if c.eat("::") {
                    aggregate_cast = Some(cast_type(c)?);
                }
            }
            _ => {
                c.pos = save;
            }
        }
    }
    Ok(SelectItem::Field {
        field: f,
        alias,
        cast,
        aggregate: agg,
        aggregate_cast,
    })
}

/// Parses a filter's value side `not.op.value` for `field`.
pub fn parse_filter(key: &str, value: &str) -> PResult<Filter> {
    let mut kc = Cursor::new("filter", key);
    let f = field(&mut kc)?;
    if !kc.at_end() {
        return Err(kc.fail("end of input"));
    }
    let mut c = Cursor::new("filter", value);
    let (negated, op) = operation(&mut c, false)?;
    Ok(Filter {
        field: f,
        negated,
        op,
    })
}

/// The key of a filter that applies to an embedded resource
/// (`clients.id=eq.1`): its relation path and the column part.
pub fn split_embedded_key(key: &str) -> (Vec<&str>, &str) {
    // A dot in a JSON path key is part of the key; only look before `->`.
    let head = key.split("->").next().unwrap_or(key);
    match head.rfind('.') {
        Some(i) if !head.starts_with('"') => {
            let rels: Vec<&str> = key[..i].split('.').collect();
            (rels, &key[i + 1..])
        }
        _ => (Vec::new(), key),
    }
}

const OPERATORS_EXPECTED: &str = "operator (eq, gt, ...)";

/// `not.op.value`, `op(any).{...}`, `in.(...)`, `is.null`, `fts(lang).x`.
/// Inside logic trees values end at `,` or `)` unless quoted.
fn operation(c: &mut Cursor<'_>, in_tree: bool) -> PResult<(bool, Operation)> {
    let negated = c.eat("not.");
    let start = c.pos;
    while c.peek().is_some_and(|ch| ch.is_ascii_alphabetic()) {
        c.pos += 1;
    }
    let name: String = c.chars[start..c.pos].iter().collect();
    let op = match name.as_str() {
        "in" => {
            c.expect(".", "\".\"")?;
            Operation::In(in_list(c)?)
        }
        "is" => {
            c.expect(".", "\".\"")?;
            let vstart = c.pos;
            while c
                .peek()
                .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            {
                c.pos += 1;
            }
            let word: String = c.chars[vstart..c.pos]
                .iter()
                .collect::<String>()
                .to_ascii_lowercase();
            let v = match word.as_str() {
                "null" => IsValue::Null,
                "not_null" => IsValue::NotNull,
                "true" => IsValue::True,
                "false" => IsValue::False,
                "unknown" => IsValue::Unknown,
                _ => {
                    c.pos = vstart;
                    return Err(c.fail("null or trilean value (unknown, true, false)"));
                }
            };
            Operation::Is(v)
        }
        "fts" | "plfts" | "phfts" | "wfts" => {
            let fop = match name.as_str() {
                "fts" => FtsOp::Fts,
                "plfts" => FtsOp::Plain,
                "phfts" => FtsOp::Phrase,
                _ => FtsOp::Websearch,
            };
            let lang = if c.eat("(") {
                let lstart = c.pos;
                while c.peek().is_some_and(|ch| ch != ')') {
                    c.pos += 1;
                }
                let lang: String = c.chars[lstart..c.pos].iter().collect();
                c.expect(")", "\")\"")?;
                Some(lang)
            } else {
                None
            };
            c.expect(".", "\".\"")?;
            Operation::Fts(fop, lang, plain_value(c, in_tree)?)
        }
        other => {
            let Some(op) = CmpOp::from_name(other) else {
                c.pos = start;
                return Err(c.fail(OPERATORS_EXPECTED));
            };
            let quant = if op.quantifiable() && c.eat("(") {
                let q = if c.eat("any") {
                    Quantifier::Any
                } else if c.eat("all") {
                    Quantifier::All
                } else {
                    return Err(c.fail("\"any\" or \"all\""));
                };
                c.expect(")", "\")\"")?;
                Some(q)
            } else {
                None
            };
            c.expect(".", "\".\"")?;
            Operation::Cmp(op, quant, plain_value(c, in_tree)?)
        }
    };
    Ok((negated, op))
}

/// A value: the rest of the input, or inside a logic tree up to `,`/`)`
/// (a `"quoted"` value may contain them; `{...}` lists and `[..]`/`(..]`
/// ranges are kept whole).
fn plain_value(c: &mut Cursor<'_>, in_tree: bool) -> PResult<String> {
    if !in_tree {
        let v: String = c.chars[c.pos..].iter().collect();
        c.pos = c.chars.len();
        return Ok(v);
    }
    if c.peek() == Some('"') {
        return quoted(c);
    }
    let mut out = String::new();
    let mut depth = 0i32;
    while let Some(ch) = c.peek() {
        match ch {
            '{' | '[' | '(' => depth += 1,
            // Ranges mix brackets: `(3,10]`, `[1,2)`.
            '}' | ']' | ')' if depth > 0 => depth -= 1,
            ',' | ')' if depth == 0 => break,
            _ => {}
        }
        out.push(ch);
        c.pos += 1;
    }
    Ok(out)
}

/// `(a,b,"c,d")`.
fn in_list(c: &mut Cursor<'_>) -> PResult<Vec<String>> {
    c.expect("(", "\"(\"")?;
    let mut items = Vec::new();
    if c.eat(")") {
        return Ok(items);
    }
    loop {
        skip_spaces(c);
        let item = if c.peek() == Some('"') {
            quoted(c)?
        } else {
            let start = c.pos;
            while c.peek().is_some_and(|ch| ch != ',' && ch != ')') {
                c.pos += 1;
            }
            c.chars[start..c.pos].iter().collect()
        };
        items.push(item);
        if c.eat(",") {
            continue;
        }
        c.expect(")", "\",\" or \")\"")?;
        return Ok(items);
    }
}

/// Parses `or=(...)`/`and=(...)`/`not.or=(...)` given the key and value.
pub fn parse_logic(key: &str, value: &str) -> PResult<LogicTree> {
    let text = format!("{key}{value}");
    let mut c = Cursor::showing("logic tree", &text, value);
    let tree = logic_expr(&mut c)?;
    if !c.at_end() {
        return Err(c.fail("end of input"));
    }
    Ok(tree)
}

fn logic_expr(c: &mut Cursor<'_>) -> PResult<LogicTree> {
    skip_spaces(c);
    let negated = c.eat("not.");
    let or = if c.eat("or") {
        true
    } else if c.eat("and") {
        false
    } else {
        return Err(c.fail("logic operator (and, or)"));
    };
    skip_spaces(c);
    c.expect("(", "\"(\"")?;
    let mut children = Vec::new();
    loop {
        children.push(logic_item(c)?);
        skip_spaces(c);
        if c.eat(",") {
            continue;
        }
        c.expect(")", "\",\" or \")\"")?;
        skip_spaces(c);
        break;
    }
    Ok(LogicTree::Expr {
        negated,
        or,
        children,
    })
}

fn logic_item(c: &mut Cursor<'_>) -> PResult<LogicTree> {
    skip_spaces(c);
    // `and(`, `or(`, `not.and(`, `not.or(` start a subtree (spaces allowed
    // before the parenthesis).
    for prefix in ["and", "or", "not.and", "not.or"] {
        if c.starts_with(prefix) {
            let mut look = prefix.chars().count();
            while c.peek_at(look) == Some(' ') {
                look += 1;
            }
            if c.peek_at(look) == Some('(') {
                return logic_expr(c);
            }
        }
    }
    if c.peek().is_none_or(|ch| !(is_ident_char(ch) || ch == '"')) {
        return Err(c.fail(
            "field name (* or [a..z0..9_$]), negation operator (not) or logic operator (and, or)",
        ));
    }
    let f = field(c)?;
    c.expect(".", "\".\"")?;
    let (negated, op) = operation(c, true)?;
    Ok(LogicTree::Filter(Filter {
        field: f,
        negated,
        op,
    }))
}

/// Parses `order`.
pub fn parse_order(input: &str) -> PResult<Vec<OrderTerm>> {
    let mut c = Cursor::new("order", input);
    let mut terms = Vec::new();
    loop {
        let first = field(&mut c)?;
        let (relation, f) = if first.path.is_empty() && c.eat("(") {
            let inner = field(&mut c)?;
            c.expect(")", "\")\"")?;
            (Some(first.name), inner)
        } else {
            (None, first)
        };
        let mut term = OrderTerm {
            relation,
            field: f,
            desc: false,
            nulls_first: None,
        };
        if c.eat(".") {
            if c.eat("asc") {
            } else if c.eat("desc") {
                term.desc = true;
            } else if c.eat("nullsfirst") {
                term.nulls_first = Some(true);
            } else if c.eat("nullslast") {
                term.nulls_first = Some(false);
            } else {
                return Err(
                    c.fail_quoted('\'', "\"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"")
                );
            }
            if term.nulls_first.is_none() && c.eat(".") {
                if c.eat("nullsfirst") {
                    term.nulls_first = Some(true);
                } else if c.eat("nullslast") {
                    term.nulls_first = Some(false);
                } else {
                    return Err(c.fail_quoted('\'', "\"nullsfirst\" or \"nullslast\""));
                }
            }
        }
        terms.push(term);
        if c.eat(",") {
            continue;
        }
        if !c.at_end() {
            return Err(c.fail_quoted('\'', "\",\" or end of input"));
        }
        return Ok(terms);
    }
}

/// Parses `columns=` or `on_conflict=`: comma-separated names.
pub fn parse_columns(what: &str, input: &str) -> PResult<Vec<String>> {
    let mut c = Cursor::new(what, input);
    let mut cols = Vec::new();
    loop {
        skip_spaces(&mut c);
        cols.push(field_name(&mut c)?);
        skip_spaces(&mut c);
        if c.eat(",") {
            continue;
        }
        if !c.at_end() {
            return Err(c.fail("\",\" or end of input"));
        }
        return Ok(cols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> Field {
        Field {
            name: name.into(),
            path: vec![],
        }
    }

    #[test]
    fn select_lists() {
        let items = parse_select("id,myId:id::text,settings->foo->>bar,field-with_sep").unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[1],
            SelectItem::Field {
                field: f("id"),
                alias: Some("myId".into()),
                cast: Some("text".into()),
                aggregate: None,
                aggregate_cast: None
            }
        );
        let SelectItem::Field { field, .. } = &items[2] else {
            panic!()
        };
        assert_eq!(field.path.len(), 2);
        assert!(field.path[1].as_text);
        assert_eq!(field.output_name(), "bar");
        let SelectItem::Field { field, .. } = &items[3] else {
            panic!()
        };
        assert_eq!(field.name, "field-with_sep");

        let items = parse_select("id,clients!inner(id),...tasks(n:name),x:y!fk(*)").unwrap();
        assert!(matches!(
            &items[1],
            SelectItem::Embed {
                inner: Some(true),
                ..
            }
        ));
        assert!(matches!(&items[2], SelectItem::Embed { spread: true, .. }));
        assert!(
            matches!(&items[3], SelectItem::Embed { hint: Some(h), alias: Some(a), .. } if h == "fk" && a == "x")
        );
        let items = parse_select("count(),invoice_total.sum()::int").unwrap();
        assert!(matches!(items[0], SelectItem::CountAll { .. }));
        assert!(matches!(
            &items[1],
            SelectItem::Field {
                aggregate: Some(Aggregate::Sum),
                aggregate_cast: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn json_path_errors_name_the_column() {
        let e = parse_select("data->>--34").unwrap_err();
        let body = e.body();
        assert_eq!(
            body.message,
            "\"failed to parse select parameter (data->>--34)\" (line 1, column 9)"
        );
        assert_eq!(
            body.details.as_ref().and_then(|d| d.as_str()),
            Some("unexpected \"-\" expecting digit")
        );
    }

    #[test]
    fn filters() {
        let x = parse_filter("id", "not.in.(1,\"a,b\",3)").unwrap();
        assert!(x.negated);
        assert_eq!(
            x.op,
            Operation::In(vec!["1".into(), "a,b".into(), "3".into()])
        );
        let x = parse_filter("body", "like(any).{%plan%,%brain%}").unwrap();
        assert_eq!(
            x.op,
            Operation::Cmp(
                CmpOp::Like,
                Some(Quantifier::Any),
                "{%plan%,%brain%}".into()
            )
        );
        let x = parse_filter("tsv", "fts(french).amusant").unwrap();
        assert_eq!(
            x.op,
            Operation::Fts(FtsOp::Fts, Some("french".into()), "amusant".into())
        );
        assert!(parse_filter("a", "is.maybe").is_err());
        assert!(parse_filter("a", "wat.1").is_err());
    }

    #[test]
    fn logic_trees() {
        let t = parse_logic(
            "and",
            "(arr.not.cs.{1,2,3},and(id.not.eq.2,name.not.like.*3))",
        )
        .unwrap();
        let LogicTree::Expr { or, children, .. } = t else {
            panic!()
        };
        assert!(!or);
        assert_eq!(children.len(), 2);
        let e = parse_logic("or", "()").unwrap_err().body();
        assert_eq!(
            e.message,
            "\"failed to parse logic tree (())\" (line 1, column 4)"
        );
        assert_eq!(
            e.details.as_ref().and_then(|d| d.as_str()),
            Some(
                "unexpected \")\" expecting field name (* or [a..z0..9_$]), negation operator (not) or logic operator (and, or)"
            )
        );
        let t = parse_logic("or", "(id.in.(1,2),name.eq.\"a,b\",range.adj.(3,10])").unwrap();
        let LogicTree::Expr { children, .. } = t else {
            panic!()
        };
        assert_eq!(children.len(), 3);
    }

    #[test]
    fn orders() {
        let o = parse_order("id.desc.nullsfirst,name,data->>x.asc").unwrap();
        assert_eq!(o.len(), 3);
        assert!(o[0].desc && o[0].nulls_first == Some(true));
        let e = parse_order("id.asc.nullslasttt").unwrap_err().body();
        assert_eq!(
            e.message,
            "\"failed to parse order (id.asc.nullslasttt)\" (line 1, column 17)"
        );
        assert_eq!(
            e.details.as_ref().and_then(|d| d.as_str()),
            Some("unexpected 't' expecting \",\" or end of input")
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = parse_select(&s);
            let _ = parse_order(&s);
            let _ = parse_filter(&s, &s);
            let _ = parse_logic("or", &s);
            let _ = parse_columns("columns", &s);
        }
    }
}
