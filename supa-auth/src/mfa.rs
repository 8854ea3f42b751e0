//! Multi-factor authentication with TOTP, as GoTrue offers it: enroll a
//! factor (its secret, `otpauth://` URI and QR code), challenge it, verify
//! a code (the session becomes `aal2`, with `totp` in its `amr`), and
//! unenroll; admins list and delete a user's factors.
//!
//! Codes are RFC 6238's: HMAC-SHA1, 6 digits, 30-second steps, one step
//! of clock skew either way; a challenge is answered once, within five
//! minutes.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use deadpool_postgres::GenericClient;
use hmac::{KeyInit as _, Mac as _};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{self, Body, Result};
use crate::limits::{Bucket, ClientIp};
use crate::{Auth, Error, Project};

/// A challenge is answered within this many seconds.
const CHALLENGE_TTL: i64 = 300;

pub(crate) fn routes(router: Router<Auth>) -> Router<Auth> {
    router
        .route("/factors", post(enroll))
        .route("/factors/{id}", delete(unenroll))
        .route("/factors/{id}/challenge", post(challenge))
        .route("/factors/{id}/verify", post(verify))
        .route("/admin/users/{id}/factors", get(admin_list))
        .route("/admin/users/{id}/factors/{factor}", delete(admin_delete))
}

/// RFC 4648 base32 without padding, as authenticator apps read secrets.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The 6-digit code of `secret` at time step `step`.
fn totp(secret: &[u8], step: u64) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let n = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", n % 1_000_000)
}

/// Whether `code` is the secret's code now, a step before or after.
fn code_matches(secret: &str, code: &str, now: u64) -> bool {
    let Some(key) = unbase32(secret) else {
        return false;
    };
    let step = now / 30;
    [step.saturating_sub(1), step, step + 1]
        .iter()
        .fold(false, |found, &s| {
            found
                | bool::from(subtle::ConstantTimeEq::ct_eq(
                    totp(&key, s).as_bytes(),
                    code.as_bytes(),
                ))
        })
}

fn factor_json(row: &tokio_postgres::Row) -> Value {
    serde_json::from_str(row.get::<_, &str>("json")).unwrap_or_default()
}

const FACTOR_JSON: &str =
    "jsonb_build_object('id', f.id, 'friendly_name', coalesce(f.friendly_name, ''),
     'factor_type', f.factor_type, 'status', f.status, 'created_at', f.created_at,
     'updated_at', f.updated_at)::text AS json";

#[derive(Debug, Deserialize)]
struct EnrollBody {
    factor_type: Option<String>,
    friendly_name: Option<String>,
    issuer: Option<String>,
}

async fn enroll(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Body(body): Body<EnrollBody>,
) -> Result<Response> {
    let (sub, session) = api::caller(&p, &headers)?;
    match body.factor_type.as_deref() {
        Some("totp") => {}
        Some("phone" | "webauthn") => {
            return Err(Error::new(
                422,
                "mfa_phone_enroll_not_enabled",
                "MFA enroll is disabled for this factor type",
            ));
        }
        _ => {
            return Err(Error::validation(
                "factor_type needs to be totp, phone or webauthn",
            ));
        }
    }
    if !p.settings.mfa_totp_enroll_enabled {
        return Err(Error::new(
            422,
            "mfa_totp_enroll_not_enabled",
            "MFA enroll is disabled for TOTP",
        ));
    }
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    let user = api::current_user(&tx, &sub, session.as_deref()).await?;
    let friendly = body.friendly_name.unwrap_or_default();
    let (count, taken): (i64, bool) = {
        let r = tx
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'verified'),
                        bool_or(friendly_name = $2 AND $2 <> '')
                 FROM auth.mfa_factors WHERE user_id = $1::text::uuid",
                &[&sub, &friendly],
            )
            .await?;
        (r.get(0), r.get::<_, Option<bool>>(1).unwrap_or(false))
    };
    if count >= p.settings.mfa_max_enrolled_factors {
        return Err(Error::new(
            422,
            "too_many_enrolled_mfa_factors",
            "Maximum number of verified factors reached, unenroll to continue",
        ));
    }
    if taken {
        return Err(Error::new(
            422,
            "mfa_factor_name_conflict",
            format!("A factor with the friendly name \"{friendly}\" for this user already exists"),
        ));
    }
    let mut key = [0u8; 20];
    getrandom::fill(&mut key).expect("the OS has randomness");
    let secret = base32(&key);
    let issuer = body.issuer.filter(|i| !i.is_empty()).unwrap_or_else(|| {
        url::Url::parse(&p.settings.site_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "supa".into())
    });
    let account = user.json["email"]
        .as_str()
        .filter(|e| !e.is_empty())
        .or_else(|| user.json["phone"].as_str())
        .unwrap_or("")
        .to_owned();
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let uri = format!(
        "otpauth://totp/{}:{}?algorithm=SHA1&digits=6&issuer={}&period=30&secret={secret}",
        enc(&issuer),
        enc(&account),
        enc(&issuer)
    );
    let svg = qrcode::QrCode::new(uri.as_bytes())
        .map_err(Error::internal)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let row = tx
        .query_one(
            "INSERT INTO auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at, secret)
             VALUES (gen_random_uuid(), $1::text::uuid, $2, 'totp', 'unverified', now(), now(), $3)
             RETURNING id::text",
            &[&sub, &friendly, &secret],
        )
        .await?;
    tx.commit().await?;
    let id: String = row.get(0);
    Ok(Json(json!({
        "id": id,
        "type": "totp",
        "friendly_name": friendly,
        "totp": {"qr_code": format!("data:image/svg+xml;utf-8,{svg}"), "secret": secret, "uri": uri},
    }))
    .into_response())
}

