//! AWS Lambda: with `AWS_LAMBDA_RUNTIME_API` set (Lambda sets it in every
//! execution environment), the same router answers invocations polled from
//! the Runtime API instead of a TCP port. The process outlives one
//! invocation, so the pool, its prepared statements and the schema cache
//! serve every warm invocation after the first.

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;

/// The header the caller's JWT travels in: a Function URL with `AWS_IAM`
/// auth takes `Authorization` for the SigV4 signature of the caller
/// (the gateway), so the user's own token rides beside it.
pub(crate) const CLIENT_AUTHORIZATION: &str = "x-client-authorization";

/// Serves invocations until the runtime stops.
pub(crate) async fn serve(app: axum::Router) -> anyhow::Result<()> {
    tracing::info!("supa-rest serving AWS Lambda invocations");
    let app = app.layer(axum::middleware::map_request(client_authorization));
    lambda_http::run(app)
        .await
        .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

/// The caller's JWT becomes `Authorization`; the signature that was there
/// never reaches the JWT check (without a client token the request is
/// anonymous, as it would be without a token on a TCP port).
async fn client_authorization(mut request: Request) -> Request {
    let headers = request.headers_mut();
    headers.remove(AUTHORIZATION);
    if let Some(jwt) = headers.remove(CLIENT_AUTHORIZATION) {
        headers.insert(AUTHORIZATION, jwt);
    }
    request
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().uri("/items");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn the_client_token_replaces_the_signature() {
        let signed = request(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/..."),
            (CLIENT_AUTHORIZATION, "Bearer user.jwt"),
        ]);
        let out = client_authorization(signed).await;
        assert_eq!(
            out.headers().get(AUTHORIZATION),
            Some(&HeaderValue::from_static("Bearer user.jwt"))
        );
        assert!(out.headers().get(CLIENT_AUTHORIZATION).is_none());
    }

    #[tokio::test]
    async fn a_signature_alone_is_no_token() {
        let out = client_authorization(request(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/...",
        )]))
        .await;
        assert!(out.headers().get(AUTHORIZATION).is_none());
    }
}
