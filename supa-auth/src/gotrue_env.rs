//! The standalone server's configuration, read from GoTrue's own
//! environment (the variables of the auth container in Supabase's
//! docker-compose), so `supa-auth` can take its place unchanged.

use std::collections::BTreeMap;

use supa_core::{AuthSettings, Secret};

use crate::Error;

/// Everything the standalone server needs.
#[derive(Debug)]
pub struct GoTrueEnv {
    /// Auth settings, GoTrue's defaults where a variable is absent.
    pub settings: AuthSettings,
    /// `GOTRUE_JWT_SECRET`.
    pub jwt_secret: Secret<String>,
    /// `GOTRUE_SMTP_PASS`.
    pub smtp_pass: Option<Secret<String>>,
    /// `DATABASE_URL` (or `GOTRUE_DB_DATABASE_URL`).
    pub database_url: Secret<String>,
    /// `GOTRUE_API_HOST`.
    pub host: String,
    /// `PORT` (or `GOTRUE_API_PORT`), 9999 by default.
    pub port: u16,
    /// The `iss` of access tokens: `GOTRUE_JWT_ISSUER`, else
    /// `API_EXTERNAL_URL`.
    pub issuer: String,
    /// Where e-mailed links lead: `API_EXTERNAL_URL` and
    /// `GOTRUE_MAILER_URLPATHS_CONFIRMATION` (`/verify` by default).
    pub verify_url: String,
    /// Where OAuth providers send users back: a provider's
    /// `GOTRUE_EXTERNAL_*_REDIRECT_URI`, else `API_EXTERNAL_URL/callback`.
    pub callback_url: String,
    /// `GOTRUE_EXTERNAL_*_SECRET` and `GOTRUE_HOOK_SEND_SMS_SECRETS`, by
    /// the setting's name (`external_github_secret`...).
    pub auth_secrets: BTreeMap<String, Secret<String>>,
    /// `GOTRUE_*` variables this server does not read, to be logged once.
    pub ignored: Vec<String>,
}