/// The caller's factor `id`: `(status, secret)`.
async fn own_factor(
    db: &impl GenericClient,
    user: &str,
    id: &str,
) -> Result<(String, Option<String>)> {
    let not_found = || Error::new(404, "mfa_factor_not_found", "Factor not found");
    let id = api::user_id(id).map_err(|_| not_found())?;
    let row = db
        .query_opt(
            "SELECT status::text, secret FROM auth.mfa_factors
             WHERE id = $1::text::uuid AND user_id = $2::text::uuid",
            &[&id, &user],
        )
        .await?
        .ok_or_else(not_found)?;
    Ok((row.get(0), row.get(1)))
}

async fn challenge(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    auth.limits.take(&p, Bucket::Mfa, &ip)?;
    let (sub, session) = api::caller(&p, &headers)?;
    let client = auth.client(&p).await?;
    api::current_user(&client, &sub, session.as_deref()).await?;
    own_factor(&client, &sub, &id).await?;
    let ip: std::net::IpAddr = ip.0.parse().unwrap_or([0, 0, 0, 0].into());
    let row = client
        .query_one(
            "INSERT INTO auth.mfa_challenges (id, factor_id, created_at, ip_address)
             VALUES (gen_random_uuid(), $1::text::uuid, now(), $2::text::inet)
             RETURNING id::text, extract(epoch FROM created_at)::int8 + $3",
            &[&id, &ip.to_string(), &CHALLENGE_TTL],
        )
        .await?;
    let (challenge, expires_at): (String, i64) = (row.get(0), row.get(1));
    Ok(Json(json!({"id": challenge, "type": "totp", "expires_at": expires_at})).into_response())
}

#[derive(Debug, Deserialize)]
struct VerifyBody {
    challenge_id: Option<String>,
    code: Option<String>,
}

async fn verify(
    State(auth): State<Auth>,
    p: Project,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<VerifyBody>,
) -> Result<Response> {
    auth.limits.take(&p, Bucket::Mfa, &ip)?;
    let (sub, session) = api::caller(&p, &headers)?;
    let session = session.ok_or_else(|| {
        Error::new(
            403,
            "session_not_found",
            "A session is required to verify a factor",
        )
    })?;
    if !p.settings.mfa_totp_verify_enabled {
        return Err(Error::new(
            422,
            "mfa_totp_verify_not_enabled",
            "MFA verification is disabled for TOTP",
        ));
    }
    let mut client = auth.client(&p).await?;
    let tx = client.transaction().await?;
    api::current_user(&tx, &sub, Some(&session)).await?;
    let (_, secret) = own_factor(&tx, &sub, &id).await?;
    let challenge_id = body.challenge_id.unwrap_or_default();
    let missing = || {
        Error::new(
            404,
            "mfa_challenge_not_found",
            "MFA factor with the provided challenge ID not found",
        )
    };
    let challenge_id = api::user_id(&challenge_id).map_err(|_| missing())?;
    let row = tx
        .query_opt(
            "SELECT verified_at IS NOT NULL, extract(epoch FROM now() - created_at)::int8
             FROM auth.mfa_challenges WHERE id = $1::text::uuid AND factor_id = $2::text::uuid FOR UPDATE",
            &[&challenge_id, &id],
        )
        .await?
        .ok_or_else(missing)?;
    let (used, age): (bool, i64) = (row.get(0), row.get(1));
    if used || age > CHALLENGE_TTL {
        return Err(Error::new(
            422,
            "mfa_challenge_expired",
            format!(
                "MFA challenge {challenge_id} has expired, verify against another challenge or create a new challenge."
            ),
        ));
    }
    let code = body.code.unwrap_or_default();
    if !code_matches(
        secret.as_deref().unwrap_or(""),
        code.trim(),
        supa_keys::unix_now() as u64,
    ) {
        return Err(Error::new(
            422,
            "mfa_verification_failed",
            "Invalid TOTP code entered",
        ));
    }
    tx.execute(
        "UPDATE auth.mfa_challenges SET verified_at = now() WHERE id = $1::text::uuid",
        &[&challenge_id],
    )
    .await?;
    tx.execute(
        "UPDATE auth.mfa_factors SET status = 'verified', updated_at = now() WHERE id = $1::text::uuid",
        &[&id],
    )
    .await?;
    tx.execute(
        "UPDATE auth.sessions SET aal = 'aal2', factor_id = $2::text::uuid, updated_at = now()
         WHERE id = $1::text::uuid",
        &[&session, &id],
    )
    .await?;
    tx.execute(
        "INSERT INTO auth.mfa_amr_claims (session_id, created_at, updated_at, authentication_method, id)
         VALUES ($1::text::uuid, now(), now(), 'totp', gen_random_uuid())
         ON CONFLICT (session_id, authentication_method) DO UPDATE SET updated_at = now(), created_at = now()",
        &[&session],
    )
    .await?;
    // A new refresh token for the stepped-up session; the old ones end.
    let refresh = api::random_token();
    crate::store::reissue(&tx, &sub, &session, &refresh).await?;
    let user = crate::store::user_by_id(&tx, &sub)
        .await?
        .ok_or_else(api::user_not_found)?;
    let answer = crate::tokens::issue(&tx, &p, &user, &session, &refresh).await?;
    tx.commit().await?;
    Ok(Json(answer).into_response())
}

