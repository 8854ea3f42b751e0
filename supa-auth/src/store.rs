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
  'is_anonymous', u.is_anonymous)
|| jsonb_strip_nulls(jsonb_build_object(
  'invited_at', u.invited_at, 'confirmation_sent_at', u.confirmation_sent_at,
  'recovery_sent_at', u.recovery_sent_at, 'new_email', nullif(u.email_change, ''),
  'email_change_sent_at', u.email_change_sent_at, 'banned_until', u.banned_until,
  'phone_confirmed_at', u.phone_confirmed_at,
  'factors', (
    SELECT jsonb_agg(jsonb_build_object(
      'id', f.id, 'friendly_name', coalesce(f.friendly_name, ''), 'factor_type', f.factor_type,
      'status', f.status, 'created_at', f.created_at, 'updated_at', f.updated_at) ORDER BY f.created_at)
    FROM auth.mfa_factors f WHERE f.user_id = u.id)))";

/// `sql` prepared once per connection (the pool keeps a statement cache):
/// the hot queries then cost one round trip, not two.
pub(crate) async fn prepared(
    db: &impl GenericClient,
    sql: &str,
) -> Result<tokio_postgres::Statement, Error> {
    Ok(db.prepare_cached(sql).await?)
}

/// A user row's fields the server decides with.
#[derive(Debug)]
pub(crate) struct UserRow {
    pub id: String,
    pub encrypted_password: Option<String>,
    /// The e-mail address is confirmed.
    pub confirmed: bool,
    /// The phone number is confirmed.
    pub phone_confirmed: bool,
    pub banned: bool,
    pub json: Value,
}

fn user_row(row: &tokio_postgres::Row) -> UserRow {
    UserRow {
        id: row.get("id"),
        encrypted_password: row.get("encrypted_password"),
        confirmed: row.get("confirmed"),
        phone_confirmed: row.get("phone_confirmed"),
        banned: row.get("banned"),
        json: serde_json::from_str(row.get::<_, &str>("json")).unwrap_or_default(),
    }
}

fn user_select(condition: &str) -> String {
    format!(
        "SELECT u.id::text AS id, u.encrypted_password, u.email_confirmed_at IS NOT NULL AS confirmed,
                u.phone_confirmed_at IS NOT NULL AS phone_confirmed,
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
            &prepared(
                db,
                &user_select("lower(u.email) = lower($1) AND NOT u.is_sso_user"),
            )
            .await?,
            &[&email],
        )
        .await?;
    Ok(row.as_ref().map(user_row))
}

/// The user with this phone number (digits only), if any.
pub(crate) async fn user_by_phone(
    db: &impl GenericClient,
    phone: &str,
) -> Result<Option<UserRow>, Error> {
    let row = db
        .query_opt(
            &prepared(db, &user_select("u.phone = $1")).await?,
            &[&phone],
        )
        .await?;
    Ok(row.as_ref().map(user_row))
}

/// Confirms the user's phone number (and its identity).
pub(crate) async fn confirm_phone(db: &impl GenericClient, user: &str) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.users SET phone_confirmed_at = coalesce(phone_confirmed_at, now()), updated_at = now()
         WHERE id = $1::text::uuid",
        &[&user],
    )
    .await?;
    db.execute(
        "UPDATE auth.identities SET identity_data = identity_data || '{\"phone_verified\": true}'
         WHERE user_id = $1::text::uuid AND provider = 'phone'",
        &[&user],
    )
    .await?;
    Ok(())
}

/// The user of this id, if any.
pub(crate) async fn user_by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<UserRow>, Error> {
    let row = db
        .query_opt(
            &prepared(db, &user_select("u.id = $1::text::uuid")).await?,
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(user_row))
}

/// A user to insert.
#[derive(Debug)]
pub(crate) struct NewUser<'a> {
    pub email: Option<&'a str>,
    /// A phone number (digits only): the user signs in with it.
    pub phone: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub user_metadata: &'a Value,
    /// Stamps the e-mail confirmation now.
    pub confirmed: bool,
    pub anonymous: bool,
    /// An external identity `(provider, provider_id, identity_data)`
    /// instead of the e-mail one.
    pub provider: Option<(&'a str, &'a str, &'a Value)>,
}

