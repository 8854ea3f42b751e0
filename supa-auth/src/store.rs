//! The auth schema's rows as GoTrue writes them: users with their e-mail
//! identity, sessions, and refresh tokens chained by `parent` within a
//! session. Every statement binds its values; the session runs as
//! `supabase_auth_admin` with `search_path = auth`.

use deadpool_postgres::GenericClient;
use serde_json::Value;

use crate::Error;

/// The user as GoTrue's API shows it (`/user`, sessions, `/signup`), built
/// in PostgreSQL so timestamps are PostgreSQL's ISO 8601.
const USER_JSON: &str = "
jsonb_build_object(
  'id', u.id, 'aud', coalesce(u.aud, ''), 'role', coalesce(u.role, ''),
  'email', coalesce(u.email, ''), 'email_confirmed_at', u.email_confirmed_at,
  'phone', coalesce(u.phone, ''), 'confirmed_at', u.confirmed_at,
  'last_sign_in_at', u.last_sign_in_at,
  'app_metadata', coalesce(u.raw_app_meta_data, '{}'),
  'user_metadata', coalesce(u.raw_user_meta_data, '{}'),
  'identities', coalesce((
    SELECT jsonb_agg(jsonb_build_object(
      'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id,
      'identity_data', i.identity_data, 'provider', i.provider,
      'last_sign_in_at', i.last_sign_in_at, 'created_at', i.created_at,
      'updated_at', i.updated_at, 'email', i.email) ORDER BY i.created_at)
    FROM auth.identities i WHERE i.user_id = u.id), '[]'),
  'created_at', u.created_at, 'updated_at', u.updated_at,
  'is_anonymous', u.is_anonymous)";

/// A user row's fields the server decides with.
#[derive(Debug)]
pub(crate) struct UserRow {
    pub id: String,
    pub encrypted_password: Option<String>,
    pub confirmed: bool,
    pub banned: bool,
    pub json: Value,
}

fn user_row(row: &tokio_postgres::Row) -> UserRow {
    UserRow {
        id: row.get("id"),
        encrypted_password: row.get("encrypted_password"),
        confirmed: row.get("confirmed"),
        banned: row.get("banned"),
        json: serde_json::from_str(row.get::<_, &str>("json")).unwrap_or_default(),
    }
}

fn user_select(condition: &str) -> String {
    format!(
        "SELECT u.id::text AS id, u.encrypted_password, u.email_confirmed_at IS NOT NULL AS confirmed,
                coalesce(u.banned_until > now(), false) AS banned, ({USER_JSON})::text AS json
         FROM auth.users u WHERE {condition} AND u.deleted_at IS NULL"
    )
}

/// The user with this e-mail (compared lower-cased), if any.
pub(crate) async fn user_by_email(
    db: &impl GenericClient,
    email: &str,
) -> Result<Option<UserRow>, Error> {
    let row = db
        .query_opt(
            &user_select("lower(u.email) = lower($1) AND NOT u.is_sso_user"),
            &[&email],
        )
        .await?;
    Ok(row.as_ref().map(user_row))
}

/// The user of this id, if any.
pub(crate) async fn user_by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<UserRow>, Error> {
    let row = db
        .query_opt(&user_select("u.id = $1::text::uuid"), &[&id])
        .await?;
    Ok(row.as_ref().map(user_row))
}

/// Inserts an e-mail user and its identity; `confirmed` stamps the
/// confirmation now (autoconfirm).
pub(crate) async fn insert_user(
    db: &impl GenericClient,
    email: &str,
    password_hash: &str,
    metadata: &Value,
    confirmed: bool,
) -> Result<UserRow, Error> {
    let row = db
        .query_one(
            "WITH u AS (
               INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password,
                                       email_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                                       is_super_admin, created_at, updated_at)
               VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated',
                       'authenticated', lower($1), $2, CASE WHEN $4 THEN now() END,
                       '{\"provider\": \"email\", \"providers\": [\"email\"]}', $3::text::jsonb, false, now(), now())
               RETURNING id, email, email_confirmed_at)
             INSERT INTO auth.identities (provider_id, user_id, identity_data, provider,
                                          last_sign_in_at, created_at, updated_at)
             SELECT u.id::text, u.id,
                    jsonb_build_object('sub', u.id::text, 'email', u.email,
                                       'email_verified', u.email_confirmed_at IS NOT NULL,
                                       'phone_verified', false),
                    'email', now(), now(), now()
             FROM u RETURNING user_id::text",
            &[&email, &password_hash, &metadata.to_string(), &confirmed],
        )
        .await?;
    let id: String = row.get(0);
    user_by_id(db, &id)
        .await?
        .ok_or_else(|| Error::internal("a user just inserted is missing"))
}

