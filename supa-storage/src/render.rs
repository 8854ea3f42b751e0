//! Image transformations at `/render/image/{public,authenticated,sign}/...`,
//! as Supabase Storage serves them: `width` and `height` (1 to 2500),
//! `resize` (`cover`, the default, crops to the box; `contain` fits inside
//! it; `fill` stretches), `quality` (20 to 100, for JPEG) and `format`
//! (`origin` keeps the source's format; without it a client that accepts
//! WebP gets WebP, as Supabase does).
//!
//! Sources are bounded (25 MB and 50 megapixels), decoded and encoded in
//! pure Rust on the blocking pool, and every rendition is kept beside the
//! bytes under `{prefix}/~renders/{object version}/{digest of the
//! options}`, so the same request is served from the cache, and a new
//! version of the object never meets an old rendition (the sweeper removes
//! renditions of versions that are gone).

use std::collections::BTreeMap;
use std::io::Cursor;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use image::{DynamicImage, ImageFormat, imageops::FilterType};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::api::{Auth, ObjectPath, Project, header_str};
use crate::backend::Backend;
use crate::error::Result;
use crate::store::{self, ObjectRow, Reader};
use crate::{Error, Storage, StorageProject};

/// Largest source image, bytes (Supabase's 25 MB).
const MAX_SOURCE_BYTES: u64 = 25 * 1000 * 1000;

/// Largest source image, pixels.
const MAX_SOURCE_PIXELS: u64 = 50_000_000;

/// Largest requested side.
const MAX_SIDE: u32 = 2500;

/// The folder of a project's renditions (stored as `%7Erenders`).
pub(crate) const RENDERS: &str = "~renders";

/// How to resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    Cover,
    Contain,
    Fill,
}

/// A transformation request, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Transform {
    width: Option<u32>,
    height: Option<u32>,
    resize: Option<Resize>,
    quality: Option<u8>,
    /// `origin` (keep the source's format) or `webp`.
    format: Option<String>,
}

