//! Upstreams reached over the network: any PostgREST-compatible HTTP
//! server, and AWS Lambda Function URLs signed with SigV4.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use futures_util::TryStreamExt as _;
use supa_core::Secret;
use supa_keys::{Credentials, Payload, SigV4Signer, SigningRequest};

use crate::Error;
use crate::pool::{self, Origin};

/// What never crosses to an upstream: headers that describe one hop
/// (RFC 9110 7.6.1), `Host`, the API key, the client's credentials, and
/// the length (recomputed from the body sent).
static NOT_FORWARDED: [HeaderName; 14] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("proxy-connection"),
    header::HOST,
    HeaderName::from_static("apikey"),
    header::AUTHORIZATION,
    header::CONTENT_LENGTH,
    HeaderName::from_static("x-client-authorization"),
];

/// The hop-by-hop headers of [`NOT_FORWARDED`], dropped from answers.
fn hop_by_hop() -> &'static [HeaderName] {
    &NOT_FORWARDED[..9]
}

/// Largest body buffered for signing (Lambda payloads are capped at 6 MB).
const SIGNED_BODY_LIMIT: usize = 6 << 20;

/// A pooled HTTP client with rustls on `ring` (plain HTTP and HTTPS).
pub(crate) fn http_client(timeout: Duration) -> reqwest::Client {
    supa_core::http::client(timeout)
}

/// How the gateway reaches its network upstreams: plain-HTTP ones through
/// connections driven by the request's own task ([`pool`]), HTTPS ones
/// (Lambda Function URLs, remote servers) through a pooled TLS client,
/// where the network's round trip dwarfs a task hand-off.
#[derive(Debug)]
pub(crate) struct Clients {
    pub tls: reqwest::Client,
    /// Bounds the wait for a connection and the answer's head.
    pub timeout: Duration,
}

/// What to send upstream besides the client's request.
pub(crate) struct Forward<'a> {
    /// Base URL of the upstream.
    pub base: &'a url::Url,
    /// The same, parsed for [`pool`] when it is plain HTTP.
    pub origin: Option<&'a Origin>,
    /// Path after `/rest/v1`, with the query (apikey removed).
    pub path_and_query: &'a str,
    /// The JWT the upstream runs the request with.
    pub token: &'a str,
    /// `X-Forwarded-Host`.
    pub host: Option<&'a str>,
    /// `X-Forwarded-Prefix`: where the data plane is mounted for clients.
    pub prefix: &'a str,
}

/// The client's headers, in place, minus [`NOT_FORWARDED`], plus where
/// clients reach the gateway.
fn forwarded_headers(headers: &mut HeaderMap, fwd: &Forward<'_>) {
    for name in &NOT_FORWARDED {
        headers.remove(name);
    }
    set_forwarded(headers, fwd.host, fwd.prefix);
}

/// Where clients reach a service (`X-Forwarded-Host`, `-Proto`, `-Prefix`),
/// for the links and documents it builds; told alike to http upstreams and
/// to services served in process.
pub(crate) fn set_forwarded(h: &mut HeaderMap, host: Option<&str>, prefix: &str) {
    if let Some(host) = host.and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert("x-forwarded-host", host);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(prefix) = HeaderValue::from_str(prefix) {
        h.insert("x-forwarded-prefix", prefix);
    }
}

/// Appends `peer` to `X-Forwarded-For`, as proxies do.
pub(crate) fn append_forwarded_for(h: &mut HeaderMap, peer: std::net::IpAddr) {
    let value = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) if !before.trim().is_empty() => format!("{before}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert("x-forwarded-for", v);
    }
}

fn send_error(e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::UpstreamTimeout
    } else {
        Error::UpstreamUnreachable(e.to_string())
    }
}

fn bearer(token: &str) -> Result<HeaderValue, Error> {
    let mut value = String::with_capacity(7 + token.len());
    value.push_str("Bearer ");
    value.push_str(token);
    HeaderValue::try_from(value).map_err(|_| Error::UpstreamUnreachable("unusable token".into()))
}