/// Inserts a user, with its e-mail identity when it has an address.
pub(crate) async fn insert_user(
    db: &impl GenericClient,
    new: &NewUser<'_>,
) -> Result<UserRow, Error> {
    let provider = match (new.provider, new.email) {
        (Some(p), _) => p.0,
        (None, None) if new.phone.is_some() => "phone",
        _ => "email",
    };
    let app_metadata = if new.anonymous {
        "{}".to_owned()
    } else {
        serde_json::json!({"provider": provider, "providers": [provider]}).to_string()
    };
    let (provider_id, identity_data) = match new.provider {
        Some((_, id, data)) => (Some(id), Some(data.to_string())),
        None => (None, None),
    };
    let row = db
        .query_one(
            "WITH u AS (
               INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password,
                                       email_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                                       is_super_admin, created_at, updated_at, is_anonymous,
                                       phone, phone_confirmed_at)
               VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated',
                       'authenticated', lower($1), $2, CASE WHEN $4 AND $1 IS NOT NULL THEN now() END,
                       $6::text::jsonb, $3::text::jsonb, false, now(), now(), $5,
                       $10::text, CASE WHEN $4 AND $10::text IS NOT NULL THEN now() END)
               RETURNING id, email, email_confirmed_at, phone, phone_confirmed_at),
             i AS (
               INSERT INTO auth.identities (provider_id, user_id, identity_data, provider,
                                            last_sign_in_at, created_at, updated_at)
               SELECT coalesce($7, u.id::text), u.id,
                      coalesce($8::text::jsonb,
                                jsonb_strip_nulls(jsonb_build_object('sub', u.id::text, 'email', u.email,
                                                   'phone', u.phone,
                                                   'email_verified', u.email_confirmed_at IS NOT NULL,
                                                   'phone_verified', u.phone_confirmed_at IS NOT NULL))),
                      $9, now(), now(), now()
               FROM u WHERE u.email IS NOT NULL OR u.phone IS NOT NULL OR $8 IS NOT NULL)
             SELECT id::text FROM u",
            &[
                &new.email,
                &new.password_hash,
                &new.user_metadata.to_string(),
                &new.confirmed,
                &new.anonymous,
                &app_metadata,
                &provider_id,
                &identity_data,
                &provider,
                &new.phone,
            ],
        )
        .await?;
    let id: String = row.get(0);
    user_by_id(db, &id)
        .await?
        .ok_or_else(|| Error::internal("a user just inserted is missing"))
}

/// A page of users, newest first, and how many there are.
pub(crate) async fn list_users(
    db: &impl GenericClient,
    page: i64,
    per_page: i64,
) -> Result<(Vec<Value>, i64), Error> {
    let rows = db
        .query(
            &format!(
                "{} ORDER BY u.created_at DESC, u.id LIMIT $1 OFFSET $2",
                user_select("true")
            ),
            &[&per_page, &((page - 1) * per_page)],
        )
        .await?;
    let total = db
        .query_one(
            "SELECT count(*) FROM auth.users WHERE deleted_at IS NULL",
            &[],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(|r| user_row(r).json).collect(), total))
}

/// What an admin changes of a user; absent fields stay.
#[derive(Debug, Default)]
pub(crate) struct AdminChange<'a> {
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub user_metadata: Option<&'a Value>,
    pub app_metadata: Option<&'a Value>,
    pub confirm_email: bool,
    /// `Some(None)` lifts a ban; `Some(Some(seconds))` bans that long.
    pub ban_seconds: Option<Option<i64>>,
}