/// A new session of `user` and its first refresh token.
pub(crate) async fn start_session(
    db: &impl GenericClient,
    user: &str,
    refresh_token: &str,
) -> Result<String, Error> {
    let row = db
        .query_one(
            "WITH s AS (
               INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal)
               VALUES (gen_random_uuid(), $1::text::uuid, now(), now(), 'aal1') RETURNING id, user_id),
             t AS (
               INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
               SELECT '00000000-0000-0000-0000-000000000000', $2, s.user_id::text, false, now(), now(), s.id FROM s),
             u AS (UPDATE auth.users SET last_sign_in_at = now() WHERE id = $1::text::uuid)
             SELECT id::text FROM s",
            &[&user, &refresh_token],
        )
        .await?;
    Ok(row.get(0))
}

/// A refresh token's state.
#[derive(Debug)]
pub(crate) struct RefreshRow {
    pub id: i64,
    pub user: String,
    pub session: Option<String>,
    pub revoked: bool,
    /// Seconds since it was last changed (revoked).
    pub age: f64,
}

/// The refresh token `token`, locked for update.
pub(crate) async fn refresh_token(
    db: &impl GenericClient,
    token: &str,
) -> Result<Option<RefreshRow>, Error> {
    let row = db
        .query_opt(
            "SELECT id, user_id, session_id::text AS session, coalesce(revoked, false) AS revoked,
                    extract(epoch FROM now() - coalesce(updated_at, created_at))::float8 AS age
             FROM auth.refresh_tokens WHERE token = $1 FOR UPDATE",
            &[&token],
        )
        .await?;
    Ok(row.map(|r| RefreshRow {
        id: r.get("id"),
        user: r.get("user_id"),
        session: r.get("session"),
        revoked: r.get("revoked"),
        age: r.get("age"),
    }))
}

/// The live child of a used token, if its rotation is still recent enough
/// to hand out again (parallel refreshes within the reuse interval).
pub(crate) async fn child_of(
    db: &impl GenericClient,
    token: &str,
) -> Result<Option<String>, Error> {
    let row = db
        .query_opt(
            "SELECT token FROM auth.refresh_tokens WHERE parent = $1 AND NOT coalesce(revoked, false)
             ORDER BY id DESC LIMIT 1",
            &[&token],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Revokes `old` and issues `new` in its session, its child.
pub(crate) async fn rotate(
    db: &impl GenericClient,
    old: &RefreshRow,
    old_token: &str,
    new: &str,
) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = $1",
        &[&old.id],
    )
    .await?;
    db.execute(
        "INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
         VALUES ('00000000-0000-0000-0000-000000000000', $1, $2, false, now(), now(), $3, $4::text::uuid)",
        &[&new, &old.user, &old_token, &old.session],
    )
    .await?;
    db.execute(
        "UPDATE auth.sessions SET refreshed_at = now()::timestamp, updated_at = now() WHERE id = $1::text::uuid",
        &[&old.session],
    )
    .await?;
    Ok(())
}

/// Whether the session exists.
pub(crate) async fn session_exists(db: &impl GenericClient, session: &str) -> Result<bool, Error> {
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM auth.sessions WHERE id = $1::text::uuid)",
            &[&session],
        )
        .await?;
    Ok(row.get(0))
}

/// Ends sessions of `user`: `Some(session)` alone, all but it (`except`),
/// or all. Their refresh tokens go with them.
pub(crate) async fn end_sessions(
    db: &impl GenericClient,
    user: &str,
    session: Option<&str>,
    except: bool,
) -> Result<(), Error> {
    match (session, except) {
        (Some(s), false) => {
            db.execute(
                "DELETE FROM auth.sessions WHERE id = $1::text::uuid AND user_id = $2::text::uuid",
                &[&s, &user],
            )
            .await?
        }
        (Some(s), true) => {
            db.execute(
                "DELETE FROM auth.sessions WHERE user_id = $2::text::uuid AND id <> $1::text::uuid",
                &[&s, &user],
            )
            .await?
        }
        (None, _) => {
            db.execute(
                "DELETE FROM auth.sessions WHERE user_id = $1::text::uuid",
                &[&user],
            )
            .await?
        }
    };
    Ok(())
}

/// Revokes every refresh token of a session (reuse detected).
pub(crate) async fn revoke_session_tokens(
    db: &impl GenericClient,
    session: &str,
) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE session_id = $1::text::uuid",
        &[&session],
    )
    .await?;
    Ok(())
}

/// Merges `metadata` into the user's and, when given, sets a new password
/// hash.
pub(crate) async fn update_user(
    db: &impl GenericClient,
    user: &str,
    metadata: Option<&Value>,
    password_hash: Option<&str>,
) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.users SET
           raw_user_meta_data = CASE WHEN $2::text IS NULL THEN raw_user_meta_data
                                     ELSE coalesce(raw_user_meta_data, '{}') || $2::text::jsonb END,
           encrypted_password = coalesce($3, encrypted_password),
           updated_at = now()
         WHERE id = $1::text::uuid",
        &[&user, &metadata.map(Value::to_string), &password_hash],
    )
    .await?;
    Ok(())
}