/// Reads `vars` (the process environment, or a test's).
pub fn read(vars: impl IntoIterator<Item = (String, String)>) -> Result<GoTrueEnv, Error> {
    let mut vars: BTreeMap<String, String> =
        vars.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let mut take = |name: &str| vars.remove(name);
    let bad =
        |name: &str, why: &str| Error::new(500, "bad_configuration", format!("{name}: {why}"));
    let jwt_secret =
        take("GOTRUE_JWT_SECRET").ok_or_else(|| bad("GOTRUE_JWT_SECRET", "is required"))?;
    let database_url = take("DATABASE_URL")
        .or_else(|| take("GOTRUE_DB_DATABASE_URL"))
        .ok_or_else(|| bad("DATABASE_URL", "is required"))?;
    // Every table is named in the `auth` schema, as Supabase has it.
    if let Some(ns) = take("DB_NAMESPACE").or_else(|| take("GOTRUE_DB_NAMESPACE"))
        && ns != "auth"
    {
        return Err(bad("DB_NAMESPACE", "only \"auth\" is supported"));
    }
    take("GOTRUE_DB_DRIVER");
    let d = AuthSettings::default();
    let flag = |v: Option<String>, default: bool| -> Result<bool, Error> {
        match v.as_deref() {
            None => Ok(default),
            Some("true" | "TRUE" | "True" | "1" | "t") => Ok(true),
            Some("false" | "FALSE" | "False" | "0" | "f") => Ok(false),
            Some(other) => Err(bad(
                "a boolean",
                &format!("{other:?} is neither true nor false"),
            )),
        }
    };
    // GoTrue reads counts as floats (`30.0`), durations as Go durations or
    // seconds.
    let number = |name: &str, v: Option<String>, default: i64| -> Result<i64, Error> {
        match v {
            None => Ok(default),
            Some(v) => v
                .trim_end_matches('s')
                .parse::<f64>()
                .map(|n| n.round() as i64)
                .map_err(|_| bad(name, &format!("{v:?} is not a number"))),
        }
    };
    let settings = AuthSettings {
        site_url: take("GOTRUE_SITE_URL").unwrap_or(d.site_url),
        uri_allow_list: take("GOTRUE_URI_ALLOW_LIST").unwrap_or(d.uri_allow_list),
        disable_signup: flag(take("GOTRUE_DISABLE_SIGNUP"), d.disable_signup)?,
        jwt_exp: number("GOTRUE_JWT_EXP", take("GOTRUE_JWT_EXP"), d.jwt_exp)?,
        external_email_enabled: flag(
            take("GOTRUE_EXTERNAL_EMAIL_ENABLED"),
            d.external_email_enabled,
        )?,
        external_phone_enabled: flag(
            take("GOTRUE_EXTERNAL_PHONE_ENABLED"),
            d.external_phone_enabled,
        )?,
        external_anonymous_users_enabled: flag(
            take("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED"),
            d.external_anonymous_users_enabled,
        )?,
        mailer_autoconfirm: flag(take("GOTRUE_MAILER_AUTOCONFIRM"), d.mailer_autoconfirm)?,
        sms_autoconfirm: flag(take("GOTRUE_SMS_AUTOCONFIRM"), d.sms_autoconfirm)?,
        mailer_secure_email_change_enabled: flag(
            take("GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED"),
            d.mailer_secure_email_change_enabled,
        )?,
        mailer_otp_exp: number(
            "GOTRUE_MAILER_OTP_EXP",
            take("GOTRUE_MAILER_OTP_EXP"),
            d.mailer_otp_exp,
        )?,
        mailer_otp_length: number(
            "GOTRUE_MAILER_OTP_LENGTH",
            take("GOTRUE_MAILER_OTP_LENGTH"),
            d.mailer_otp_length,
        )?,
        password_min_length: number(
            "GOTRUE_PASSWORD_MIN_LENGTH",
            take("GOTRUE_PASSWORD_MIN_LENGTH"),
            d.password_min_length,
        )?,
        refresh_token_rotation_enabled: flag(
            take("GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED"),
            d.refresh_token_rotation_enabled,
        )?,
        security_refresh_token_reuse_interval: number(
            "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL",
            take("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL"),
            d.security_refresh_token_reuse_interval,
        )?,
        smtp_host: take("GOTRUE_SMTP_HOST"),
        smtp_port: take("GOTRUE_SMTP_PORT"),
        smtp_user: take("GOTRUE_SMTP_USER"),
        smtp_admin_email: take("GOTRUE_SMTP_ADMIN_EMAIL"),
        smtp_sender_name: take("GOTRUE_SMTP_SENDER_NAME"),
        smtp_max_frequency: number(
            "GOTRUE_SMTP_MAX_FREQUENCY",
            take("GOTRUE_SMTP_MAX_FREQUENCY"),
            d.smtp_max_frequency,
        )?,
        mailer_subjects_confirmation: take("GOTRUE_MAILER_SUBJECTS_CONFIRMATION"),
        mailer_subjects_recovery: take("GOTRUE_MAILER_SUBJECTS_RECOVERY"),
        mailer_subjects_magic_link: take("GOTRUE_MAILER_SUBJECTS_MAGIC_LINK"),
        mailer_subjects_invite: take("GOTRUE_MAILER_SUBJECTS_INVITE"),
        mailer_subjects_email_change: take("GOTRUE_MAILER_SUBJECTS_EMAIL_CHANGE"),
        mailer_subjects_reauthentication: take("GOTRUE_MAILER_SUBJECTS_REAUTHENTICATION"),
        // GoTrue's template variables name URLs to fetch templates from;
        // templates here are settings of their own.
        mailer_templates_confirmation_content: None,
        mailer_templates_recovery_content: None,
        mailer_templates_magic_link_content: None,
        mailer_templates_invite_content: None,
        mailer_templates_email_change_content: None,
        mailer_templates_reauthentication_content: None,
        rate_limit_email_sent: number(
            "GOTRUE_RATE_LIMIT_EMAIL_SENT",
            take("GOTRUE_RATE_LIMIT_EMAIL_SENT"),
            d.rate_limit_email_sent,
        )?,
        rate_limit_sms_sent: number(
            "GOTRUE_RATE_LIMIT_SMS_SENT",
            take("GOTRUE_RATE_LIMIT_SMS_SENT"),
            d.rate_limit_sms_sent,
        )?,
        rate_limit_verify: number(
            "GOTRUE_RATE_LIMIT_VERIFY",
            take("GOTRUE_RATE_LIMIT_VERIFY"),
            d.rate_limit_verify,
        )?,
        rate_limit_token_refresh: number(
            "GOTRUE_RATE_LIMIT_TOKEN_REFRESH",
            take("GOTRUE_RATE_LIMIT_TOKEN_REFRESH"),
            d.rate_limit_token_refresh,
        )?,
        rate_limit_otp: number(
            "GOTRUE_RATE_LIMIT_OTP",
            take("GOTRUE_RATE_LIMIT_OTP"),
            d.rate_limit_otp,
        )?,
        rate_limit_anonymous_users: number(
            "GOTRUE_RATE_LIMIT_ANONYMOUS_USERS",
            take("GOTRUE_RATE_LIMIT_ANONYMOUS_USERS"),
            d.rate_limit_anonymous_users,
        )?,
        hook_custom_access_token_enabled: flag(
            take("GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_ENABLED"),
            false,
        )?,
        hook_custom_access_token_uri: take("GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_URI"),
        hook_send_sms_enabled: flag(take("GOTRUE_HOOK_SEND_SMS_ENABLED"), false)?,
        hook_send_sms_uri: take("GOTRUE_HOOK_SEND_SMS_URI"),
        mfa_totp_enroll_enabled: flag(
            take("GOTRUE_MFA_TOTP_ENROLL_ENABLED"),
            d.mfa_totp_enroll_enabled,
        )?,
        mfa_totp_verify_enabled: flag(
            take("GOTRUE_MFA_TOTP_VERIFY_ENABLED"),
            d.mfa_totp_verify_enabled,
        )?,
        mfa_max_enrolled_factors: number(
            "GOTRUE_MFA_MAX_ENROLLED_FACTORS",
            take("GOTRUE_MFA_MAX_ENROLLED_FACTORS"),
            d.mfa_max_enrolled_factors,
        )?,
        external_github_enabled: flag(take("GOTRUE_EXTERNAL_GITHUB_ENABLED"), false)?,
        external_github_client_id: take("GOTRUE_EXTERNAL_GITHUB_CLIENT_ID"),
        external_github_url: take("GOTRUE_EXTERNAL_GITHUB_URL"),
        external_google_enabled: flag(take("GOTRUE_EXTERNAL_GOOGLE_ENABLED"), false)?,
        external_google_client_id: take("GOTRUE_EXTERNAL_GOOGLE_CLIENT_ID"),
        external_google_url: take("GOTRUE_EXTERNAL_GOOGLE_URL"),
        external_keycloak_enabled: flag(take("GOTRUE_EXTERNAL_KEYCLOAK_ENABLED"), false)?,
        external_keycloak_client_id: take("GOTRUE_EXTERNAL_KEYCLOAK_CLIENT_ID"),
        external_keycloak_url: take("GOTRUE_EXTERNAL_KEYCLOAK_URL"),
        oauth_server_enabled: flag(take("GOTRUE_OAUTH_SERVER_ENABLED"), false)?,
        oauth_server_allow_dynamic_registration: flag(
            take("GOTRUE_OAUTH_SERVER_ALLOW_DYNAMIC_REGISTRATION"),
            false,
        )?,
        oauth_server_authorization_path: take("GOTRUE_OAUTH_SERVER_AUTHORIZATION_PATH")
            .unwrap_or(d.oauth_server_authorization_path),
    };
    let mut auth_secrets = BTreeMap::new();
    // GoTrue's signing keys: a JSON array of JWKs. P-256 private keys sign
    // (the first one) and verify; an `oct` key is the HS256 secret GoTrue
    // already has in GOTRUE_JWT_SECRET.
    if let Some(keys) = take("GOTRUE_JWT_KEYS") {
        auth_secrets.insert(
            supa_core::JWT_SIGNING_KEYS.to_owned(),
            Secret::new(signing_keys(&keys).map_err(|why| bad("GOTRUE_JWT_KEYS", &why))?),
        );
    }
    if let Some(secret) = take("GOTRUE_HOOK_SEND_SMS_SECRETS") {
        auth_secrets.insert("hook_send_sms_secrets".to_owned(), Secret::new(secret));
    }
    let mut callback_url = None;
    for provider in supa_core::OAUTH_PROVIDERS {
        let upper = provider.to_uppercase();
        if let Some(secret) = take(&format!("GOTRUE_EXTERNAL_{upper}_SECRET")) {
            auth_secrets.insert(format!("external_{provider}_secret"), Secret::new(secret));
        }
        // One callback serves every provider.
        if let Some(uri) = take(&format!("GOTRUE_EXTERNAL_{upper}_REDIRECT_URI")) {
            callback_url.get_or_insert(uri);
        }
    }
    settings
        .validate()
        .map_err(|e| bad("GOTRUE_*", &e.to_string()))?;
    let port = take("PORT")
        .or_else(|| take("GOTRUE_API_PORT"))
        .map(|p| p.parse::<u16>().map_err(|_| bad("PORT", "is not a port")))
        .transpose()?
        .unwrap_or(9999);
    let host = take("GOTRUE_API_HOST").unwrap_or_else(|| "0.0.0.0".into());
    let external = take("API_EXTERNAL_URL")
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://localhost:{port}"));
    let issuer = take("GOTRUE_JWT_ISSUER").unwrap_or_else(|| external.clone());
    let confirmation_path =
        take("GOTRUE_MAILER_URLPATHS_CONFIRMATION").unwrap_or_else(|| "/verify".into());
    let verify_url = if confirmation_path.starts_with("http") {
        confirmation_path
    } else {
        format!("{external}{confirmation_path}")
    };
    let smtp_pass = take("GOTRUE_SMTP_PASS").map(Secret::new);
    let callback_url = callback_url.unwrap_or_else(|| format!("{external}/callback"));
    let ignored = vars
        .into_keys()
        .filter(|k| k.starts_with("GOTRUE_"))
        .collect();
    Ok(GoTrueEnv {
        settings,
        jwt_secret: Secret::new(jwt_secret),
        smtp_pass,
        database_url: Secret::new(database_url),
        host,
        port,
        issuer,
        verify_url,
        callback_url,
        auth_secrets,
        ignored,
    })
}