/// Applies an admin's change.
pub(crate) async fn admin_update(
    db: &impl GenericClient,
    user: &str,
    change: &AdminChange<'_>,
) -> Result<(), Error> {
    let (ban_set, ban_seconds) = match change.ban_seconds {
        None => (false, None),
        Some(seconds) => (true, seconds),
    };
    db.execute(
        "UPDATE auth.users SET
           email = coalesce(lower($2), email),
           encrypted_password = coalesce($3, encrypted_password),
           raw_user_meta_data = CASE WHEN $4::text IS NULL THEN raw_user_meta_data
                                     ELSE coalesce(raw_user_meta_data, '{}') || $4::text::jsonb END,
           raw_app_meta_data = CASE WHEN $5::text IS NULL THEN raw_app_meta_data
                                    ELSE coalesce(raw_app_meta_data, '{}') || $5::text::jsonb END,
           email_confirmed_at = CASE WHEN $6 THEN coalesce(email_confirmed_at, now()) ELSE email_confirmed_at END,
           banned_until = CASE WHEN NOT $7 THEN banned_until
                               WHEN $8::int8 IS NULL THEN NULL
                               ELSE now() + make_interval(secs => $8::int8) END,
           updated_at = now()
         WHERE id = $1::text::uuid",
        &[
            &user,
            &change.email,
            &change.password_hash,
            &change.user_metadata.map(Value::to_string),
            &change.app_metadata.map(Value::to_string),
            &change.confirm_email,
            &ban_set,
            &ban_seconds,
        ],
    )
    .await?;
    if change.email.is_some() {
        db.execute(
            "UPDATE auth.identities SET identity_data = identity_data || jsonb_build_object('email', lower($2)),
                                        updated_at = now()
             WHERE user_id = $1::text::uuid AND provider = 'email'",
            &[&user, &change.email],
        )
        .await?;
    }
    if change.ban_seconds.is_some_and(|s| s.is_some()) {
        // A banned user's sessions end with the ban.
        end_sessions(db, user, None, false).await?;
    }
    Ok(())
}

/// Deletes a user (their identities, sessions and factors go with them),
/// or, soft, marks them deleted and frees their address.
pub(crate) async fn delete_user(
    db: &impl GenericClient,
    user: &str,
    soft: bool,
) -> Result<bool, Error> {
    let n = if soft {
        end_sessions(db, user, None, false).await?;
        db.execute(
            "UPDATE auth.users SET deleted_at = now(), email = NULL, phone = NULL,
                                   encrypted_password = '', updated_at = now()
             WHERE id = $1::text::uuid AND deleted_at IS NULL",
            &[&user],
        )
        .await?
    } else {
        db.execute("DELETE FROM auth.users WHERE id = $1::text::uuid", &[&user])
            .await?
    };
    Ok(n > 0)
}

/// A new session of `user` and its first refresh token.
pub(crate) async fn start_session(
    db: &impl GenericClient,
    user: &str,
    refresh_token: &str,
    method: &str,
) -> Result<String, Error> {
    let row = db
        .query_one(
            &prepared(db, "WITH s AS (
               INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal)
               VALUES (gen_random_uuid(), $1::text::uuid, now(), now(), 'aal1') RETURNING id, user_id),
             t AS (
               INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
               SELECT '00000000-0000-0000-0000-000000000000', $2, s.user_id::text, false, now(), now(), s.id FROM s),
             a AS (
               INSERT INTO auth.mfa_amr_claims (session_id, created_at, updated_at, authentication_method, id)
               SELECT s.id, now(), now(), $3, gen_random_uuid() FROM s),
             u AS (UPDATE auth.users SET last_sign_in_at = now() WHERE id = $1::text::uuid)
             SELECT id::text FROM s").await?,
            &[&user, &refresh_token, &method],
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
    /// Its session still exists (not signed out).
    pub session_live: bool,
}

