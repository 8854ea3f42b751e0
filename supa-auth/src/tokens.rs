//! Access tokens: GoTrue's claims for a session (its assurance level and
//! how it was authenticated, from the database), passed through the
//! project's custom access-token hook when it has one, signed with the
//! project's JWT secret.

use deadpool_postgres::GenericClient;
use serde_json::{Map, Value, json};

use crate::store::UserRow;
use crate::{AuthProject, Error};

/// The claims every token must keep, whatever a hook does.
const REQUIRED: [&str; 10] = [
    "aud",
    "exp",
    "iat",
    "sub",
    "email",
    "phone",
    "role",
    "aal",
    "session_id",
    "is_anonymous",
];

/// The session answer (`access_token`, `refresh_token`, `user`...) of
/// `user` in `session_id`.
pub(crate) async fn issue(
    db: &impl GenericClient,
    p: &AuthProject,
    user: &UserRow,
    session_id: &str,
    refresh: &str,
) -> Result<Value, Error> {
    let row = db
        .query_one(
            &crate::store::prepared(db, "SELECT coalesce(s.aal::text, 'aal1'),
                    coalesce((SELECT jsonb_agg(jsonb_build_object(
                                'method', a.authentication_method,
                                'timestamp', extract(epoch FROM a.created_at)::int8)
                              ORDER BY a.created_at DESC)
                              FROM auth.mfa_amr_claims a WHERE a.session_id = s.id), '[]')::text,
                    (SELECT o.client_id::text FROM auth.supa_oauth_sessions o WHERE o.session_id = s.id)
             FROM auth.sessions s WHERE s.id = $1::text::uuid").await?,
            &[&session_id],
        )
        .await?;
    let aal: String = row.get(0);
    let amr: Value = serde_json::from_str(row.get::<_, &str>(1)).unwrap_or_else(|_| json!([]));
    // A session of an OAuth client names it, as GoTrue's tokens do.
    let client_id: Option<String> = row.get(2);
    let now = supa_keys::unix_now();
    let exp = now + p.settings.jwt_exp;
    let u = &user.json;
    let mut claims = Map::new();
    for (k, v) in [
        ("aud", json!("authenticated")),
        ("exp", json!(exp)),
        ("iat", json!(now)),
        ("iss", json!(p.issuer)),
        ("sub", json!(user.id)),
        ("email", u["email"].clone()),
        ("phone", u["phone"].clone()),
        ("app_metadata", u["app_metadata"].clone()),
        ("user_metadata", u["user_metadata"].clone()),
        ("role", json!("authenticated")),
        ("aal", json!(aal)),
        ("amr", amr.clone()),
        ("session_id", json!(session_id)),
        ("is_anonymous", u["is_anonymous"].clone()),
    ] {
        claims.insert(k.into(), v);
    }
    if let Some(client_id) = client_id {
        claims.insert("client_id".into(), json!(client_id));
    }
    let method = amr
        .get(0)
        .and_then(|a| a["method"].as_str())
        .unwrap_or("password")
        .to_owned();
    let claims = match hook_function(p)? {
        Some(function) => run_hook(db, &function, &user.id, claims, &method).await?,
        None => claims,
    };
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(exp);
    Ok(json!({
        "access_token": match p.signing_keys.first() {
            Some(key) => key.sign_claims(&claims),
            None => supa_keys::sign_claims(&p.jwt_key, &claims),
        },
        "token_type": "bearer",
        "expires_in": exp - now,
        "expires_at": exp,
        "refresh_token": refresh,
        "user": u,
    }))
}

/// The hook's function, quoted, when the project has one enabled.
fn hook_function(p: &AuthProject) -> Result<Option<String>, Error> {
    let s = &p.settings;
    if !s.hook_custom_access_token_enabled {
        return Ok(None);
    }
    let uri = s.hook_custom_access_token_uri.as_deref().unwrap_or("");
    // An HTTPS hook is not run here: refusing beats a token without the
    // claims the project counts on.
    crate::hooks::pg_function(uri).map(Some).ok_or_else(|| {
        Error::new(
            500,
            "hook_unsupported",
            "Only pg-functions:// access token hooks are supported",
        )
    })
}

/// Runs the custom access-token hook as Supabase does: the function gets
/// `{user_id, claims, authentication_method}` and answers `{claims}` or
/// `{error: {http_code, message}}`.
async fn run_hook(
    db: &impl GenericClient,
    function: &str,
    user: &str,
    claims: Map<String, Value>,
    method: &str,
) -> Result<Map<String, Value>, Error> {
    let event = json!({"user_id": user, "claims": claims, "authentication_method": method});
    let hook_error = |msg: String| Error::new(500, "unexpected_failure", msg);
    let answer = crate::hooks::call(db, function, &event)
        .await
        .map_err(|e| Error::new(e.status.unwrap_or(500), "unexpected_failure", e.message))?;
    let Some(Value::Object(out)) = answer.get("claims").cloned() else {
        return Err(hook_error(
            "output claims do not conform to the expected schema: claims is required".into(),
        ));
    };
    if let Some(missing) = REQUIRED.iter().find(|k| !out.contains_key(**k)) {
        return Err(hook_error(format!(
            "output claims do not conform to the expected schema: {missing} is required"
        )));
    }
    Ok(out)
}