/// Sends the prepared request and streams the answer back without its
/// hop-by-hop headers.
async fn exchange(
    clients: &Clients,
    mut parts: http::request::Parts,
    body: Body,
    fwd: &Forward<'_>,
) -> Result<Response<Body>, Error> {
    let mut response = match fwd.origin {
        Some(origin) => {
            parts.uri = origin.uri(fwd.path_and_query).map_err(|_| Error::NoRoute)?;
            parts.version = http::Version::HTTP_11;
            pool::send(origin, Request::from_parts(parts, body), clients.timeout)
                .await
                .map_err(|e| match e {
                    pool::SendError::Timeout => Error::UpstreamTimeout,
                    pool::SendError::Connect(e) => Error::UpstreamUnreachable(e.to_string()),
                    pool::SendError::Exchange(e) => Error::UpstreamUnreachable(e.to_string()),
                })?
        }
        None => {
            let url = format!(
                "{}{}",
                fwd.base.as_str().trim_end_matches('/'),
                fwd.path_and_query
            );
            let mut upstream = clients
                .tls
                .request(parts.method, url)
                .headers(parts.headers);
            // No body stays no body (not an empty chunked one); a body streams.
            if http_body::Body::size_hint(&body).exact() != Some(0) {
                let stream = body.into_data_stream().map_err(std::io::Error::other);
                upstream = upstream.body(reqwest::Body::wrap_stream(stream));
            }
            let response = upstream.send().await.map_err(|e| send_error(&e))?;
            let response: http::Response<reqwest::Body> = response.into();
            response.map(Body::new)
        }
    };
    for name in hop_by_hop() {
        response.headers_mut().remove(name);
    }
    Ok(response)
}

/// Proxies to a PostgREST-compatible server with `Authorization: Bearer`.
pub(crate) async fn http(
    clients: &Clients,
    request: Request<Body>,
    fwd: &Forward<'_>,
) -> Result<Response<Body>, Error> {
    let (mut parts, body) = request.into_parts();
    forwarded_headers(&mut parts.headers, fwd);
    parts
        .headers
        .insert(header::AUTHORIZATION, bearer(fwd.token)?);
    exchange(clients, parts, body, fwd).await
}

/// Proxies to a service's own server (auth, storage, functions) with the
/// `Authorization` the gateway chose: the caller's token, or one minted for
/// the key's role, or none on an open path.
pub(crate) async fn service(
    clients: &Clients,
    request: Request<Body>,
    fwd: &Forward<'_>,
    authorization: Option<HeaderValue>,
) -> Result<Response<Body>, Error> {
    let (mut parts, body) = request.into_parts();
    forwarded_headers(&mut parts.headers, fwd);
    if let Some(authorization) = authorization {
        parts.headers.insert(header::AUTHORIZATION, authorization);
    }
    exchange(clients, parts, body, fwd).await
}

/// Where Lambda credentials come from: the environment, or the ECS
/// container credentials endpoint (cached until shortly before expiry).
#[derive(Debug, Default)]
pub(crate) struct AwsCredentials {
    cached: Mutex<Option<(Credentials, i64)>>,
}

impl AwsCredentials {
    pub(crate) async fn get(&self, client: &reqwest::Client) -> Result<Credentials, Error> {
        self.get_from(client, |n| std::env::var(n).ok()).await
    }

    /// As [`AwsCredentials::get`], with the environment read through `var`.
    async fn get_from(
        &self,
        client: &reqwest::Client,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, Error> {
        let var = |n: &str| var(n).filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Credentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
            });
        }
        let now = supa_keys::unix_now();
        if let Some((c, until)) = self
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            && now < until
        {
            return Ok(c);
        }
        let url = match (
            var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        ) {
            (Some(full), _) => full,
            (None, Some(relative)) => format!("http://169.254.170.2{relative}"),
            (None, None) => {
                return Err(Error::UpstreamUnreachable(
                    "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or run on ECS"
                        .into(),
                ));
            }
        };
        let mut request = client.get(url);
        if let Some(token) = var("AWS_CONTAINER_AUTHORIZATION_TOKEN") {
            request = request.header(header::AUTHORIZATION, token);
        }
        let doc: serde_json::Value = request
            .send()
            .await
            .map_err(|e| send_error(&e))?
            .json()
            .await
            .map_err(|e| Error::UpstreamUnreachable(format!("bad ECS credentials answer: {e}")))?;
        let field = |k: &str| doc[k].as_str().map(str::to_owned);
        let (Some(id), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
            return Err(Error::UpstreamUnreachable(
                "ECS credentials lack keys".into(),
            ));
        };
        let credentials = Credentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: field("Token").map(Secret::new),
        };
        // Refresh well before the credentials expire (ECS rotates hourly).
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((credentials.clone(), now + 15 * 60));
        Ok(credentials)
    }
}

