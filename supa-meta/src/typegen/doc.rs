//! A document of groups and line breaks and the printer that lays it out
//! within a width, by the rules the generated file's formatter follows: a
//! group is printed flat when it fits on the rest of the line (up to the
//! next possible break after it), otherwise its lines break; a group with
//! a forced break inside always breaks.

/// A piece of the layout.
#[derive(Debug, Clone)]
pub(crate) enum Doc {
    /// Text without line breaks.
    Text(String),
    /// Pieces one after the other.
    Concat(Vec<Doc>),
    /// Printed flat if it fits, else broken; `broken` is set when a hard
    /// break is inside or the source asked for it.
    Group { contents: Box<Doc>, broken: bool },
    /// Lines inside start two columns further in.
    Indent(Box<Doc>),
    /// Lines inside start `n` columns further in.
    Align(usize, Box<Doc>),
    /// A space when flat (nothing if `soft`), a new line when broken.
    Line { soft: bool },
    /// Always a new line.
    HardLine,
    /// `broken` in a broken group, `flat` in a flat one.
    IfBreak { broken: Box<Doc>, flat: Box<Doc> },
}

pub(crate) fn text(s: impl Into<String>) -> Doc {
    Doc::Text(s.into())
}

pub(crate) fn concat(parts: Vec<Doc>) -> Doc {
    Doc::Concat(parts)
}

pub(crate) fn line() -> Doc {
    Doc::Line { soft: false }
}

pub(crate) fn softline() -> Doc {
    Doc::Line { soft: true }
}

pub(crate) fn indent(doc: Doc) -> Doc {
    Doc::Indent(Box::new(doc))
}

pub(crate) fn align(n: usize, doc: Doc) -> Doc {
    Doc::Align(n, Box::new(doc))
}

pub(crate) fn if_break(broken: Doc, flat: Doc) -> Doc {
    Doc::IfBreak {
        broken: Box::new(broken),
        flat: Box::new(flat),
    }
}

/// A group; `force` breaks it whatever its width.
pub(crate) fn group(contents: Doc, force: bool) -> Doc {
    let broken = force || contents.forces_break();
    Doc::Group {
        contents: Box::new(contents),
        broken,
    }
}

/// `docs` with `separator` between each two.
pub(crate) fn join(separator: Doc, docs: Vec<Doc>) -> Doc {
    let mut parts = Vec::with_capacity(docs.len() * 2);
    for (i, doc) in docs.into_iter().enumerate() {
        if i > 0 {
            parts.push(separator.clone());
        }
        parts.push(doc);
    }
    Doc::Concat(parts)
}

impl Doc {
    /// Whether a hard line break is inside (which breaks every group
    /// around it).
    fn forces_break(&self) -> bool {
        match self {
            Doc::HardLine => true,
            Doc::Group { broken, .. } => *broken,
            Doc::Concat(parts) => parts.iter().any(Doc::forces_break),
            Doc::Indent(d) | Doc::Align(_, d) => d.forces_break(),
            Doc::IfBreak { broken, flat } => broken.forces_break() || flat.forces_break(),
            Doc::Text(_) | Doc::Line { .. } => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Flat,
    Break,
}

type Command<'a> = (usize, Mode, &'a Doc);

/// The display width of `s` (wide East Asian characters take two columns).
pub(crate) fn width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        unicode_width::UnicodeWidthStr::width(s)
    }
}

/// Whether `next` fits in `room` columns, looking on into `rest` (the
/// commands after it) up to the first line that breaks.
fn fits(next: Command<'_>, rest: &[Command<'_>], mut room: isize) -> bool {
    let mut rest_index = rest.len();
    let mut stack = vec![(next.1, next.2)];
    while room >= 0 {
        let Some((mode, doc)) = stack.pop() else {
            if rest_index == 0 {
                return true;
            }
            rest_index -= 1;
            stack.push((rest[rest_index].1, rest[rest_index].2));
            continue;
        };
        match doc {
            Doc::Text(s) => room -= width(s) as isize,
            Doc::Concat(parts) => stack.extend(parts.iter().rev().map(|p| (mode, p))),
            Doc::Indent(d) | Doc::Align(_, d) => stack.push((mode, d)),
            Doc::Group { contents, broken } => {
                stack.push((if *broken { Mode::Break } else { mode }, contents));
            }
            Doc::IfBreak { broken, flat } => {
                stack.push((mode, if mode == Mode::Break { broken } else { flat }));
            }
            Doc::HardLine => return true,
            Doc::Line { soft } => {
                if mode == Mode::Break {
                    return true;
                }
                if !soft {
                    room -= 1;
                }
            }
        }
    }
    false
}

/// Lays `doc` out in `max_width` columns.
pub(crate) fn print(doc: &Doc, max_width: usize) -> String {
    let mut out = String::new();
    print_at(&mut out, doc, 0, max_width);
    out
}

/// Appends `doc` laid out in `max_width` columns to `out`, starting at
/// column `start` with lines indented by `start`, where nothing follows it
/// on its last line (the next line break is ahead).
pub(crate) fn print_at(out: &mut String, doc: &Doc, start: usize, max_width: usize) {
    let mut column = start;
    let mut commands: Vec<Command<'_>> = vec![(start, Mode::Break, doc)];
    while let Some((indentation, mode, doc)) = commands.pop() {
        match doc {
            Doc::Text(s) => {
                out.push_str(s);
                column += width(s);
            }
            Doc::Concat(parts) => {
                commands.extend(parts.iter().rev().map(|p| (indentation, mode, p)));
            }
            Doc::Indent(d) => commands.push((indentation + 2, mode, d)),
            Doc::Align(n, d) => commands.push((indentation + n, mode, d)),
            Doc::Group { contents, broken } => {
                let flat = (indentation, Mode::Flat, &**contents);
                let next = match mode {
                    Mode::Flat if !broken => flat,
                    Mode::Break
                        if !broken
                            && fits(flat, &commands, max_width as isize - column as isize) =>
                    {
                        flat
                    }
                    _ => (indentation, Mode::Break, &**contents),
                };
                commands.push(next);
            }
            Doc::IfBreak { broken, flat } => {
                commands.push((
                    indentation,
                    mode,
                    if mode == Mode::Break { broken } else { flat },
                ));
            }
            Doc::Line { soft } if mode == Mode::Flat => {
                if !soft {
                    out.push(' ');
                    column += 1;
                }
            }
            Doc::Line { .. } | Doc::HardLine => {
                let trimmed = out.trim_end_matches([' ', '\t']).len();
                out.truncate(trimmed);
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indentation));
                column = indentation;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(members: Vec<&str>, force: bool) -> Doc {
        group(
            concat(vec![
                text("{"),
                indent(concat(vec![
                    line(),
                    join(
                        concat(vec![if_break(text(""), text(";")), line()]),
                        members.into_iter().map(text).collect(),
                    ),
                ])),
                line(),
                text("}"),
            ]),
            force,
        )
    }

    #[test]
    fn groups_stay_flat_when_they_fit_and_break_when_not() {
        let short = object(vec!["a: number", "b?: string"], false);
        assert_eq!(print(&short, 80), "{ a: number; b?: string }");
        assert_eq!(print(&short, 10), "{\n  a: number\n  b?: string\n}");
        let forced = object(vec!["a: number"], true);
        assert_eq!(print(&forced, 80), "{\n  a: number\n}");
        // A forced break inside breaks the groups around it.
        let outer = group(concat(vec![text("x: "), forced, line(), text("y")]), false);
        assert!(print(&outer, 80).ends_with("}\ny"));
    }
}
