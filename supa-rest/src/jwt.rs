//! JWT checks as PostgREST makes them: HS256 signature through
//! `supa-keys`, then PostgREST's claim rules (`exp` optional, 30 s skew,
//! `aud` checked when configured) with its error messages.

use serde_json::Value;
use supa_keys::JwtKey;

use crate::Error;

/// Clock skew PostgREST tolerates on `exp`, `nbf` and `iat`.
const SKEW_SECS: i64 = 30;

fn unauthorized(code: &'static str, message: impl Into<String>) -> Error {
    Error::api(401, code, message)
}

/// Verifies `token`; the claims as a JSON object.
pub(crate) fn verify(key: &JwtKey, token: &str, audience: Option<&str>) -> Result<Value, Error> {
    if token.is_empty() {
        return Err(unauthorized(
            "PGRST301",
            "Empty JWT is sent in Authorization header",
        ));
    }
    let parts = token.split('.').count();
    if parts != 3 {
        return Err(unauthorized(
            "PGRST301",
            format!("Expected 3 parts in JWT; got {parts}"),
        ));
    }
    let claims = supa_keys::verify_signature(key, token).map_err(|e| match e {
        supa_keys::Error::BadSignature => unauthorized("PGRST301", "JWSError JWSInvalidSignature"),
        other => unauthorized("PGRST301", other.to_string()),
    })?;
    let now = supa_keys::unix_now();
    let number = |name: &str| -> Result<Option<f64>, Error> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(unauthorized(
                "PGRST303",
                format!("The JWT '{name}' claim must be a number"),
            )),
        }
    };
    let (exp, nbf, iat) = (number("exp")?, number("nbf")?, number("iat")?);
    let now_f = now as f64;
    if exp.is_some_and(|e| now_f > e + SKEW_SECS as f64) {
        return Err(unauthorized("PGRST303", "JWT expired"));
    }
    if nbf.is_some_and(|n| now_f + (SKEW_SECS as f64) < n) {
        return Err(unauthorized("PGRST303", "JWT not yet valid"));
    }
    if iat.is_some_and(|i| now_f + (SKEW_SECS as f64) < i) {
        return Err(unauthorized("PGRST303", "JWT issued at future"));
    }
    let aud_ok = match claims.get("aud") {
        None | Some(Value::Null) => true,
        Some(Value::String(a)) => audience.is_none_or(|want| want == a),
        // An empty list names no audience and is ignored, as PostgREST does.
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.is_empty()
                || audience.is_none_or(|want| items.iter().any(|i| i.as_str() == Some(want)))
        }
        Some(_) => {
            return Err(unauthorized(
                "PGRST303",
                "The JWT 'aud' claim must be a string or an array of strings",
            ));
        }
    };
    if !aud_ok {
        return Err(unauthorized("PGRST303", "JWT not in audience"));
    }
    if claims.get("role").is_some_and(|r| !r.is_string()) {
        return Err(unauthorized(
            "PGRST303",
            "The JWT 'role' claim must be a string",
        ));
    }
    Ok(Value::Object(claims))
}