/// The refresh token `token`, locked for update.
pub(crate) async fn refresh_token(
    db: &impl GenericClient,
    token: &str,
) -> Result<Option<RefreshRow>, Error> {
    let row = db
        .query_opt(
            &prepared(
                db,
                "SELECT t.id, t.user_id, t.session_id::text AS session, coalesce(t.revoked, false) AS revoked,
                        extract(epoch FROM now() - coalesce(t.updated_at, t.created_at))::float8 AS age,
                        EXISTS (SELECT 1 FROM auth.sessions s WHERE s.id = t.session_id) AS session_live
                 FROM auth.refresh_tokens t WHERE t.token = $1 FOR UPDATE OF t",
            )
            .await?,
            &[&token],
        )
        .await?;
    Ok(row.map(|r| RefreshRow {
        id: r.get("id"),
        user: r.get("user_id"),
        session: r.get("session"),
        revoked: r.get("revoked"),
        age: r.get("age"),
        session_live: r.get("session_live"),
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
            &prepared(db, "SELECT token FROM auth.refresh_tokens WHERE parent = $1 AND NOT coalesce(revoked, false)
             ORDER BY id DESC LIMIT 1").await?,
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
    // One statement, one round trip: revoke, insert the child, touch the
    // session.
    db.execute(
        &prepared(
            db,
            "WITH r AS (UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = $5),
                  s AS (UPDATE auth.sessions SET refreshed_at = now()::timestamp, updated_at = now()
                        WHERE id = $4::text::uuid)
             INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
             VALUES ('00000000-0000-0000-0000-000000000000', $1, $2, false, now(), now(), $3, $4::text::uuid)",
        )
        .await?,
        &[&new, &old.user, &old_token, &old.session, &old.id],
    )
    .await?;
    Ok(())
}

/// Replaces every refresh token of a session with `refresh` (the session
/// stepped up).
pub(crate) async fn reissue(
    db: &impl GenericClient,
    user: &str,
    session: &str,
    refresh: &str,
) -> Result<(), Error> {
    // The child of the live token, so a client still holding that one
    // gets this one within the reuse interval, as after a rotation.
    db.execute(
        "INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
         SELECT '00000000-0000-0000-0000-000000000000', $1, $2, false, now(), now(),
                (SELECT token FROM auth.refresh_tokens WHERE session_id = $3::text::uuid
                   AND NOT coalesce(revoked, false) ORDER BY id DESC LIMIT 1),
                $3::text::uuid",
        &[&refresh, &user, &session],
    )
    .await?;
    db.execute(
        "UPDATE auth.refresh_tokens SET revoked = true, updated_at = now()
         WHERE session_id = $1::text::uuid AND token <> $2 AND NOT coalesce(revoked, false)",
        &[&session, &refresh],
    )
    .await?;
    Ok(())
}

/// Whether the session exists.
pub(crate) async fn session_exists(db: &impl GenericClient, session: &str) -> Result<bool, Error> {
    let row = db
        .query_one(
            &prepared(
                db,
                "SELECT EXISTS (SELECT 1 FROM auth.sessions WHERE id = $1::text::uuid)",
            )
            .await?,
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

/// A one-time token's column in `auth.users`, and its type in
/// `auth.one_time_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenColumn {
    /// Sign-up and invitation.
    Confirmation,
    /// Recovery and magic link.
    Recovery,
    /// An e-mail change, at the new address.
    EmailChangeNew,
    /// An e-mail change, at the current address.
    EmailChangeCurrent,
    /// Reauthentication before a password change.
    Reauthentication,
}

impl TokenColumn {
    /// The column (and `one_time_token_type` value).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation_token",
            Self::Recovery => "recovery_token",
            Self::EmailChangeNew => "email_change_token_new",
            Self::EmailChangeCurrent => "email_change_token_current",
            Self::Reauthentication => "reauthentication_token",
        }
    }

    /// The column that says when it was sent.
    fn sent_at(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation_sent_at",
            Self::Recovery => "recovery_sent_at",
            Self::EmailChangeNew | Self::EmailChangeCurrent => "email_change_sent_at",
            Self::Reauthentication => "reauthentication_sent_at",
        }
    }
}

/// Stores a one-time token's hash for `user` (replacing the previous one
/// of its kind), sent to `address` now.
pub(crate) async fn set_token(
    db: &impl GenericClient,
    user: &str,
    column: TokenColumn,
    hash: &str,
    address: &str,
) -> Result<(), Error> {
    // Both names come from `TokenColumn`, never from a request.
    db.execute(
        &format!(
            "UPDATE auth.users SET {} = $2, {} = now(), updated_at = now() WHERE id = $1::text::uuid",
            column.name(),
            column.sent_at()
        ),
        &[&user, &hash],
    )
    .await?;
    db.execute(
        "INSERT INTO auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to)
         VALUES (gen_random_uuid(), $1::text::uuid, $2::text::auth.one_time_token_type, $3, lower($4))
         ON CONFLICT (user_id, token_type) DO UPDATE
           SET token_hash = excluded.token_hash, relates_to = excluded.relates_to, updated_at = now()",
        &[&user, &column.name(), &hash, &address],
    )
    .await?;
    Ok(())
}

/// The user holding one of `hashes` in `column`, locked, with the
/// token's age in seconds.
pub(crate) async fn user_by_token(
    db: &impl GenericClient,
    column: TokenColumn,
    hashes: &[String],
) -> Result<Option<(UserRow, f64, String)>, Error> {
    let row = db
        .query_opt(
            &format!(
                "SELECT u.id::text, extract(epoch FROM now() - coalesce(u.{sent}, '-infinity'))::float8,
                        u.{col}
                 FROM auth.users u
                 WHERE u.{col} = ANY($1) AND u.{col} <> '' AND u.deleted_at IS NULL
                 FOR UPDATE",
                col = column.name(),
                sent = column.sent_at()
            ),
            &[&hashes],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.get(0);
    let user = user_by_id(db, &id).await?;
    Ok(user.map(|u| (u, row.get(1), row.get(2))))
}

/// Whether the user holds a token in `column`.
pub(crate) async fn token_pending(
    db: &impl GenericClient,
    user: &str,
    column: TokenColumn,
) -> Result<bool, Error> {
    let row = db
        .query_one(
            &format!(
                "SELECT coalesce({}, '') <> '' FROM auth.users WHERE id = $1::text::uuid",
                column.name()
            ),
            &[&user],
        )
        .await?;
    Ok(row.get(0))
}

/// Uses up a token: it answers no more.
pub(crate) async fn clear_token(
    db: &impl GenericClient,
    user: &str,
    column: TokenColumn,
) -> Result<(), Error> {
    db.execute(
        &format!(
            "UPDATE auth.users SET {} = '', updated_at = now() WHERE id = $1::text::uuid",
            column.name()
        ),
        &[&user],
    )
    .await?;
    db.execute(
        "DELETE FROM auth.one_time_tokens
         WHERE user_id = $1::text::uuid AND token_type = $2::text::auth.one_time_token_type",
        &[&user, &column.name()],
    )
    .await?;
    Ok(())
}

/// Confirms the user's e-mail address (and its identity).
pub(crate) async fn confirm_email(db: &impl GenericClient, user: &str) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.users SET email_confirmed_at = coalesce(email_confirmed_at, now()), updated_at = now()
         WHERE id = $1::text::uuid",
        &[&user],
    )
    .await?;
    db.execute(
        "UPDATE auth.identities SET identity_data = identity_data || '{\"email_verified\": true}'
         WHERE user_id = $1::text::uuid AND provider = 'email'",
        &[&user],
    )
    .await?;
    Ok(())
}

/// Marks an invited user.
pub(crate) async fn mark_invited(db: &impl GenericClient, user: &str) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.users SET invited_at = now() WHERE id = $1::text::uuid",
        &[&user],
    )
    .await?;
    Ok(())
}

