//! Calls to a project's services at the gateway, with one of its secret
//! keys: Studio acts as an app's server would (the service role), so the
//! data plane's and the services' own checks apply.

use reqwest::Method;
use serde_json::Value;
use supa_core::{KeyKind, ProjectRef};

use crate::Studio;

/// What went wrong reaching a service, shown in place.
pub(crate) struct Problem(pub(crate) String);

/// A service's answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    /// `Content-Range` (PostgREST's count).
    pub(crate) range: Option<String>,
    /// `X-Total-Count` (GoTrue's count).
    pub(crate) total: Option<u64>,
}

/// Everything but RFC 3986's unreserved characters is escaped.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value or a path segment (a space is `%20`, so
/// the result means the same in both places).
pub(crate) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

/// Sends a request to `{gateway}/project/{ref}/{path}` with a secret key
/// of the project, `body` as it is; the response whatever its status.
pub(crate) async fn send(
    studio: &Studio,
    project: &ProjectRef,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<reqwest::Body>,
) -> Result<reqwest::Response, Problem> {
    let keys = studio
        .inner
        .tenant
        .list_keys(project, true)
        .await
        .map_err(|e| Problem(e.to_string()))?;
    let key = keys
        .iter()
        .find(|k| k.kind == KeyKind::Secret)
        .ok_or_else(|| Problem("the project has no secret key left: create one first".into()))?;
    let url = format!("{}/project/{project}/{path}", studio.inner.gateway_url);
    let mut request = studio
        .inner
        .http
        .request(method, &url)
        .header("apikey", &key.api_key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request
        .send()
        .await
        .map_err(|e| Problem(format!("the project's API could not be reached: {e}")))
}

/// Calls `{gateway}/project/{ref}/{path}` with a JSON body; an error
/// status becomes a [`Problem`] with the service's message.
pub(crate) async fn call(
    studio: &Studio,
    project: &ProjectRef,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Answer, Problem> {
    let mut all = headers.to_vec();
    let json = body.map(|b| reqwest::Body::from(b.to_string()));
    if json.is_some() {
        all.push(("Content-Type", "application/json"));
    }
    let response = send(studio, project, method, path, &all, json).await?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let range = header("content-range");
    let total = header("x-total-count").and_then(|t| t.parse().ok());
    let text = response.text().await.map_err(|e| Problem(e.to_string()))?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status >= 400 {
        return Err(Problem(format!("{status}: {}", message_of(&body))));
    }
    Ok(Answer {
        status,
        body,
        range,
        total,
    })
}

/// The message a service's error body carries, in any of the services'
/// shapes.
pub(crate) fn message_of(body: &Value) -> &str {
    ["message", "msg", "error_description", "error"]
        .iter()
        .find_map(|k| body.get(k).and_then(Value::as_str))
        .unwrap_or("refused")
}

#[cfg(test)]
mod tests {
    use super::enc;

    #[test]
    fn segments_and_values_are_percent_encoded() {
        assert_eq!(enc("report 1.bin"), "report%201.bin");
        assert_eq!(enc("a/b?c=d&e+f"), "a%2Fb%3Fc%3Dd%26e%2Bf");
        assert_eq!(enc("é-_.~"), "%C3%A9-_.~");
    }
}