/// The ES256 private keys of a JWK array, as Supa keeps signing keys.
fn signing_keys(text: &str) -> Result<String, String> {
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of JWKs: {e}"))?;
    let mut ec = Vec::new();
    for key in keys {
        match key["kty"].as_str() {
            Some("oct") => {}
            Some("EC") => {
                supa_keys::EsSigningKey::from_jwk(&key).map_err(|e| e.to_string())?;
                ec.push(key);
            }
            other => return Err(format!("key type {other:?} is not supported (EC P-256 is)")),
        }
    }
    if ec.is_empty() {
        return Err("no EC P-256 private key to sign with".into());
    }
    Ok(serde_json::Value::Array(ec).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<GoTrueEnv, Error> {
        read(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn docker_compose_settings_are_read() {
        let e = env(&[
            (
                "GOTRUE_JWT_SECRET",
                "super-secret-jwt-token-with-at-least-32-characters",
            ),
            (
                "DATABASE_URL",
                "postgres://supabase_auth_admin:pw@db:5432/postgres",
            ),
            ("DB_NAMESPACE", "auth"),
            ("GOTRUE_API_HOST", "0.0.0.0"),
            ("GOTRUE_API_PORT", "9999"),
            ("API_EXTERNAL_URL", "http://localhost:8000/"),
            ("GOTRUE_SITE_URL", "http://localhost:3000"),
            ("GOTRUE_DISABLE_SIGNUP", "false"),
            ("GOTRUE_JWT_EXP", "3600"),
            ("GOTRUE_MAILER_AUTOCONFIRM", "true"),
            ("GOTRUE_MAILER_URLPATHS_CONFIRMATION", "/auth/v1/verify"),
            ("GOTRUE_RATE_LIMIT_EMAIL_SENT", "30.0"),
            ("GOTRUE_SMTP_PASS", "smtp-password"),
            ("GOTRUE_EXTERNAL_SKYPE_ENABLED", "false"),
            ("GOTRUE_DB_DRIVER", "postgres"),
        ])
        .unwrap();
        assert_eq!(e.port, 9999);
        assert!(e.settings.mailer_autoconfirm);
        assert_eq!(e.settings.rate_limit_email_sent, 30);
        assert_eq!(e.issuer, "http://localhost:8000");
        assert_eq!(e.verify_url, "http://localhost:8000/auth/v1/verify");
        assert_eq!(e.ignored, ["GOTRUE_EXTERNAL_SKYPE_ENABLED"]);
        assert!(!format!("{e:?}").contains("smtp-password"));
        assert!(!format!("{e:?}").contains(":pw@"));
    }

    #[test]
    fn jwt_keys_become_signing_keys() {
        let key = supa_keys::EsSigningKey::generate();
        let keys =
            serde_json::json!([{"kty": "oct", "k": "c2VjcmV0"}, key.private_jwk()]).to_string();
        let e = env(&[
            ("GOTRUE_JWT_SECRET", "s"),
            ("DATABASE_URL", "postgres://x"),
            ("GOTRUE_JWT_KEYS", &keys),
        ])
        .unwrap();
        let stored = e.auth_secrets[supa_core::JWT_SIGNING_KEYS].expose();
        let parsed = supa_keys::EsSigningKey::list_from_json(stored).unwrap();
        assert_eq!(parsed[0].public(), key.public());
        let rsa = r#"[{"kty": "RSA", "n": "x", "e": "AQAB"}]"#;
        let err = env(&[
            ("GOTRUE_JWT_SECRET", "s"),
            ("DATABASE_URL", "postgres://x"),
            ("GOTRUE_JWT_KEYS", rsa),
        ]);
        assert!(err.unwrap_err().msg.contains("GOTRUE_JWT_KEYS"));
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let base = [("GOTRUE_JWT_SECRET", "s"), ("DATABASE_URL", "postgres://x")];
        assert!(env(&base[..1]).unwrap_err().msg.contains("DATABASE_URL"));
        let mut v = base.to_vec();
        v.push(("GOTRUE_MAILER_AUTOCONFIRM", "yes"));
        assert!(env(&v).is_err());
        let mut v = base.to_vec();
        v.push(("DB_NAMESPACE", "gotrue"));
        assert!(env(&v).unwrap_err().msg.contains("DB_NAMESPACE"));
        let mut v = base.to_vec();
        v.push(("GOTRUE_JWT_EXP", "10"));
        assert!(env(&v).unwrap_err().msg.contains("jwt_exp"));
    }
}