/// A pending e-mail change: the new address, and how many of its
/// confirmations have arrived (0 or 1).
pub(crate) async fn email_change(
    db: &impl GenericClient,
    user: &str,
) -> Result<(Option<String>, i16), Error> {
    let row = db
        .query_one(
            "SELECT nullif(email_change, ''), coalesce(email_change_confirm_status, 0)::int2
             FROM auth.users WHERE id = $1::text::uuid",
            &[&user],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Starts an e-mail change to `new` (tokens are set apart).
pub(crate) async fn begin_email_change(
    db: &impl GenericClient,
    user: &str,
    new: &str,
) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.users SET email_change = lower($2), email_change_confirm_status = 0,
                               email_change_token_current = '', email_change_token_new = '',
                               updated_at = now()
         WHERE id = $1::text::uuid",
        &[&user, &new],
    )
    .await?;
    Ok(())
}

/// Records one of two confirmations of an e-mail change.
pub(crate) async fn half_confirm_email_change(
    db: &impl GenericClient,
    user: &str,
) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.users SET email_change_confirm_status = 1, updated_at = now() WHERE id = $1::text::uuid",
        &[&user],
    )
    .await?;
    Ok(())
}

/// Applies a pending e-mail change: the new address is the user's, and
/// confirmed.
pub(crate) async fn apply_email_change(db: &impl GenericClient, user: &str) -> Result<(), Error> {
    db.execute(
        "UPDATE auth.users SET email = email_change, email_change = '', email_change_confirm_status = 0,
                               email_change_token_current = '', email_change_token_new = '',
                               email_confirmed_at = coalesce(email_confirmed_at, now()),
                               is_anonymous = false, updated_at = now()
         WHERE id = $1::text::uuid AND coalesce(email_change, '') <> ''",
        &[&user],
    )
    .await?;
    db.execute(
        "DELETE FROM auth.one_time_tokens WHERE user_id = $1::text::uuid
           AND token_type IN ('email_change_token_new', 'email_change_token_current')",
        &[&user],
    )
    .await?;
    // The e-mail identity follows the address (an anonymous user gets one).
    db.execute(
        "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
         SELECT u.id::text, u.id, jsonb_build_object('sub', u.id::text, 'email', u.email,
                'email_verified', true, 'phone_verified', false), 'email', now(), now(), now()
         FROM auth.users u WHERE u.id = $1::text::uuid
         ON CONFLICT (provider_id, provider) DO UPDATE
           SET identity_data = auth.identities.identity_data || jsonb_build_object('email', excluded.identity_data ->> 'email'),
               updated_at = now()",
        &[&user],
    )
    .await?;
    db.execute(
        "UPDATE auth.users SET raw_app_meta_data = coalesce(raw_app_meta_data, '{}')
             || '{\"provider\": \"email\"}'::jsonb
             || jsonb_build_object('providers', (
                  SELECT jsonb_agg(DISTINCT p) FROM (
                    SELECT jsonb_array_elements_text(coalesce(raw_app_meta_data -> 'providers', '[]')) AS p
                    UNION SELECT 'email') ps))
         WHERE id = $1::text::uuid AND NOT (coalesce(raw_app_meta_data -> 'providers', '[]') ? 'email')",
        &[&user],
    )
    .await?;
    Ok(())
}