impl Transform {
    /// From string pairs (a query, or a signed URL's `transformations`);
    /// other pairs (`token`, `download`) are not the transformation's.
    pub(crate) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let mut t = Transform::default();
        let side = |name: &str, v: &str| {
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_SIDE).contains(n))
                .ok_or_else(|| {
                    Error::invalid_request(format!(
                        "{name} must be an integer between 1 and {MAX_SIDE}"
                    ))
                })
        };
        for (name, value) in pairs {
            match name {
                "width" => t.width = Some(side(name, value)?),
                "height" => t.height = Some(side(name, value)?),
                "resize" => {
                    t.resize = Some(match value {
                        "cover" => Resize::Cover,
                        "contain" => Resize::Contain,
                        "fill" => Resize::Fill,
                        _ => {
                            return Err(Error::invalid_request(
                                "resize must be cover, contain or fill",
                            ));
                        }
                    });
                }
                "quality" => {
                    t.quality = Some(
                        value
                            .trim()
                            .parse::<u8>()
                            .ok()
                            .filter(|q| (20..=100).contains(q))
                            .ok_or_else(|| {
                                Error::invalid_request(
                                    "quality must be an integer between 20 and 100",
                                )
                            })?,
                    );
                }
                "format" => {
                    if value != "origin" && value != "webp" {
                        return Err(Error::invalid_request("format must be origin or webp"));
                    }
                    t.format = Some(value.to_owned());
                }
                _ => {}
            }
        }
        Ok(t)
    }

    /// From a JSON object (a signed URL request's `transform`).
    pub(crate) fn from_json(value: &Value) -> Result<Self> {
        let map = value
            .as_object()
            .ok_or_else(|| Error::invalid_request("body/transform must be an object"))?;
        let pairs: Vec<(String, String)> = map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The canonical query form (`height=..&width=..`), as signed URLs
    /// carry it and as renditions are keyed.
    pub(crate) fn canonical(&self) -> String {
        let mut parts = BTreeMap::new();
        if let Some(w) = self.width {
            parts.insert("width", w.to_string());
        }
        if let Some(h) = self.height {
            parts.insert("height", h.to_string());
        }
        if let Some(r) = self.resize {
            let name = match r {
                Resize::Cover => "cover",
                Resize::Contain => "contain",
                Resize::Fill => "fill",
            };
            parts.insert("resize", name.to_owned());
        }
        if let Some(q) = self.quality {
            parts.insert("quality", q.to_string());
        }
        if let Some(f) = &self.format {
            parts.insert("format", f.clone());
        }
        parts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn feature_on(project: &StorageProject) -> Result<()> {
    if project.settings.features.image_transformation.enabled {
        Ok(())
    } else {
        Err(Error::feature_disabled("ImageTransformation"))
    }
}

pub(crate) async fn render_authenticated(
    State(storage): State<Storage>,
    Auth(project, caller): Auth,
    ObjectPath { bucket, name }: ObjectPath,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response> {
    feature_on(&project)?;
    let t = Transform::from_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let client = storage.client(&project).await?;
    let row = store::find_as(client, Reader::Caller(&caller), &bucket, &name).await?;
    render(&storage, &project, &bucket, &name, row, &t, &headers).await
}

pub(crate) async fn render_public(
    State(storage): State<Storage>,
    Project(project): Project,
    ObjectPath { bucket, name }: ObjectPath,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response> {
    feature_on(&project)?;
    let t = Transform::from_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let client = storage.client(&project).await?;
    let row = store::find_as(client, Reader::Public, &bucket, &name).await?;
    render(&storage, &project, &bucket, &name, row, &t, &headers).await
}

/// A signed rendition: the transformation is the token's, not the query's.
pub(crate) async fn render_signed(
    State(storage): State<Storage>,
    Project(project): Project,
    ObjectPath { bucket, name }: ObjectPath,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response> {
    feature_on(&project)?;
    let token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| Error::invalid_signature("Missing token"))?;
    let claims = crate::api::signed_claims(&project, token, &bucket, &name)?;
    let signed = claims
        .get("transformations")
        .and_then(Value::as_str)
        .unwrap_or("");
    let t = Transform::from_pairs(
        signed
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, ""))),
    )
    .map_err(|_| Error::invalid_signature("invalid transformations"))?;
    let client = storage.client(&project).await?;
    let row = store::find_as(client, Reader::Signed, &bucket, &name).await?;
    render(&storage, &project, &bucket, &name, row, &t, &headers).await
}

/// The format a rendition is written in.
fn output_format(t: &Transform, source: ImageFormat, headers: &HeaderMap) -> ImageFormat {
    let accepts_webp = header_str(headers, "accept").is_some_and(|a| a.contains("image/webp"));
    match t.format.as_deref() {
        Some("webp") => ImageFormat::WebP,
        Some(_) => source,
        None if accepts_webp => ImageFormat::WebP,
        None => source,
    }
}

async fn render(
    storage: &Storage,
    project: &StorageProject,
    bucket: &str,
    name: &str,
    row: ObjectRow,
    t: &Transform,
    headers: &HeaderMap,
) -> Result<Response> {
    let meta = &row.metadata;
    let mime = meta.get("mimetype").and_then(Value::as_str).unwrap_or("");
    let source_format = ImageFormat::from_mime_type(mime)
        .filter(|f| {
            matches!(
                f,
                ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif
            )
        })
        .ok_or_else(|| Error::invalid_mime_type(mime))?;
    let size = meta.get("size").and_then(Value::as_u64).unwrap_or(0);
    if size > MAX_SOURCE_BYTES {
        return Err(Error::new(
            413,
            "EntityTooLarge",
            "The image is too large to transform (25 MB at most)",
        ));
    }
    let format = output_format(t, source_format, headers);
    let cache_control = meta
        .get("cacheControl")
        .and_then(Value::as_str)
        .unwrap_or("no-cache")
        .to_owned();
    let prefix = storage.prefix(&project.project_ref);
    let digest = hex::encode(Sha256::digest(
        format!("{}|{}", t.canonical(), format.extensions_str()[0]).as_bytes(),
    ));
    let cached = row.version.as_deref().map(|version| {
        object_store::path::Path::from_iter([prefix.as_str(), RENDERS, version, digest.as_str()])
    });
    if let Some(key) = &cached
        && let Some(bytes) = storage.backend().get_small(key).await?
    {
        return Ok(respond(bytes, format, &cache_control, &digest));
    }
    let source_key = Backend::key(&prefix, bucket, name, row.version.as_deref());
    let reading = storage.backend().read(&source_key, None).await?;
    let chunks: Vec<Bytes> = reading.body.try_collect().await?;
    let source = chunks.concat();
    let transform = t.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        transform_image(&source, source_format, &transform, format)
    })
    .await
    .map_err(Error::internal)??;
    let bytes = Bytes::from(bytes);
    if let Some(key) = &cached {
        // A failed cache write only costs the next request a render.
        if let Err(e) = storage.backend().put_small(key, bytes.clone()).await {
            tracing::warn!(error = %e.message, "keeping a rendition failed");
        }
    }
    Ok(respond(bytes, format, &cache_control, &digest))
}

fn respond(bytes: Bytes, format: ImageFormat, cache_control: &str, digest: &str) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.to_mime_type()),
    );
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        h.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", &digest[..32])) {
        h.insert(header::ETAG, v);
    }
    response
}

