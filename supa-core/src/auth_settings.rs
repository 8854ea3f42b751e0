//! A project's auth settings, named as Supabase's Management API names them
//! (`/v1/projects/{ref}/config/auth`), with GoTrue's defaults. The SMTP
//! password is not here: it is write-only and travels apart, sealed.

use serde::{Deserialize, Serialize};

use crate::Error;

/// How a project's auth server behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Where links in e-mails lead by default.
    pub site_url: String,
    /// Other URLs `redirect_to` may name, comma-separated (`*` and `**`
    /// wildcards).
    pub uri_allow_list: String,
    /// No new users, except invited or created by an admin.
    pub disable_signup: bool,
    /// Access token lifetime, seconds.
    pub jwt_exp: i64,
    /// E-mail sign-in and sign-up.
    pub external_email_enabled: bool,
    /// Phone sign-in and sign-up.
    pub external_phone_enabled: bool,
    /// `signInAnonymously`.
    pub external_anonymous_users_enabled: bool,
    /// New e-mail addresses need no confirmation.
    pub mailer_autoconfirm: bool,
    /// New phone numbers need no confirmation.
    pub sms_autoconfirm: bool,
    /// An e-mail change is confirmed at both addresses.
    pub mailer_secure_email_change_enabled: bool,
    /// Lifetime of e-mailed one-time codes and links, seconds.
    pub mailer_otp_exp: i64,
    /// Digits of e-mailed one-time codes.
    pub mailer_otp_length: i64,
    /// Shortest password accepted.
    pub password_min_length: i64,
    /// A refresh token is replaced by each use.
    pub refresh_token_rotation_enabled: bool,
    /// Seconds during which a used refresh token still answers (parallel
    /// tabs) before reuse revokes the session.
    pub security_refresh_token_reuse_interval: i64,
    /// SMTP server; mail goes to the project's outbox without one.
    pub smtp_host: Option<String>,
    /// Its port (a string, as Supabase has it).
    pub smtp_port: Option<String>,
    /// Its login.
    pub smtp_user: Option<String>,
    /// The sender address.
    pub smtp_admin_email: Option<String>,
    /// The sender name.
    pub smtp_sender_name: Option<String>,
    /// Least seconds between two e-mails to one address.
    pub smtp_max_frequency: i64,
    /// Subject of the sign-up confirmation e-mail (GoTrue's when null).
    pub mailer_subjects_confirmation: Option<String>,
    /// Subject of the recovery e-mail.
    pub mailer_subjects_recovery: Option<String>,
    /// Subject of the magic link e-mail.
    pub mailer_subjects_magic_link: Option<String>,
    /// Subject of the invitation e-mail.
    pub mailer_subjects_invite: Option<String>,
    /// Subject of the e-mail change e-mail.
    pub mailer_subjects_email_change: Option<String>,
    /// Subject of the reauthentication e-mail.
    pub mailer_subjects_reauthentication: Option<String>,
    /// Body template (Go template syntax, `{{ .ConfirmationURL }}`...).
    pub mailer_templates_confirmation_content: Option<String>,
    /// Body template of the recovery e-mail.
    pub mailer_templates_recovery_content: Option<String>,
    /// Body template of the magic link e-mail.
    pub mailer_templates_magic_link_content: Option<String>,
    /// Body template of the invitation e-mail.
    pub mailer_templates_invite_content: Option<String>,
    /// Body template of the e-mail change e-mail.
    pub mailer_templates_email_change_content: Option<String>,
    /// Body template of the reauthentication e-mail.
    pub mailer_templates_reauthentication_content: Option<String>,
    /// E-mails sent per hour.
    pub rate_limit_email_sent: i64,
    /// Text messages sent per hour.
    pub rate_limit_sms_sent: i64,
    /// `/verify` requests per 5 minutes and IP.
    pub rate_limit_verify: i64,
    /// Token refreshes per 5 minutes and IP.
    pub rate_limit_token_refresh: i64,
    /// One-time code requests per 5 minutes and IP.
    pub rate_limit_otp: i64,
    /// Anonymous sign-ins per hour and IP.
    pub rate_limit_anonymous_users: i64,
    /// The custom access-token hook is called.
    pub hook_custom_access_token_enabled: bool,
    /// `pg-functions://postgres/{schema}/{function}`.
    pub hook_custom_access_token_uri: Option<String>,
    /// The send-SMS hook is called.
    pub hook_send_sms_enabled: bool,
    /// `https://...` or `pg-functions://postgres/{schema}/{function}`.
    pub hook_send_sms_uri: Option<String>,
    /// TOTP factors may be enrolled.
    pub mfa_totp_enroll_enabled: bool,
    /// TOTP factors may be verified.
    pub mfa_totp_verify_enabled: bool,
    /// Factors one user may have.
    pub mfa_max_enrolled_factors: i64,
    /// Sign-in with GitHub.
    pub external_github_enabled: bool,
    /// The GitHub OAuth app's client id (its secret is write-only).
    pub external_github_client_id: Option<String>,
    /// A GitHub Enterprise server instead of github.com.
    pub external_github_url: Option<String>,
    /// Sign-in with Google.
    pub external_google_enabled: bool,
    /// The Google OAuth client id.
    pub external_google_client_id: Option<String>,
    /// Another OpenID issuer than accounts.google.com (tests, proxies).
    pub external_google_url: Option<String>,
    /// Sign-in with Keycloak, or any OpenID Connect provider.
    pub external_keycloak_enabled: bool,
    /// Its client id.
    pub external_keycloak_client_id: Option<String>,
    /// Its issuer (`https://host/realms/name`), where discovery is.
    pub external_keycloak_url: Option<String>,
    /// The project is an OAuth 2.1 authorization server for third-party
    /// clients (`/oauth/authorize`, `/oauth/token`).
    pub oauth_server_enabled: bool,
    /// Clients may register themselves (RFC 7591).
    pub oauth_server_allow_dynamic_registration: bool,
    /// The app's consent page, on the site URL.
    pub oauth_server_authorization_path: String,
}

