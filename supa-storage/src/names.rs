//! Which bucket names and object keys are accepted.
//!
//! Bucket names follow Supabase Storage exactly (the S3-safe ASCII set,
//! 1 to 100 characters). Object keys accept what Supabase Storage accepts
//! and also any printable Unicode (letters, marks, numbers, symbols and
//! punctuation of every script), since they are only ever bound
//! parameters and escaped path segments; refused are control characters,
//! empty segments, `.` and `..` segments and over-long keys, so no key can
//! reach outside its bucket's prefix in any backend.

use crate::Error;

/// Longest key, in bytes (S3's limit).
pub(crate) const MAX_KEY_BYTES: usize = 1024;

fn bucket_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_!.*'() &$=@;:+,?-".contains(c)
}

/// Whether Supabase Storage accepts `name` as a bucket name.
pub(crate) fn valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() < 101
        && name.chars().all(bucket_char)
        && name != "."
        && name != ".."
}

/// `name`, or `InvalidBucketName`.
pub(crate) fn bucket_name(name: &str) -> Result<&str, Error> {
    if valid_bucket_name(name) {
        Ok(name)
    } else {
        Err(Error::invalid_bucket_name())
    }
}

/// Whether `key` is an acceptable object key.
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && !key.chars().any(char::is_control)
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// `key`, or `InvalidKey`.
pub(crate) fn object_key(key: &str) -> Result<&str, Error> {
    if valid_key(key) {
        Ok(key)
    } else {
        Err(Error::invalid_key(key))
    }
}

/// Whether `mime` is allowed by `allowed` (none means any); entries may end
/// in `/*` (`image/*`).
pub(crate) fn mime_allowed(mime: &str, allowed: Option<&[String]>) -> bool {
    let Some(allowed) = allowed.filter(|a| !a.is_empty()) else {
        return true;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_suffix("/*") {
            Some(kind) => essence.split('/').next() == Some(kind),
            None => a == essence || a == "*/*" || a == "*",
        }
    })
}

/// Whether `mime` is a well-formed `type/subtype`, as a bucket's allowed
/// list must hold.
pub(crate) fn valid_mime_pattern(mime: &str) -> bool {
    let mut parts = mime.splitn(2, '/');
    let (Some(kind), Some(sub)) = (parts.next(), parts.next()) else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-*".contains(c))
    };
    token(kind) && token(sub.split(';').next().unwrap_or("").trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_as_supabase_accepts_them() {
        for ok in ["avatars", "my bucket", "a.b-c_d", "x!*'()&$@=;:+,?"] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in ["", "a/b", "ünï", ".", "..", "tab\t", &"x".repeat(101)] {
            assert!(!valid_bucket_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn keys_refuse_traversal_and_control_characters() {
        for ok in [
            "a.txt",
            "folder/sub/file name (1).png",
            "日本語/ファイル.txt",
            "emoji 🎉.txt",
            "..hidden/x..y",
            "Ünïcödé/ñ/Ω/क्ष/١٢٣",
        ] {
            assert!(valid_key(ok), "{ok}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "nul\0byte",
            "line\nbreak",
            "del\u{7f}",
            &"k".repeat(1025),
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn mime_wildcards() {
        let allowed = vec!["image/*".to_owned(), "text/plain".to_owned()];
        assert!(mime_allowed("image/png", Some(&allowed)));
        assert!(mime_allowed("text/plain; charset=utf-8", Some(&allowed)));
        assert!(!mime_allowed("text/html", Some(&allowed)));
        assert!(!mime_allowed("imagex/png", Some(&allowed)));
        assert!(mime_allowed("anything/else", None));
        assert!(valid_mime_pattern("image/*"));
        assert!(!valid_mime_pattern("image"));
        assert!(!valid_mime_pattern("im age/png"));
    }
}
