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

/// Pieces of `multipart/form-data` bodies with boundary `B`, whole and
/// broken, in the order storage's clients send their fields.
const FORM_PIECES: &[&str] = &[
    "--B\r\n",
    "--B--\r\n",
    "--B",
    "\r\n",
    "\r\n\r\n",
    "Content-Disposition: form-data; name=\"cacheControl\"\r\n\r\n3600\r\n",
    "Content-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\": 1}\r\n",
    "Content-Disposition: form-data; name=\"\"; filename=\"x.txt\"\r\n",
    "Content-Disposition: form-data; name=\"file\"\r\n",
    "Content-Type: text/plain\r\n\r\n",
    "Content-Type: ;;\r\n\r\n",
    "hello",
    "Content-Disposition: form-data; name*=UTF-8''%E2%82%AC\r\n\r\n",
    "Content-Length: 99999999999999999999\r\n",
];

/// A well-formed upload form: cacheControl, metadata, then the file.
fn form(cache: &str, metadata: &str, mime: &str, file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--B\r\nContent-Disposition: form-data; name=\"cacheControl\"\r\n\r\n{cache}\r\n\
         --B\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{metadata}\r\n\
         --B\r\nContent-Disposition: form-data; name=\"\"; filename=\"f\"\r\nContent-Type: {mime}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--B--\r\n");
    body
}

/// What storage makes of a multipart upload body: the stored settings and
/// the file's bytes, or the refusal's HTTP status.
fn read_form(body: Vec<u8>) -> Result<(crate::api::Incoming, Vec<u8>), u16> {
    use futures_util::StreamExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let request = axum::http::Request::post("/")
            .header("content-type", "multipart/form-data; boundary=B")
            .body(axum::body::Body::from(body))
            .expect("a request");
        let (incoming, mut field) = crate::api::form_file(request)
            .await
            .map_err(|e| e.http_status())?;
        let mut file = Vec::new();
        while let Some(chunk) = field.next().await {
            // A broken file part ends the upload as the client's fault.
            file.extend_from_slice(&chunk.map_err(|_| 400u16)?);
        }
        Ok((incoming, file))
    })
}

#[test]
fn fuzz_multipart_upload_bodies() {
    for_a_while(
        "multipart upload bodies",
        near(FORM_PIECES, "[-a-zA-Z0-9=;:\"\r\n ]{0,12}"),
        |body| {
            // Refused or read, never a panic and never a server error.
            if let Err(status) = read_form(body.into_bytes()) {
                prop_assert!((400..500).contains(&status), "{}", status);
            }
            Ok(())
        },
    );
    for_a_while(
        "multipart upload forms (round trip)",
        (
            "[0-9]{1,6}",
            "[a-z]{1,8}",
            "(text|image|application)/[a-z]{1,8}",
            prop::collection::vec(any::<u8>(), 0..2048),
        ),
        |(cache, key, mime, file)| {
            let metadata = format!("{{\"{key}\": \"v\"}}");
            // Bytes that happen to hold the boundary are not a well-formed form.
            if file.windows(4).any(|w| w == b"\r\n--") {
                return Ok(());
            }
            let (incoming, read) = read_form(form(&cache, &metadata, &mime, &file))
                .map_err(|s| TestCaseError::fail(format!("a good form refused with {s}")))?;
            prop_assert_eq!(incoming.cache_control, format!("max-age={cache}"));
            prop_assert_eq!(incoming.mime, mime);
            prop_assert_eq!(
                incoming.user_metadata,
                Some(serde_json::json!({ key: "v" }))
            );
            prop_assert_eq!(read, file);
            Ok(())
        },
    );
}