async fn unenroll(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let claims = api::bearer_claims(&p, &headers)?;
    let (sub, session) = api::caller(&p, &headers)?;
    let client = auth.client(&p).await?;
    api::current_user(&client, &sub, session.as_deref()).await?;
    let (status, _) = own_factor(&client, &sub, &id).await?;
    if status == "verified" && claims.get("aal").and_then(Value::as_str) != Some("aal2") {
        return Err(Error::new(
            403,
            "insufficient_aal",
            "AAL2 required to unenroll verified factor",
        ));
    }
    delete_factor(&client, &sub, &id).await?;
    Ok(Json(json!({"id": id})).into_response())
}

/// Deletes a factor; sessions it stepped up go back to `aal1`.
async fn delete_factor(db: &impl GenericClient, user: &str, id: &str) -> Result<Option<Value>> {
    let row = db
        .query_opt(
            &format!(
                "DELETE FROM auth.mfa_factors f WHERE f.id = $1::text::uuid AND f.user_id = $2::text::uuid
                 RETURNING {FACTOR_JSON}"
            ),
            &[&id, &user],
        )
        .await?;
    if row.is_some() {
        db.execute(
            "UPDATE auth.sessions SET aal = 'aal1', factor_id = NULL, updated_at = now()
             WHERE user_id = $2::text::uuid AND factor_id = $1::text::uuid",
            &[&id, &user],
        )
        .await?;
    }
    Ok(row.as_ref().map(factor_json))
}

async fn admin_list(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    let user = api::user_id(&user)?;
    let client = auth.client(&p).await?;
    crate::store::user_by_id(&client, user)
        .await?
        .ok_or_else(api::user_not_found)?;
    let rows = client
        .query(
            &format!(
                "SELECT {FACTOR_JSON} FROM auth.mfa_factors f WHERE f.user_id = $1::text::uuid ORDER BY f.created_at"
            ),
            &[&user],
        )
        .await?;
    Ok(Json(rows.iter().map(factor_json).collect::<Vec<_>>()).into_response())
}

async fn admin_delete(
    State(auth): State<Auth>,
    p: Project,
    headers: HeaderMap,
    Path((user, factor)): Path<(String, String)>,
) -> Result<Response> {
    api::require_admin(&p, &headers)?;
    let user = api::user_id(&user)?;
    let not_found = || Error::new(404, "mfa_factor_not_found", "Factor not found");
    let factor = api::user_id(&factor).map_err(|_| not_found())?;
    let client = auth.client(&p).await?;
    let deleted = delete_factor(&client, user, factor)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(deleted).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1, the last six digits.
        let key = b"12345678901234567890";
        for (time, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(totp(key, time / 30), code, "{time}");
        }
        let secret = base32(key);
        assert_eq!(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(unbase32(&secret).unwrap(), key);
        assert!(code_matches(&secret, "287082", 59));
        assert!(code_matches(&secret, "287082", 89), "one step late");
        assert!(!code_matches(&secret, "287082", 150));
        assert!(!code_matches("not base32!", "287082", 59));
    }
}
