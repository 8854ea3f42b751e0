//! Fuzz targets of what storage reads from a request before any database
//! or object store sees it: bucket names and object paths (which become
//! object store keys), TUS headers and upload ids, and user metadata.
//! Nothing may panic; an accepted path can never leave its bucket.

use axum::http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use supa_core::fuzz::{for_a_while, near};

use crate::backend::Backend;
use crate::names::{bucket_name, mime_allowed, object_key, valid_mime_pattern};

const PATH_PIECES: &[&str] = &[
    "a", "/", "//", ".", "..", "./", "../", "%2F", "%2e%2e", "\\", "\u{0}", "\n", "ü", " ", "*",
    "?", "#", "~", "file.txt", "folder/",
];

#[test]
fn fuzz_storage_paths() {
    for_a_while(
        "storage bucket names and object paths",
        (
            near(PATH_PIECES, "[a-z./ -]{0,6}"),
            near(PATH_PIECES, "[a-z./ -]{0,6}"),
        ),
        |(bucket, name)| {
            if let (Ok(bucket), Ok(name)) = (bucket_name(&bucket), object_key(&name)) {
                let key = Backend::key("proj", bucket, name, Some("v1"));
                let parts: Vec<String> = key.parts().map(|p| p.as_ref().to_owned()).collect();
                // The project and bucket first, the version last, every
                // part of the name in between, none of them a way out.
                prop_assert_eq!(parts.len(), 3 + name.split('/').count(), "{}", name);
                prop_assert_eq!(parts[0].as_str(), "proj");
                prop_assert!(
                    parts
                        .iter()
                        .all(|p| p != "." && p != ".." && !p.contains('/'))
                );
                prop_assert_eq!(parts.last().map(String::as_str), Some("v1"));
                // A TUS upload id names the same object back.
                let version = "0bd1c7ae-51e0-4f3f-8a5c-4f0b1e0c6f3a";
                let id = crate::tus::upload_id(bucket, name, version);
                let back = crate::tus::upload_parts(&id);
                prop_assert_eq!(
                    back,
                    Some((bucket.to_owned(), name.to_owned(), version.to_owned()))
                );
            }
            Ok(())
        },
    );
    for_a_while(
        "mime types and allow-lists",
        (
            near(
                &["image/", "*", "png", "/", ";", "text/plain"],
                "[a-z/*+.;= -]{0,8}",
            ),
            "[a-z/*+.-]{0,10}",
        ),
        |(mime, pattern)| {
            let allowed = [pattern.clone()];
            let _ = valid_mime_pattern(&pattern);
            let _ = mime_allowed(&mime, Some(&allowed));
            Ok(())
        },
    );
}

#[test]
fn fuzz_tus_headers_and_user_metadata() {
    let metadata = near(
        &[
            "filename ",
            "Y2F0LnBuZw==",
            ",",
            "contentType ",
            "aW1hZ2UvcG5n",
            "bucketName ",
            " ",
            "=",
            "%",
        ],
        "[A-Za-z0-9+/=, ]{0,10}",
    );
    let numbers = near(
        &["0", "-1", "18446744073709551616", " ", "+", "1e3"],
        "[0-9 +-]{0,6}",
    );
    for_a_while(
        "tus Upload-Metadata and lengths",
        (
            metadata,
            numbers,
            near(
                &["YnVja2V0L25hbWUv", "L", "Lw", "=", "_"],
                "[A-Za-z0-9_-]{0,12}",
            ),
        ),
        |(metadata, number, id)| {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&metadata) {
                headers.insert("upload-metadata", v);
            }
            if let Ok(v) = HeaderValue::from_str(&number) {
                headers.insert("upload-length", v);
            }
            if let Err(e) = crate::tus::metadata(&headers) {
                prop_assert_eq!(e.status, 400);
            }
            if let Err(e) = crate::tus::number(&headers, "Upload-Length") {
                prop_assert_eq!(e.status, 400);
            }
            let _ = crate::tus::upload_parts(&id);
            Ok(())
        },
    );
    for_a_while(
        "user metadata",
        near(
            &["{", "}", "\"a\":", "1", "[", "]", "null", ","],
            "[{}\\[\\]\":a-z0-9,]{0,8}",
        ),
        |text| {
            if let Ok(value) = crate::api::parse_user_metadata(&text) {
                prop_assert!(value.is_object());
            }
            Ok(())
        },
    );
}