/// Calls a Lambda Function URL: SigV4 (service `lambda`) owns
/// `Authorization`, so the JWT travels in `X-Client-Authorization`.
pub(crate) async fn lambda(
    clients: &Clients,
    signer: &SigV4Signer,
    credentials: &Credentials,
    region: &str,
    request: Request<Body>,
    fwd: &Forward<'_>,
) -> Result<Response<Body>, Error> {
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, SIGNED_BODY_LIMIT)
        .await
        .map_err(|_| Error::UpstreamUnreachable("request body too large for Lambda".into()))?;
    forwarded_headers(&mut parts.headers, fwd);
    parts
        .headers
        .insert("x-client-authorization", bearer(fwd.token)?);
    let url = format!(
        "{}{}",
        fwd.base.as_str().trim_end_matches('/'),
        fwd.path_and_query
    );
    let pairs: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let signed = signer
        .sign(
            &SigningRequest {
                method: parts.method.as_str(),
                url: &url,
                headers: &pairs,
                payload: Payload::Bytes(&body),
            },
            credentials,
            region,
            supa_keys::unix_now(),
        )
        .map_err(|e| Error::UpstreamUnreachable(format!("cannot sign: {e}")))?;
    let set = |h: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set(&mut parts.headers, "authorization", &signed.authorization);
    set(&mut parts.headers, "x-amz-date", &signed.x_amz_date);
    if let Some(t) = &signed.x_amz_security_token {
        set(&mut parts.headers, "x-amz-security-token", t);
    }
    exchange(clients, parts, Body::from(body), fwd).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::HeaderMap;

    use super::*;

    #[tokio::test]
    async fn credentials_come_from_the_env_or_the_container_endpoint() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        // A stand-in for the ECS credentials endpoint, checking the token.
        let app = axum::Router::new().route(
            "/creds",
            axum::routing::get(move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("ecs-token") {
                        return (axum::http::StatusCode::UNAUTHORIZED, "{}".to_owned());
                    }
                    (
                        axum::http::StatusCode::OK,
                        r#"{"AccessKeyId":"ASIAECS","SecretAccessKey":"ecs-secret","Token":"ecs-session","Expiration":"2099-01-01T00:00:00Z"}"#.to_owned(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/creds", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = http_client(Duration::from_secs(5));

        let from_env = AwsCredentials::default()
            .get_from(&client, |n| match n {
                "AWS_ACCESS_KEY_ID" => Some("AKIAENV".into()),
                "AWS_SECRET_ACCESS_KEY" => Some("env-secret".into()),
                _ => None,
            })
            .await
            .unwrap();
        assert_eq!(from_env.access_key_id, "AKIAENV");
        assert!(from_env.session_token.is_none());

        let ecs = AwsCredentials::default();
        let env = |n: &str| match n {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI" => Some(url.clone()),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN" => Some("ecs-token".into()),
            _ => None,
        };
        let first = ecs.get_from(&client, env).await.unwrap();
        assert_eq!(first.access_key_id, "ASIAECS");
        assert_eq!(first.secret_access_key.expose(), "ecs-secret");
        assert_eq!(
            first.session_token.as_ref().map(|t| t.expose().as_str()),
            Some("ecs-session")
        );
        ecs.get_from(&client, env).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "cached until refresh time");

        let refused = AwsCredentials::default()
            .get_from(&client, |n| match n {
                "AWS_CONTAINER_CREDENTIALS_FULL_URI" => Some(url.clone()),
                _ => None,
            })
            .await;
        assert!(
            refused.is_err(),
            "an endpoint refusing the token yields no credentials"
        );
        let none = AwsCredentials::default()
            .get_from(&client, |_| None)
            .await
            .unwrap_err();
        assert!(none.to_string().contains("no AWS credentials"));
    }
}
