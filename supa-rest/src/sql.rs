//! A SQL text under construction with its bound values. Identifiers are
//! always double-quoted here; values always become `$n` parameters sent
//! as untyped text, so PostgreSQL infers their types as it does for
//! PostgREST's literals.

/// SQL text and the values bound to its `$n` placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sql {
    /// The statement.
    pub text: String,
    /// The values of `$1..$n`, as text.
    pub params: Vec<String>,
}

pub use supa_core::quote_ident;

/// `{a,b}` array literal of `items`, each element quoted.
pub fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

impl Sql {
    /// Appends raw SQL written by this crate (never user input).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a quoted identifier.
    pub fn ident(&mut self, name: &str) -> &mut Self {
        self.text.push_str(&quote_ident(name));
        self
    }

    /// Appends `"schema"."name"`.
    pub fn qualified(&mut self, schema: &str, name: &str) -> &mut Self {
        self.ident(schema).push(".").ident(name)
    }

    /// Appends a placeholder bound to `value`.
    pub fn param(&mut self, value: impl Into<String>) -> &mut Self {
        self.params.push(value.into());
        let n = self.params.len();
        self.text.push_str(&format!("${n}"));
        self
    }

    /// Appends another fragment, renumbering its placeholders.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        let offset = self.params.len();
        if offset == 0 {
            self.text.push_str(&other.text);
        } else {
            self.text.push_str(&renumber(&other.text, offset));
        }
        self.params.extend(other.params.iter().cloned());
        self
    }
}

/// Shifts every `$n` placeholder of `text` (outside quotes) by `offset`.
fn renumber(text: &str, offset: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let (mut in_single, mut in_double) = (false, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' && !in_double {
            in_single = !in_single;
        } else if c == '"' && !in_single {
            in_double = !in_double;
        } else if c == '$'
            && !in_single
            && !in_double
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        {
            let mut end = i + 1;
            while chars.get(end).is_some_and(char::is_ascii_digit) {
                end += 1;
            }
            let n: usize = chars[i + 1..end]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            out.push_str(&format!("${}", n + offset));
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_params() {
        let mut s = Sql::default();
        s.push("SELECT ")
            .ident("we\"ird")
            .push(" FROM ")
            .qualified("te st", "t")
            .push(" WHERE a = ")
            .param("x");
        assert_eq!(
            s.text,
            "SELECT \"we\"\"ird\" FROM \"te st\".\"t\" WHERE a = $1"
        );
        let mut other = Sql::default();
        other
            .push("b = ")
            .param("y")
            .push(" AND \"$1\" = '$2' AND ü = ")
            .param("z");
        s.push(" AND ").append(&other);
        assert_eq!(
            s.text,
            "SELECT \"we\"\"ird\" FROM \"te st\".\"t\" WHERE a = $1 AND b = $2 AND \"$1\" = '$2' AND ü = $3"
        );
        assert_eq!(s.params, ["x", "y", "z"]);
    }

    #[test]
    fn arrays() {
        assert_eq!(
            array_literal(&["a".into(), "b,c".into(), "d\"e".into()]),
            r#"{"a","b,c","d\"e"}"#
        );
    }
}
