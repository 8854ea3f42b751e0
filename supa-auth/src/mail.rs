//! The auth server's e-mails: GoTrue's six templates (or the project's
//! own, in Go template syntax), queued in `auth.supa_outbox` inside the
//! transaction that makes their token, then delivered over SMTP after it
//! commits when the project has SMTP settings. Without them the outbox
//! is the project's mail catcher.

use std::time::Duration;

use lettre::AsyncTransport as _;
use serde_json::Value;
use supa_core::AuthSettings;

use crate::{Auth, AuthProject, Error};

/// An e-mail the auth server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Confirmation,
    Recovery,
    MagicLink,
    Invite,
    EmailChange,
    Reauthentication,
}

impl Kind {
    /// As the outbox and the settings (`mailer_subjects_{name}`) name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Recovery => "recovery",
            Self::MagicLink => "magic_link",
            Self::Invite => "invite",
            Self::EmailChange => "email_change",
            Self::Reauthentication => "reauthentication",
        }
    }

    fn subject(self, s: &AuthSettings) -> String {
        let (custom, default) = match self {
            Self::Confirmation => (&s.mailer_subjects_confirmation, "Confirm Your Email"),
            Self::Recovery => (&s.mailer_subjects_recovery, "Reset Your Password"),
            Self::MagicLink => (&s.mailer_subjects_magic_link, "Your Magic Link"),
            Self::Invite => (&s.mailer_subjects_invite, "You have been invited"),
            Self::EmailChange => (&s.mailer_subjects_email_change, "Confirm Email Change"),
            Self::Reauthentication => (
                &s.mailer_subjects_reauthentication,
                "Confirm reauthentication",
            ),
        };
        custom.clone().unwrap_or_else(|| default.to_owned())
    }

    fn template(self, s: &AuthSettings) -> String {
        let (custom, default) = match self {
            Self::Confirmation => (
                &s.mailer_templates_confirmation_content,
                "<h2>Confirm your email</h2>\n\n<p>Follow this link to confirm your email:</p>\n\
                 <p><a href=\"{{ .ConfirmationURL }}\">Confirm your email address</a></p>\n\
                 <p>Alternatively, enter the code: {{ .Token }}</p>\n",
            ),
            Self::Recovery => (
                &s.mailer_templates_recovery_content,
                "<h2>Reset password</h2>\n\n<p>Follow this link to reset the password for your user:</p>\n\
                 <p><a href=\"{{ .ConfirmationURL }}\">Reset password</a></p>\n\
                 <p>Alternatively, enter the code: {{ .Token }}</p>\n",
            ),
            Self::MagicLink => (
                &s.mailer_templates_magic_link_content,
                "<h2>Magic Link</h2>\n\n<p>Follow this link to login:</p>\n\
                 <p><a href=\"{{ .ConfirmationURL }}\">Log In</a></p>\n\
                 <p>Alternatively, enter the code: {{ .Token }}</p>\n",
            ),
            Self::Invite => (
                &s.mailer_templates_invite_content,
                "<h2>You have been invited</h2>\n\n<p>You have been invited to create a user on \
                 {{ .SiteURL }}. Follow this link to accept the invite:</p>\n\
                 <p><a href=\"{{ .ConfirmationURL }}\">Accept the invite</a></p>\n\
                 <p>Alternatively, enter the code: {{ .Token }}</p>\n",
            ),
            Self::EmailChange => (
                &s.mailer_templates_email_change_content,
                "<h2>Confirm email address change</h2>\n\n<p>Follow this link to confirm the update \
                 of your email address from {{ .Email }} to {{ .NewEmail }}:</p>\n\
                 <p><a href=\"{{ .ConfirmationURL }}\">Change email address</a></p>\n\
                 <p>Alternatively, enter the code: {{ .Token }}</p>\n",
            ),
            Self::Reauthentication => (
                &s.mailer_templates_reauthentication_content,
                "<h2>Confirm reauthentication</h2>\n\n<p>Enter the code: {{ .Token }}</p>\n",
            ),
        };
        custom.clone().unwrap_or_else(|| default.to_owned())
    }
}

/// What a template may name.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub confirmation_url: String,
    pub token: &'a str,
    pub token_hash: &'a str,
    pub site_url: &'a str,
    pub redirect_to: &'a str,
    pub email: &'a str,
    pub new_email: &'a str,
    pub data: Option<&'a Value>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills `{{ .Name }}` (and `{{ .Data.key }}`) as Go's templates do,
