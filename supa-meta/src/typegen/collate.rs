//! The string order of the generated file: English collation as
//! `Intl.Collator("en")` orders names (the order postgres-meta prints).
//!
//! This is the Unicode collation algorithm's root order for the characters
//! names are made of: whitespace and punctuation first (in that table's own
//! sequence), then digits, then letters compared without accents or case;
//! accents break ties first (unaccented first), then case (lower case
//! first). Letters are compared by their decomposed base letter; other
//! characters follow the Latin letters by code point, an approximation
//! that keeps the order total and stable.

use std::cmp::Ordering;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// ASCII punctuation and symbols in root collation order.
const PUNCTUATION: &str = "\t\n\u{b}\u{c}\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

/// The primary weight of `c` (`None`: ignored, as control characters are).
fn primary(c: char) -> Option<u32> {
    if let Some(i) = PUNCTUATION.find(c) {
        return Some(1 + i as u32);
    }
    match c {
        '0'..='9' => Some(100 + (c as u32 - '0' as u32)),
        'a'..='z' => Some(200 + (c as u32 - 'a' as u32)),
        'A'..='Z' => Some(200 + (c as u32 - 'A' as u32)),
        _ if c.is_control() || is_combining_mark(c) => None,
        _ => Some(0x1000 + c as u32),
    }
}

/// The collation key of `s`: keys compare as their strings collate. It
/// is the primary weights, then one accent weight per character (a mark,
/// or 1 for none), then one case weight per character (1 lower, 2 upper),
/// the levels separated by 0, which is below every weight.
pub(crate) fn key(s: &str) -> Vec<u32> {
    let (mut primaries, mut accents, mut cases) = (Vec::new(), Vec::new(), Vec::new());
    let mut add = |c: char| {
        if is_combining_mark(c) {
            accents.push(c as u32 + 1);
        } else if let Some(weight) = primary(c) {
            primaries.push(weight);
            accents.push(1);
            cases.push(if c.is_uppercase() { 2 } else { 1 });
        }
    };
    if s.is_ascii() {
        s.chars().for_each(&mut add);
    } else {
        s.nfd().for_each(&mut add);
    }
    primaries.push(0);
    primaries.extend(accents);
    primaries.push(0);
    primaries.extend(cases);
    primaries
}

/// Compares `a` and `b` as the English collator does.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn orders_names_as_english_collation() {
        let mut names = vec![
            "users",
            "user_names",
            "User",
            "user",
            "measurements_2026",
            "measurements",
            "t10",
            "t2",
            "a-b",
            "a_b",
            "ab",
            "Ab",
            "9",
            "_x",
            "ünï",
            "uni",
            "unj",
        ];
        names.sort_by(|a, b| compare(a, b));
        assert_eq!(
            names,
            [
                "_x",
                "9",
                "a_b",
                "a-b",
                "ab",
                "Ab",
                "measurements",
                "measurements_2026",
                "t10",
                "t2",
                "uni",
                "ünï",
                "unj",
                "user",
                "User",
                "user_names",
                "users"
            ]
        );
        assert_eq!(compare("posts_of", "post_counts"), Greater);
        assert_eq!(compare("same", "same"), Equal);
    }
}