/// Decodes, resizes and encodes one image (on a blocking thread).
fn transform_image(
    source: &[u8],
    source_format: ImageFormat,
    t: &Transform,
    format: ImageFormat,
) -> Result<Vec<u8>> {
    let unreadable = |e: image::ImageError| {
        Error::new(
            422,
            "InvalidImage",
            format!("The image cannot be read: {e}"),
        )
    };
    // Read twice: the header first, so an oversized image is refused
    // before anything is decoded; each read under the allocation limit.
    let reader = || {
        let mut reader = image::ImageReader::with_format(Cursor::new(source), source_format);
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(MAX_SOURCE_PIXELS * 4);
        reader.limits(limits);
        reader
    };
    let (w, h) = reader().into_dimensions().map_err(unreadable)?;
    if u64::from(w) * u64::from(h) > MAX_SOURCE_PIXELS {
        return Err(Error::new(
            413,
            "EntityTooLarge",
            "The image has too many pixels to transform (50 megapixels at most)",
        ));
    }
    let img = reader().decode().map_err(unreadable)?;
    let img = resize(img, t);
    let mut out = Cursor::new(Vec::new());
    let encoded = match format {
        ImageFormat::Jpeg => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut out,
                t.quality.unwrap_or(80),
            );
            DynamicImage::ImageRgb8(img.to_rgb8()).write_with_encoder(encoder)
        }
        // WebP is written lossless (the pure-Rust encoder has no lossy
        // mode), PNG and GIF as they are.
        ImageFormat::WebP => DynamicImage::ImageRgba8(img.to_rgba8()).write_to(&mut out, format),
        other => img.write_to(&mut out, other),
    };
    encoded.map_err(Error::internal)?;
    Ok(out.into_inner())
}

fn resize(img: DynamicImage, t: &Transform) -> DynamicImage {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let filter = FilterType::CatmullRom;
    match (t.width, t.height) {
        (None, None) => img,
        (Some(tw), None) => {
            let th = ((u64::from(h) * u64::from(tw)) / u64::from(w)).max(1) as u32;
            img.resize_exact(tw, th, filter)
        }
        (None, Some(th)) => {
            let tw = ((u64::from(w) * u64::from(th)) / u64::from(h)).max(1) as u32;
            img.resize_exact(tw, th, filter)
        }
        (Some(tw), Some(th)) => match t.resize.unwrap_or(Resize::Cover) {
            Resize::Cover => img.resize_to_fill(tw, th, filter),
            Resize::Contain => img.resize(tw, th, filter),
            Resize::Fill => img.resize_exact(tw, th, filter),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 255])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(img)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    fn dims(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    }

    fn t(q: &str) -> Transform {
        Transform::from_pairs(q.split('&').map(|p| p.split_once('=').unwrap())).unwrap()
    }

    #[test]
    fn resize_modes() {
        let src = png(400, 200);
        let run = |q: &str, f| transform_image(&src, ImageFormat::Png, &t(q), f).unwrap();
        assert_eq!(dims(&run("width=100", ImageFormat::Png)), (100, 50));
        assert_eq!(dims(&run("height=50", ImageFormat::Png)), (100, 50));
        assert_eq!(
            dims(&run("width=100&height=100", ImageFormat::Png)),
            (100, 100)
        );
        assert_eq!(
            dims(&run(
                "width=100&height=100&resize=contain",
                ImageFormat::Png
            )),
            (100, 50)
        );
        assert_eq!(
            dims(&run("width=100&height=100&resize=fill", ImageFormat::Png)),
            (100, 100)
        );
        let jpeg = run("width=100&quality=30", ImageFormat::Jpeg);
        assert_eq!(image::guess_format(&jpeg).unwrap(), ImageFormat::Jpeg);
        let webp = run("width=100&format=webp", ImageFormat::WebP);
        assert_eq!(image::guess_format(&webp).unwrap(), ImageFormat::WebP);
    }

    #[test]
    fn options_are_checked_and_canonical() {
        for bad in [
            "width=0",
            "width=2501",
            "height=x",
            "resize=crop",
            "quality=10",
            "format=avif",
        ] {
            let (k, v) = bad.split_once('=').unwrap();
            assert!(Transform::from_pairs([(k, v)]).is_err(), "{bad}");
        }
        assert_eq!(
            t("width=10&resize=fill&height=20&token=x").canonical(),
            "height=20&resize=fill&width=10"
        );
        let j = Transform::from_json(
            &serde_json::json!({"width": 10, "height": "20", "quality": null}),
        )
        .unwrap();
        assert_eq!(j.canonical(), "height=20&width=10");
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        let e = transform_image(
            b"not an image",
            ImageFormat::Png,
            &t("width=10"),
            ImageFormat::Png,
        )
        .unwrap_err();
        assert_eq!(e.status, 422);
    }
}
