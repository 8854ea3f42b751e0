//! Phone sign-up and sign-in with one-time codes by SMS. No SMS provider is
//! built in: codes leave through the project's send-SMS hook, as
//! Supabase's auth hook has it: a Postgres function
//! (`pg-functions://postgres/{schema}/{function}`) or an HTTP endpoint
//! signed as Standard Webhooks sign (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature` with the `v1,whsec_...` secret), given
//! `{"user": ..., "sms": {"otp": "123456"}}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deadpool_postgres::GenericClient;
use hmac::{KeyInit as _, Mac as _};
use serde_json::json;

use crate::api::{self, Result};
use crate::store::{self, TokenColumn, UserRow};
use crate::{Auth, Error, Project};

/// A phone number as GoTrue keeps it: E.164 digits without the `+`.
pub(crate) fn normalize(phone: &str) -> Result<String> {
    let digits: String = phone
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(digits)
    } else {
        Err(Error::new(
            400,
            "validation_failed",
            "Invalid phone number format (E.164 required)",
        ))
    }
}

pub(crate) fn require_phone_provider(p: &Project) -> Result<()> {
    if p.settings.external_phone_enabled {
        Ok(())
    } else {
        Err(Error::new(
            400,
            "phone_provider_disabled",
            "Unsupported phone provider",
        ))
    }
}

fn send_failed(msg: impl Into<String>) -> Error {
    Error::new(502, "sms_send_failed", msg)
}

/// Mints a code for `user` at `phone` (stored hashed in `column`) and
/// sends it through the hook, in `db`'s transaction. Returns the
/// message id.
pub(crate) async fn send_code(
    db: &impl GenericClient,
    auth: &Auth,
    p: &Project,
    user: &UserRow,
    phone: &str,
    column: TokenColumn,
) -> Result<String> {
    let s = &p.settings;
    let Some(uri) = s
        .hook_send_sms_uri
        .as_deref()
        .filter(|_| s.hook_send_sms_enabled)
    else {
        return Err(Error::new(
            422,
            "sms_send_failed",
            "Error sending confirmation OTP to provider: no SMS provider (send-SMS hook) is configured",
        ));
    };
    let code = crate::links::code(6);
    store::set_token(
        db,
        &user.id,
        column,
        &crate::links::token_hash(phone, &code),
        phone,
    )
    .await?;
    let payload = json!({"user": user.json, "sms": {"otp": code}});
    let message_id = api::random_token();
    match crate::hooks::pg_function(uri) {
        Some(function) => {
            crate::hooks::call(db, &function, &payload)
                .await
                .map_err(|e| send_failed(e.message))?;
        }
        None => {
            let body = payload.to_string();
            let timestamp = supa_keys::unix_now().to_string();
            let mut request = auth
                .http
                .post(uri)
                .header("content-type", "application/json")
                .header("webhook-id", &message_id)
                .header("webhook-timestamp", &timestamp);
            if let Some(signature) = p
                .auth_secrets
                .get("hook_send_sms_secrets")
                .and_then(|secret| sign(secret.expose(), &message_id, &timestamp, &body))
            {
                request = request.header("webhook-signature", signature);
            }
            let response = request
                .body(body)
                .send()
                .await
                .map_err(|e| send_failed(format!("Error sending SMS through the hook: {e}")))?;
            if !response.status().is_success() {
                return Err(send_failed(format!(
                    "The send-SMS hook answered {}",
                    response.status()
                )));
            }
        }
    }
    Ok(message_id)
}

/// A Standard Webhooks signature (`v1,<base64 HMAC-SHA256>`) of the
/// message with the first `v1,whsec_<base64>` secret of `secrets`.
fn sign(secrets: &str, id: &str, timestamp: &str, body: &str) -> Option<String> {
    let key = secrets
        .split('|')
        .find_map(|s| s.trim().strip_prefix("v1,whsec_"))
        .and_then(|k| STANDARD.decode(k).ok())?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_e164_digits() {
        assert_eq!(normalize("+1 (555) 010-9999").unwrap(), "15550109999");
        assert_eq!(normalize("4915112345678").unwrap(), "4915112345678");
        for bad in ["", "+", "0123", "12ab", "1234567890123456"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn webhook_signatures_follow_the_standard() {
        // Standard Webhooks' own example secret and message.
        let secret = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(sign("nonsense", "a", "1", "{}").is_none());
    }
}
