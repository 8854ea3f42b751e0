//! CORS as Supabase's Kong answers it: any origin (echoed, with
//! credentials), preflights answered here without a key.

use axum::http::{HeaderMap, HeaderValue, Response, header};

/// Headers a browser may read from a response.
const EXPOSED: &str = "Content-Range, Content-Location, Location, Preference-Applied, Range-Unit, Content-Profile, X-Total-Count";
const METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS";

/// Whether `headers` make a CORS preflight.
pub(crate) fn is_preflight(method: &axum::http::Method, headers: &HeaderMap) -> bool {
    method == axum::http::Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn origin(request: &HeaderMap) -> HeaderValue {
    request
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"))
}

/// The answer to a preflight.
pub(crate) fn preflight(request: &HeaderMap) -> Response<axum::body::Body> {
    let mut r = Response::builder()
        .status(200)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin(request))
        .header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, METHODS)
        .header(header::ACCESS_CONTROL_MAX_AGE, "3600")
        .header(header::VARY, "Origin")
        .header(header::CONTENT_LENGTH, 0);
    if let Some(h) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        r = r.header(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
    }
    r.body(axum::body::Body::empty())
        .expect("static parts are valid")
}

/// Adds the CORS headers to any answer; `origin` is the request's.
pub(crate) fn decorate(origin: Option<HeaderValue>, response: &mut Response<axum::body::Body>) {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        origin.unwrap_or_else(|| HeaderValue::from_static("*")),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}