/// values HTML-escaped. Actions other than a field (`if`, `range`...)
/// render as nothing: they are not supported.
pub(crate) fn render(template: &str, f: &Fields<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let action = rest[start + 2..start + len].trim_matches('-').trim();
        let value = match action {
            ".ConfirmationURL" => Some(f.confirmation_url.clone()),
            ".Token" => Some(f.token.to_owned()),
            ".TokenHash" => Some(f.token_hash.to_owned()),
            ".SiteURL" => Some(f.site_url.to_owned()),
            ".RedirectTo" => Some(f.redirect_to.to_owned()),
            ".Email" => Some(f.email.to_owned()),
            ".NewEmail" => Some(f.new_email.to_owned()),
            other => other.strip_prefix(".Data.").and_then(|key| {
                f.data.and_then(|d| d.get(key)).map(|v| match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
            }),
        };
        if let Some(v) = value {
            out.push_str(&escape(&v));
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Queues an e-mail of `kind` to `to` in the caller's transaction; its id
/// is what [`deliver`] sends once that commits. Refused with 429 when the
/// project has sent `rate_limit_email_sent` e-mails in the last hour.
pub(crate) async fn queue(
    db: &impl deadpool_postgres::GenericClient,
    p: &AuthProject,
    kind: Kind,
    to: &str,
    fields: &Fields<'_>,
) -> Result<i64, Error> {
    let sent: i64 = db
        .query_one(
            "SELECT count(*) FROM auth.supa_outbox WHERE created_at > now() - interval '1 hour'",
            &[],
        )
        .await?
        .get(0);
    if sent >= p.settings.rate_limit_email_sent {
        return Err(Error::new(
            429,
            "over_email_send_rate_limit",
            "email rate limit exceeded",
        ));
    }
    let subject = render(&kind.subject(&p.settings), fields);
    let body = render(&kind.template(&p.settings), fields);
    let row = db
        .query_one(
            "INSERT INTO auth.supa_outbox (kind, recipient, subject, body, smtp)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&kind.name(), &to, &subject, &body, &p.smtp().is_some()],
        )
        .await?;
    Ok(row.get(0))
}

/// How a project's e-mails leave: its SMTP server.
#[derive(Clone)]
pub(crate) struct Smtp {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<supa_core::Secret<String>>,
    pub from: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Delays between delivery attempts: three tries within about a minute,
/// then the outbox row keeps the last error for the operator.
const RETRIES: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(30)];

/// Sends the queued e-mails `ids` over the project's SMTP server in the
/// background (the API does not wait for it), recording each outcome.
pub(crate) fn deliver(auth: &Auth, p: &AuthProject, ids: Vec<i64>) {
    let Some(smtp) = p.smtp() else { return };
    if ids.is_empty() {
        return;
    }
    let auth = auth.clone();
    let p = p.clone();
    tokio::spawn(async move {
        for id in ids {
            if let Err(e) = deliver_one(&auth, &p, &smtp, id).await {
                crate::error::log(&format!("project {}: mail {id}: {e}", p.project_ref));
            }
        }
    });
}

async fn deliver_one(auth: &Auth, p: &AuthProject, smtp: &Smtp, id: i64) -> Result<(), Error> {
    let row = auth
        .client(p)
        .await?
        .query_one(
            "SELECT recipient, subject, body FROM auth.supa_outbox WHERE id = $1",
            &[&id],
        )
        .await?;
    let (to, subject, body): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let mut attempt = 0;
    loop {
        let outcome = send(smtp, &to, &subject, &body).await;
        let client = auth.client(p).await?;
        match outcome {
            Ok(()) => {
                client
                    .execute(
                        "UPDATE auth.supa_outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL
                         WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                return Ok(());
            }
            Err(e) => {
                // lettre's errors name the server and its answer, never
                // the credentials.
                crate::error::log(&format!(
                    "project {}: sending mail {id} over {}:{} failed: {e}",
                    p.project_ref, smtp.host, smtp.port
                ));
                client
                    .execute(
                        "UPDATE auth.supa_outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                        &[&id, &e],
                    )
                    .await?;
                let Some(wait) = RETRIES.get(attempt) else {
                    return Ok(());
                };
                attempt += 1;
                drop(client);
                tokio::time::sleep(*wait).await;
            }
        }
    }
}

/// One SMTP delivery: implicit TLS on 465, STARTTLS when the server
/// offers it elsewhere (as GoTrue), plain otherwise (a local relay).
async fn send(smtp: &Smtp, to: &str, subject: &str, body: &str) -> Result<(), String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let message = lettre::Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("sender: {e}"))?)
        .to(to.parse().map_err(|e| format!("recipient: {e}"))?)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_HTML)
        .body(body.to_owned())
        .map_err(|e| e.to_string())?;
    let params = TlsParameters::new(smtp.host.clone()).map_err(|e| e.to_string())?;
    let tls = if smtp.port == 465 {
        Tls::Wrapper(params)
    } else {
        Tls::Opportunistic(params)
    };
    let mut transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(10)));
    if let (Some(user), Some(pass)) = (&smtp.user, &smtp.pass) {
        transport = transport.credentials(Credentials::new(user.clone(), pass.expose().clone()));
    }
    transport
        .build()
        .send(message)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_fields_and_escape_values() {
        let data = serde_json::json!({"name": "<Ann>"});
        let f = Fields {
            confirmation_url: "http://x/verify?token=a&type=signup".into(),
            token: "123456",
            email: "a@x.io",
            data: Some(&data),
            ..Fields::default()
        };
        assert_eq!(
            render(
                "<a href=\"{{ .ConfirmationURL }}\">{{.Token}}</a> {{- .Data.name -}} {{ if .X }}",
                &f
            ),
            "<a href=\"http://x/verify?token=a&amp;type=signup\">123456</a> &lt;Ann&gt; "
        );
        assert_eq!(render("no {{ end", &f), "no {{ end");
        let s = AuthSettings::default();
        let body = render(&Kind::Confirmation.template(&s), &f);
        assert!(body.contains("123456") && body.contains("token=a&amp;type=signup"));
        assert_eq!(Kind::Recovery.subject(&s), "Reset Your Password");
    }
}