/// The OAuth providers a project may enable, as Supabase names them.
pub const OAUTH_PROVIDERS: [&str; 3] = ["github", "google", "keycloak"];

/// Where a project's ES256 signing keys travel in
/// [`crate::ProjectConfig::auth_secrets`]: a JSON array of private JWKs,
/// the current one first. Made by the control plane, never by a PATCH.
pub const JWT_SIGNING_KEYS: &str = "jwt_signing_keys";

/// The write-only auth settings besides `smtp_pass`: never shown, kept
/// sealed apart from the rest.
pub const AUTH_SECRET_FIELDS: [&str; 4] = [
    "external_github_secret",
    "external_google_secret",
    "external_keycloak_secret",
    "hook_send_sms_secrets",
];

impl AuthSettings {
    /// Whether `provider` is enabled, its client id and its URL override.
    pub fn provider(&self, provider: &str) -> Option<(bool, Option<&str>, Option<&str>)> {
        let (enabled, id, url) = match provider {
            "github" => (
                self.external_github_enabled,
                &self.external_github_client_id,
                &self.external_github_url,
            ),
            "google" => (
                self.external_google_enabled,
                &self.external_google_client_id,
                &self.external_google_url,
            ),
            "keycloak" => (
                self.external_keycloak_enabled,
                &self.external_keycloak_client_id,
                &self.external_keycloak_url,
            ),
            _ => return None,
        };
        Some((enabled, id.as_deref(), url.as_deref()))
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            site_url: "http://localhost:3000".into(),
            uri_allow_list: String::new(),
            disable_signup: false,
            jwt_exp: 3600,
            external_email_enabled: true,
            external_phone_enabled: false,
            external_anonymous_users_enabled: false,
            mailer_autoconfirm: false,
            sms_autoconfirm: false,
            mailer_secure_email_change_enabled: true,
            mailer_otp_exp: 3600,
            mailer_otp_length: 6,
            password_min_length: 6,
            refresh_token_rotation_enabled: true,
            security_refresh_token_reuse_interval: 10,
            smtp_host: None,
            smtp_port: None,
            smtp_user: None,
            smtp_admin_email: None,
            smtp_sender_name: None,
            smtp_max_frequency: 60,
            mailer_subjects_confirmation: None,
            mailer_subjects_recovery: None,
            mailer_subjects_magic_link: None,
            mailer_subjects_invite: None,
            mailer_subjects_email_change: None,
            mailer_subjects_reauthentication: None,
            mailer_templates_confirmation_content: None,
            mailer_templates_recovery_content: None,
            mailer_templates_magic_link_content: None,
            mailer_templates_invite_content: None,
            mailer_templates_email_change_content: None,
            mailer_templates_reauthentication_content: None,
            rate_limit_email_sent: 2,
            rate_limit_sms_sent: 30,
            rate_limit_verify: 30,
            rate_limit_token_refresh: 150,
            rate_limit_otp: 30,
            rate_limit_anonymous_users: 30,
            hook_custom_access_token_enabled: false,
            hook_custom_access_token_uri: None,
            hook_send_sms_enabled: false,
            hook_send_sms_uri: None,
            mfa_totp_enroll_enabled: true,
            mfa_totp_verify_enabled: true,
            mfa_max_enrolled_factors: 10,
            external_github_enabled: false,
            external_github_client_id: None,
            external_github_url: None,
            external_google_enabled: false,
            external_google_client_id: None,
            external_google_url: None,
            external_keycloak_enabled: false,
            external_keycloak_client_id: None,
            external_keycloak_url: None,
            oauth_server_enabled: false,
            oauth_server_allow_dynamic_registration: false,
            oauth_server_authorization_path: "/oauth/consent".into(),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Result<(), Error> {
    Err(Error::InvalidSetting {
        field,
        reason: reason.into(),
    })
}

fn check_range(
    field: &'static str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<(), Error> {
    if range.contains(&value) {
        Ok(())
    } else {
        invalid(
            field,
            format!(
                "{value} is not between {} and {}",
                range.start(),
                range.end()
            ),
        )
    }
}

/// An absolute `http(s)` URL with a host.
fn is_web_url(s: &str) -> bool {
    url::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// Where a hook runs: a function of the project's database, HTTPS, or
/// plain HTTP on this machine (a local service, a test).
fn is_hook_uri(s: &str) -> bool {
    match s.strip_prefix("pg-functions://postgres/") {
        Some(rest) => {
            let parts: Vec<&str> = rest.split('/').collect();
            parts.len() == 2 && parts.iter().all(|p| !p.is_empty())
        }
        None => url::Url::parse(s).is_ok_and(|u| match u.scheme() {
            "https" => u.host_str().is_some(),
            "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
            _ => false,
        }),
    }
}

impl AuthSettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if !is_web_url(&self.site_url) {
            return invalid(
                "site_url",
                format!("{:?} is not an http(s) URL", self.site_url),
            );
        }
        for item in self.uri_allow_list.split(',').map(str::trim) {
            if !self.uri_allow_list.trim().is_empty() && item.is_empty() {
                return invalid("uri_allow_list", "has an empty item");
            }
            if item.chars().any(char::is_control) {
                return invalid("uri_allow_list", "has a control character");
            }
        }
        // GoTrue accepts at most a week.
        check_range("jwt_exp", self.jwt_exp, 30..=604_800)?;
        check_range("mailer_otp_exp", self.mailer_otp_exp, 60..=86_400)?;
        check_range("mailer_otp_length", self.mailer_otp_length, 6..=10)?;
        // bcrypt reads 72 bytes at most.
        check_range("password_min_length", self.password_min_length, 6..=72)?;
        check_range(
            "security_refresh_token_reuse_interval",
            self.security_refresh_token_reuse_interval,
            0..=3600,
        )?;
        check_range("smtp_max_frequency", self.smtp_max_frequency, 0..=86_400)?;
        for (field, value) in [
            ("rate_limit_email_sent", self.rate_limit_email_sent),
            ("rate_limit_sms_sent", self.rate_limit_sms_sent),
            ("rate_limit_verify", self.rate_limit_verify),
            ("rate_limit_token_refresh", self.rate_limit_token_refresh),
            ("rate_limit_otp", self.rate_limit_otp),
            (
                "rate_limit_anonymous_users",
                self.rate_limit_anonymous_users,
            ),
        ] {
            check_range(field, value, 1..=1_000_000)?;
        }
        check_range(
            "mfa_max_enrolled_factors",
            self.mfa_max_enrolled_factors,
            1..=100,
        )?;
        if let Some(port) = &self.smtp_port
            && port.parse::<u16>().map_or(true, |p| p == 0)
        {
            return invalid("smtp_port", format!("{port:?} is not a port (1-65535)"));
        }
        if let Some(host) = &self.smtp_host
            && (host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/'))
        {
            return invalid("smtp_host", format!("{host:?} is not a host name"));
        }
        if let Some(email) = &self.smtp_admin_email
            && !email.contains('@')
        {
            return invalid(
                "smtp_admin_email",
                format!("{email:?} is not an e-mail address"),
            );
        }
        for (field, uri) in [
            (
                "hook_custom_access_token_uri",
                &self.hook_custom_access_token_uri,
            ),
            ("hook_send_sms_uri", &self.hook_send_sms_uri),
        ] {
            if let Some(uri) = uri
                && !is_hook_uri(uri)
            {
                return invalid(
                    field,
                    format!(
                        "{uri:?} is neither pg-functions://postgres/{{schema}}/{{function}} nor https://"
                    ),
                );
            }
        }
        if self.hook_custom_access_token_enabled && self.hook_custom_access_token_uri.is_none() {
            return invalid(
                "hook_custom_access_token_uri",
                "is required when the hook is enabled",
            );
        }
        if self.hook_send_sms_enabled && self.hook_send_sms_uri.is_none() {
            return invalid("hook_send_sms_uri", "is required when the hook is enabled");
        }
        for (field, url) in [
            ("external_github_url", &self.external_github_url),
            ("external_google_url", &self.external_google_url),
            ("external_keycloak_url", &self.external_keycloak_url),
        ] {
            if let Some(url) = url
                && !is_web_url(url)
            {
                return invalid(field, format!("{url:?} is not an http(s) URL"));
            }
        }
        if self.external_keycloak_enabled && self.external_keycloak_url.is_none() {
            return invalid(
                "external_keycloak_url",
                "is required when Keycloak sign-in is enabled",
            );
        }
        if !self.oauth_server_authorization_path.starts_with('/')
            || self
                .oauth_server_authorization_path
                .contains(char::is_whitespace)
        {
            return invalid(
                "oauth_server_authorization_path",
                "must be a path starting with /",
            );
        }
        for provider in OAUTH_PROVIDERS {
            if let Some((true, None, _)) = self.provider(provider) {
                return invalid(
                    match provider {
                        "github" => "external_github_client_id",
                        "google" => "external_google_client_id",
                        _ => "external_keycloak_client_id",
                    },
                    "is required when the provider is enabled",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(s: AuthSettings) -> &'static str {
        match s.validate() {
            Err(Error::InvalidSetting { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        AuthSettings::default().validate().unwrap();
        let d = AuthSettings::default;
        assert_eq!(
            field_of(AuthSettings {
                site_url: "ftp://x".into(),
                ..d()
            }),
            "site_url"
        );
        assert_eq!(field_of(AuthSettings { jwt_exp: 10, ..d() }), "jwt_exp");
        assert_eq!(
            field_of(AuthSettings {
                password_min_length: 100,
                ..d()
            }),
            "password_min_length"
        );
        assert_eq!(
            field_of(AuthSettings {
                smtp_port: Some("smtp".into()),
                ..d()
            }),
            "smtp_port"
        );
        assert_eq!(
            field_of(AuthSettings {
                hook_custom_access_token_enabled: true,
                ..d()
            }),
            "hook_custom_access_token_uri"
        );
        assert_eq!(
            field_of(AuthSettings {
                hook_custom_access_token_uri: Some("pg-functions://postgres/public".into()),
                ..d()
            }),
            "hook_custom_access_token_uri"
        );
        AuthSettings {
            hook_custom_access_token_enabled: true,
            hook_custom_access_token_uri: Some("pg-functions://postgres/public/claims".into()),
            uri_allow_list: "http://localhost:3000/**, https://app.example.com".into(),
            smtp_port: Some("587".into()),
            ..d()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn missing_fields_take_the_defaults() {
        let s: AuthSettings = serde_json::from_str(r#"{"jwt_exp": 600}"#).unwrap();
        assert_eq!(s.jwt_exp, 600);
        assert_eq!(s.site_url, "http://localhost:3000");
    }
}