/// A PKCE flow waiting for its code to be exchanged.
#[derive(Debug)]
pub(crate) struct FlowState {
    pub user: Option<String>,
    pub challenge: String,
    pub method: String,
    pub authentication_method: String,
    /// Seconds since the code was issued (or the flow made).
    pub age: f64,
    /// The OAuth provider's access token, for the session answer.
    pub provider_token: Option<String>,
}

/// Starts a PKCE flow; its id and auth code are returned.
pub(crate) async fn insert_flow_state(
    db: &impl GenericClient,
    user: Option<&str>,
    challenge: &str,
    method: &str,
    provider: &str,
    authentication_method: &str,
) -> Result<(String, String), Error> {
    let row = db
        .query_one(
            "INSERT INTO auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge,
                                         provider_type, created_at, updated_at, authentication_method)
             VALUES (gen_random_uuid(), $1::text::uuid, gen_random_uuid()::text,
                     $2::text::auth.code_challenge_method, $3, $4, now(), now(), $5)
             RETURNING id::text, auth_code",
            &[&user, &method, &challenge, &provider, &authentication_method],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Ends the OAuth leg of a PKCE flow: its user and the provider's token;
/// the auth code to hand the client is returned.
pub(crate) async fn complete_flow(
    db: &impl GenericClient,
    flow: &str,
    user: &str,
    provider_token: &str,
) -> Result<Option<String>, Error> {
    let row = db
        .query_opt(
            "UPDATE auth.flow_state SET user_id = $2::text::uuid, provider_access_token = $3,
                                        auth_code_issued_at = now(), updated_at = now()
             WHERE id = $1::text::uuid RETURNING auth_code",
            &[&flow, &user, &provider_token],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The newest flow of `user` by `authentication_method`, its code issued
/// now; the code is returned.
pub(crate) async fn issue_flow_code(
    db: &impl GenericClient,
    user: &str,
    authentication_method: &str,
) -> Result<Option<String>, Error> {
    let row = db
        .query_opt(
            "UPDATE auth.flow_state SET auth_code_issued_at = now(), updated_at = now()
             WHERE id = (SELECT id FROM auth.flow_state
                         WHERE user_id = $1::text::uuid AND authentication_method = $2
                         ORDER BY created_at DESC LIMIT 1)
             RETURNING auth_code",
            &[&user, &authentication_method],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The flow of an auth code, taken (deleted: a code is exchanged once).
pub(crate) async fn take_flow_state(
    db: &impl GenericClient,
    auth_code: &str,
) -> Result<Option<FlowState>, Error> {
    let row = db
        .query_opt(
            "DELETE FROM auth.flow_state WHERE auth_code = $1
             RETURNING user_id::text, code_challenge, code_challenge_method::text,
                       authentication_method,
                       extract(epoch FROM now() - coalesce(auth_code_issued_at, created_at))::float8,
                       provider_access_token",
            &[&auth_code],
        )
        .await?;
    Ok(row.map(|r| FlowState {
        user: r.get(0),
        challenge: r.get(1),
        method: r.get(2),
        authentication_method: r.get(3),
        age: r.get(4),
        provider_token: r.get(5),
    }))
}

/// What `/signup` answers for an address that already has a confirmed
/// user: the shape of a new unconfirmed user, with nothing of theirs.
pub(crate) async fn obfuscated_user(db: &impl GenericClient, email: &str) -> Result<Value, Error> {
    let row = db
        .query_one(
            "SELECT jsonb_build_object(
               'id', gen_random_uuid(), 'aud', 'authenticated', 'role', 'authenticated',
               'email', lower($1), 'phone', '', 'confirmation_sent_at', now(),
               'app_metadata', '{\"provider\": \"email\", \"providers\": [\"email\"]}'::jsonb,
               'user_metadata', '{}'::jsonb, 'identities', '[]'::jsonb,
               'created_at', now(), 'updated_at', now(), 'is_anonymous', false)::text",
            &[&email],
        )
        .await?;
    Ok(serde_json::from_str(row.get::<_, &str>(0)).unwrap_or_default())
}

/// The user of an external identity, if it is known.
pub(crate) async fn identity_user(
    db: &impl GenericClient,
    provider: &str,
    provider_id: &str,
) -> Result<Option<String>, Error> {
    let row = db
        .query_opt(
            "SELECT user_id::text FROM auth.identities WHERE provider = $1 AND provider_id = $2",
            &[&provider, &provider_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Links (or refreshes) an external identity of `user`: its data, its
/// sign-in time, the provider in the user's `providers` and the identity's
/// data in their metadata, as GoTrue keeps them after each sign-in.
pub(crate) async fn link_identity(
    db: &impl GenericClient,
    user: &str,
    provider: &str,
    provider_id: &str,
    data: &Value,
) -> Result<(), Error> {
    db.execute(
        "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
         VALUES ($3, $1::text::uuid, $4::text::jsonb, $2, now(), now(), now())
         ON CONFLICT (provider_id, provider) DO UPDATE
           SET identity_data = excluded.identity_data, last_sign_in_at = now(), updated_at = now()",
        &[&user, &provider, &provider_id, &data.to_string()],
    )
    .await?;
    db.execute(
        "UPDATE auth.users SET
           raw_app_meta_data = coalesce(raw_app_meta_data, '{}') || jsonb_build_object('providers', (
             SELECT jsonb_agg(DISTINCT p) FROM (
               SELECT jsonb_array_elements_text(coalesce(raw_app_meta_data -> 'providers', '[]')) AS p
               UNION SELECT $2) ps)),
           raw_user_meta_data = coalesce(raw_user_meta_data, '{}') || $3::text::jsonb,
           updated_at = now()
         WHERE id = $1::text::uuid",
        &[&user, &provider, &data.to_string()],
    )
    .await?;
    Ok(())
}
