//! Reads the one thing type generation needs from a view's stored rule
//! (`pg_rewrite.ev_action`, PostgreSQL's `pg_node_tree` text): for each
//! output column of the view's query, the table column it comes straight
//! from, if any.
//!
//! The text is a tree of `{NODE :field value ...}` records, `( ... )`
//! lists and atoms (`<>` is null; special characters in names are
//! backslash-escaped, strings are double-quoted).

/// A column of a view and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The view's column number (`resno`).
    pub(crate) column: i32,
    /// The relation it is taken from (`resorigtbl`, 0 for an expression).
    pub(crate) relation: u32,
    /// That relation's column number (`resorigcol`).
    pub(crate) relation_column: i32,
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Open(char),
    Close,
    Atom(&'a str),
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\n' | b'\t' | b'\r' => i += 1,
            b'(' | b'{' => {
                out.push(Token::Open(bytes[i] as char));
                i += 1;
            }
            b')' | b'}' => {
                out.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.push(Token::Atom(&text[start..i]));
            }
            _ => {
                let start = i;
                while i < bytes.len() && !b" \n\t\r(){}".contains(&bytes[i]) {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(bytes.len());
                i = end;
                out.push(Token::Atom(&text[start..end]));
            }
        }
    }
    out
}

/// A parsed value: a record (its fields), a list, or an atom.
#[derive(Debug)]
enum Node<'a> {
    Record(Vec<(&'a str, Vec<Node<'a>>)>),
    List(Vec<Node<'a>>),
    Atom(&'a str),
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn value(&mut self) -> Option<Node<'a>> {
        let token = self.tokens.get(self.at)?;
        self.at += 1;
        match token {
            Token::Atom(a) => Some(Node::Atom(a)),
            Token::Close => None,
            Token::Open('(') => {
                let mut items = Vec::new();
                while !matches!(self.tokens.get(self.at), None | Some(Token::Close)) {
                    items.push(self.value()?);
                }
                self.at += 1;
                Some(Node::List(items))
            }
            Token::Open(_) => {
                // The node's type, then `:field value...` pairs.
                if matches!(self.tokens.get(self.at), Some(Token::Atom(_))) {
                    self.at += 1;
                }
                let mut fields: Vec<(&str, Vec<Node<'a>>)> = Vec::new();
                loop {
                    match self.tokens.get(self.at) {
                        None => break,
                        Some(Token::Close) => {
                            self.at += 1;
                            break;
                        }
                        Some(Token::Atom(a)) if a.starts_with(':') => {
                            self.at += 1;
                            fields.push((&a[1..], Vec::new()));
                        }
                        Some(_) => {
                            let value = self.value()?;
                            match fields.last_mut() {
                                Some((_, values)) => values.push(value),
                                None => return None,
                            }
                        }
                    }
                }
                Some(Node::Record(fields))
            }
        }
    }
}

fn field<'n, 'a>(fields: &'n [(&'a str, Vec<Node<'a>>)], name: &str) -> Option<&'n Node<'a>> {
    fields
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.first())
}

fn number<T: std::str::FromStr>(fields: &[(&str, Vec<Node<'_>>)], name: &str) -> Option<T> {
    match field(fields, name)? {
        Node::Atom(a) => a.parse().ok(),
        _ => None,
    }
}

/// The origins of the output columns of the first query in `ev_action`
/// (empty when the text is not a rule's query list).
pub(crate) fn view_origins(ev_action: &str) -> Vec<Origin> {
    let mut parser = Parser {
        tokens: tokens(ev_action),
        at: 0,
    };
    let Some(Node::List(queries)) = parser.value() else {
        return Vec::new();
    };
    let Some(Node::Record(query)) = queries.first() else {
        return Vec::new();
    };
    let Some(Node::List(entries)) = field(query, "targetList") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            Node::Record(entry) => Some(Origin {
                column: number(entry, "resno")?,
                relation: number(entry, "resorigtbl")?,
                relation_column: number(entry, "resorigcol")?,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_target_list_of_a_view_rule() {
        let rule = r#"({QUERY :commandType 1 :utilityStmt <> :rtable ({RANGETBLENTRY :eref {ALIAS :aliasname old :colnames ("id" "na\"me")} :selectedCols (b 8 9)}) :jointree {FROMEXPR :quals {CONST :constvalue 4 [ 16 0 0 0 ]}} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 1} :resno 1 :resname id :ressortgroupref 0 :resorigtbl 16549 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {FUNCEXPR :args <>} :resno 2 :resname my\ col\} :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false}) :override 0})"#;
        assert_eq!(
            view_origins(rule),
            [
                Origin {
                    column: 1,
                    relation: 16549,
                    relation_column: 1
                },
                Origin {
                    column: 2,
                    relation: 0,
                    relation_column: 0
                },
            ]
        );
        assert!(view_origins("garbage {").is_empty());
    }
}
