//! CORS as PostgREST answers it standalone (`server-cors-allowed-origins`):
//! any origin as `*` when no list is set, otherwise only the listed
//! origins, echoed with credentials allowed; other origins get no CORS
//! headers at all. Behind the gateway the gateway answers CORS instead.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, header};

/// Which origins may read answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// Every origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// These origins, with credentials.
    Origins(Vec<String>),
}

impl Cors {
    /// From the setting's text: empty allows any origin.
    pub fn parse(value: &str) -> Self {
        let list = crate::config::list(value);
        if list.is_empty() {
            Cors::Any
        } else {
            Cors::Origins(list)
        }
    }

    /// `(Allow-Origin, with credentials)` for a request from `origin`, or
    /// `None` when that origin is not allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<(HeaderValue, bool)> {
        match self {
            Cors::Any => Some((HeaderValue::from_static("*"), false)),
            Cors::Origins(list) => list
                .iter()
                .any(|o| o.as_bytes() == origin.as_bytes())
                .then(|| (origin.clone(), true)),
        }
    }

    /// The answer to a preflight from an allowed origin.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let (origin, credentials) = self.allow(headers.get(header::ORIGIN)?)?;
        let mut allowed_headers = "Authorization".to_owned();
        if let Some(requested) = headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
        {
            allowed_headers.push_str(", ");
            allowed_headers.push_str(requested);
        }
        let mut r = Response::builder()
            .status(200)
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin)
            .header(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD",
            )
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed_headers)
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .header(header::CONTENT_LENGTH, 0);
        if credentials {
            r = r.header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        r.body(Body::empty()).ok()
    }

    /// Adds the CORS headers to an answer to `request`.
    pub fn decorate(&self, request: &HeaderMap, response: &mut Response<Body>) {
        let Some((origin, credentials)) = request.get(header::ORIGIN).and_then(|o| self.allow(o))
        else {
            return;
        };
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, Transfer-Encoding, Range-Unit",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        h
    }

    #[test]
    fn listed_origins_are_echoed_with_credentials_others_get_nothing() {
        let cors = Cors::parse("http://a.example, http://b.example");
        let r = cors
            .preflight(&Method::OPTIONS, &request("http://b.example"))
            .unwrap();
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "http://b.example"
        );
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        assert!(
            cors.preflight(&Method::OPTIONS, &request("http://c.example"))
                .is_none()
        );
        let mut plain = Response::new(Body::empty());
        cors.decorate(&request("http://c.example"), &mut plain);
        assert!(plain.headers().is_empty());
    }

    #[test]
    fn empty_setting_allows_any_origin_as_star() {
        let cors = Cors::parse("");
        assert_eq!(cors, Cors::Any);
        let r = cors
            .preflight(&Method::OPTIONS, &request("http://any.example"))
            .unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert!(!r.headers().contains_key("access-control-allow-credentials"));
    }
}
