//! The statements every project database is built with, as data.
//!
//! Three phases build a project: the roles every project of a worker
//! cluster shares (once per cluster), the template database every project
//! is copied from (once per worker, and again when this list changes), and
//! the project's own database and logins. Creation executes exactly these
//! lists, in this order, so what `supa projects bootstrap-sql` prints and
//! what tests assert on is what runs.

use std::sync::LazyLock;

use serde::Serialize;
use supa_core::ProjectRef;

use crate::projects::{CreateStep, TEMPLATE, database_name, login_names};

/// When a statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Once per worker cluster, in its maintenance database: the roles every
    /// project shares.
    Cluster,
    /// Once per worker, in the template database, as the worker's admin.
    Template,
    /// For each project, in the worker's maintenance database.
    Project,
}

impl Phase {
    /// The phase's name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Cluster => "cluster",
            Phase::Template => "template",
            Phase::Project => "project",
        }
    }
}

/// One statement of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// When it runs.
    pub phase: Phase,
    /// The part of the build it belongs to (`api roles`, `auth schema`...).
    pub part: &'static str,
    /// The statement, with the comments that precede it in its script.
    pub sql: String,
}

/// The roles every project on a cluster shares: the API roles and the
/// services' admins, which own their schemas in every project.
const CLUSTER: [(&str, &str); 3] = [
    ("api roles", supa_core::Role::CREATE_SQL),
    (
        "service admin roles",
        "DO $$ BEGIN
   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_auth_admin') THEN
     CREATE ROLE supabase_auth_admin NOLOGIN NOINHERIT CREATEROLE; END IF;
   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_storage_admin') THEN
     CREATE ROLE supabase_storage_admin NOLOGIN NOINHERIT; END IF;
 END $$",
    ),
    ("service admin roles", supa_realtime::schema::ADMIN_ROLE_SQL),
];

/// The cluster phase.
pub fn cluster_statements() -> Vec<Statement> {
    CLUSTER
        .iter()
        .map(|(part, sql)| Statement {
            phase: Phase::Cluster,
            part,
            sql: (*sql).to_owned(),
        })
        .collect()
}

/// The template phase: `bootstrap.sql` with each service's schema where it
/// names it (each run as its owner, through the script's `SET ROLE`), split
/// into statements.
pub fn template_statements() -> &'static [Statement] {
    static STATEMENTS: LazyLock<Vec<Statement>> = LazyLock::new(|| {
        let services: [(&str, &str, String); 5] = [
            (
                "-- @auth-schema: supa_auth::SCHEMA_SQL, then its migrations.\n",
                "auth schema",
                supa_auth::schema::full_script(),
            ),
            (
                "-- @storage-schema: supa_storage::schema::SCHEMA_SQL\n",
                "storage schema",
                supa_storage::schema::SCHEMA_SQL.to_owned(),
            ),
            (
                "-- @storage-grants: supa_storage::schema::GRANTS_SQL\n",
                "storage grants",
                supa_storage::schema::GRANTS_SQL.to_owned(),
            ),
            (
                "-- @realtime-schema: supa_realtime::schema::SCHEMA_SQL\n",
                "realtime schema",
                supa_realtime::schema::SCHEMA_SQL.to_owned(),
            ),
            (
                "-- @realtime-functions: supa_realtime::schema::FUNCTIONS_SQL\n",
                "realtime functions",
                supa_realtime::schema::FUNCTIONS_SQL.to_string(),
            ),
        ];
        let mut statements = Vec::new();
        let mut push = |part, script: &str| {
            statements.extend(split_statements(script).into_iter().map(|sql| Statement {
                phase: Phase::Template,
                part,
                sql: sql.to_owned(),
            }))
        };
        let mut rest = include_str!("bootstrap.sql");
        for (marker, part, script) in &services {
            let (before, after) = rest
                .split_once(marker)
                .expect("bootstrap.sql names every service schema once, in order");
            push("conventions", before);
            push(part, script);
            rest = after;
        }
        push("conventions", rest);
        statements
    });
    &STATEMENTS
}

/// What the template's comment says when these statements made it: the
/// first bytes of their SHA-256, in hex. A template with another marker was
/// made by another version and is rebuilt.
pub(crate) fn template_marker() -> String {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    for statement in template_statements() {
        digest.update(statement.sql.as_bytes());
        digest.update(b"\0");
    }
    format!("supa template {}", hex::encode(&digest.finalize()[..8]))
}

/// One login of a project: its name, the roles it is a member of (without
/// inheriting them), and its session settings.
struct Login {
    name: String,
    roles: &'static str,
    settings: &'static [(&'static str, &'static str)],
}

/// The project's logins, in the order of [`login_names`].
fn logins(r: &ProjectRef) -> [Login; 5] {
    let [authenticator, auth, storage, realtime, functions] = login_names(r);
    [
        // The data plane's: the API roles, as PostgREST's authenticator.
        Login {
            name: authenticator,
            roles: "anon, authenticated, service_role",
            settings: &[],
        },
        // The auth server's: its sessions start as supabase_auth_admin,
        // which owns the auth schema of every project.
        Login {
            name: auth,
            roles: "supabase_auth_admin",
            settings: &[("role", "supabase_auth_admin"), ("search_path", "auth")],
        },
        // The storage server's: supabase_storage_admin for its own
        // bookkeeping, and each request's API role.
        Login {
            name: storage,
            roles: "supabase_storage_admin, anon, authenticated, service_role",
            settings: &[("role", "supabase_storage_admin")],
        },
        // The realtime server's: supabase_realtime_admin for subscriptions
        // and the slot, and each subscriber's API role for its row level
        // security checks. Change timestamps are read in UTC; no check runs
        // away.
        Login {
            name: realtime,
            roles: "supabase_realtime_admin, anon, authenticated, service_role",
            settings: &[
                ("role", "supabase_realtime_admin"),
                ("timezone", "UTC"),
                ("statement_timeout", "10s"),
            ],
        },
        // The functions' (`SUPABASE_DB_URL`): the service role, as their
        // server-side work needs.
        Login {
            name: functions,
            roles: "service_role",
            settings: &[("role", "service_role")],
        },
    ]
}

/// A project statement as a `format()` template (`%I` an identifier, `%L` a
/// literal) and its arguments: creation has PostgreSQL itself quote them.
pub(crate) struct Formatted {
    /// The creation step it belongs to.
    pub step: CreateStep,
    pub part: &'static str,
    pub template: String,
    pub args: Vec<String>,
}

impl Formatted {
    fn database(template: &str, args: &[&str]) -> Self {
        Formatted {
            step: CreateStep::CreateDatabase,
            part: "database",
            template: template.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn login(template: String, args: Vec<String>) -> Self {
        Formatted {
            step: CreateStep::CreateRoles,
            part: "logins",
            template,
            args,
        }
    }

    /// The template and its arguments, for [`crate::projects::execute_formatted_all`].
    pub(crate) fn call(&self) -> (&str, Vec<&str>) {
        (
            &self.template,
            self.args.iter().map(String::as_str).collect(),
        )
    }
}

/// The database `db` as a copy of the template.
pub(crate) fn create_database(db: &str) -> Formatted {
    Formatted::database("CREATE DATABASE %I TEMPLATE %I", &[db, TEMPLATE])
}

/// What a project's database gets once copied: closed to PUBLIC, and
/// Supabase's `search_path`, so `uuid_generate_v4()` and friends resolve
/// unqualified in every session.
pub(crate) fn database_settings(db: &str) -> [Formatted; 2] {
    [
        Formatted::database(
            "REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC",
            &[db],
        ),
        Formatted::database(
            r#"ALTER DATABASE %I SET search_path = "$user", public, extensions"#,
            &[db],
        ),
    ]
}

/// CONNECT on `db` for one of the project's logins, its only database.
pub(crate) fn connect_grant(db: &str, login: &str) -> Formatted {
    Formatted::login(
        "GRANT CONNECT ON DATABASE %I TO %I".into(),
        vec![db.to_owned(), login.to_owned()],
    )
}

/// The project phase, with each login's password from `passwords` (in the
/// order of [`login_names`]).
pub(crate) fn project_formatted(r: &ProjectRef, passwords: &[&str; 5]) -> Vec<Formatted> {
    let db = database_name(r);
    let mut out = vec![create_database(&db)];
    out.extend(database_settings(&db));
    for (login, password) in logins(r).into_iter().zip(passwords) {
        out.push(Formatted::login(
            "CREATE ROLE %I LOGIN NOINHERIT PASSWORD %L".into(),
            vec![login.name.clone(), (*password).to_owned()],
        ));
        // The roles are a list written here, never input.
        out.push(Formatted::login(
            format!("GRANT {} TO %I", login.roles),
            vec![login.name.clone()],
        ));
        for (setting, value) in login.settings {
            out.push(Formatted::login(
                format!("ALTER ROLE %I SET {setting} = %L"),
                vec![login.name.clone(), (*value).to_owned()],
            ));
        }
        out.push(connect_grant(&db, &login.name));
    }
    out
}

/// What stands for a login's password in [`project_statements`]: each is
/// random, made at creation, and kept encrypted by the control plane.
pub const MASKED_PASSWORD: &str = "********";

/// The project phase for `r`, with passwords masked.
pub fn project_statements(r: &ProjectRef) -> Vec<Statement> {
    project_formatted(r, &[MASKED_PASSWORD; 5])
        .into_iter()
        .map(|f| Statement {
            phase: Phase::Project,
            part: f.part,
            sql: render(&f.template, &f.args),
        })
        .collect()
}

/// Every statement a project database is built with, in order: the
/// cluster's, the template's, then `r`'s own (none without a ref).
pub fn statements(r: Option<&ProjectRef>) -> Vec<Statement> {
    let mut all = cluster_statements();
    all.extend_from_slice(template_statements());
    all.extend(r.map(project_statements).unwrap_or_default());
    all
}

/// `format()`'s `%I` and `%L` done here, for showing: every identifier is
/// quoted and every literal escaped as PostgreSQL's `quote_literal` does.
fn render(template: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut args = args.iter();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match (chars.next(), args.next()) {
            (Some('I'), Some(a)) => {
                out.push('"');
                out.push_str(&a.replace('"', "\"\""));
                out.push('"');
            }
            (Some('L'), Some(a)) => {
                if a.contains('\\') {
                    out.push('E');
                }
                out.push('\'');
                out.push_str(&a.replace('\\', "\\\\").replace('\'', "''"));
                out.push('\'');
            }
            (other, _) => unreachable!("project templates use %I and %L only, not {other:?}"),
        }
    }
    out
}

/// Splits a script into statements at the semicolons outside comments,
/// quoted strings and identifiers, and dollar-quoted bodies. Each keeps the
/// comments before it; a tail of comments alone is dropped.
pub(crate) fn split_statements(script: &str) -> Vec<&str> {
    let b = script.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let mut out = Vec::new();
    let (mut start, mut i, mut code) = (0, 0, false);
    while i < b.len() {
        let next = b.get(i + 1).copied();
        match b[i] {
            b'-' if next == Some(b'-') => {
                i = script[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if next == Some(b'*') => {
                // Block comments nest in PostgreSQL.
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                code = true;
                let escapes =
                    i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !ident(b[i - 2]));
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' if escapes => i += 1,
                        b'\'' if b.get(i + 1) == Some(&b'\'') => i += 1,
                        b'\'' => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'"' => {
                code = true;
                i += 1;
                while i < b.len() && !(b[i] == b'"' && b.get(i + 1) != Some(&b'"')) {
                    i += if b[i] == b'"' { 2 } else { 1 };
                }
            }
            b'$' if i == 0 || !ident(b[i - 1]) => {
                code = true;
                let tag_len = b[i + 1..]
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80))
                    .unwrap_or(b.len() - i - 1);
                let tag_ok = b.get(i + 1 + tag_len) == Some(&b'$')
                    && !b.get(i + 1).is_some_and(u8::is_ascii_digit);
                if tag_ok {
                    let tag = &script[i..i + tag_len + 2];
                    let body = i + tag.len();
                    i = script[body..]
                        .find(tag)
                        .map_or(b.len(), |n| body + n + tag.len() - 1);
                }
            }
            b';' => {
                if code {
                    out.push(script[start..=i].trim());
                }
                (start, code) = (i + 1, false);
                i += 1;
                continue;
            }
            c => code |= !c.is_ascii_whitespace(),
        }
        i += 1;
    }
    if code {
        out.push(script[start..].trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_comments_and_bodies() {
        let script = "-- a; comment\nCREATE SCHEMA a;\n\
            /* block; /* nested; */ still; */ SELECT 'it''s; here', E'\\'; x', \"we\"\"ird;\";\n\
            CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n\
            DO $$ BEGIN PERFORM 1; END $$;\n\
            SELECT $1, a$b;\n\
            SELECT 'no semicolon at the end'\n\
            -- trailing; comment\n";
        assert_eq!(
            split_statements(script),
            [
                "-- a; comment\nCREATE SCHEMA a;",
                "/* block; /* nested; */ still; */ SELECT 'it''s; here', E'\\'; x', \"we\"\"ird;\";",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;",
                "DO $$ BEGIN PERFORM 1; END $$;",
                "SELECT $1, a$b;",
                "SELECT 'no semicolon at the end'\n-- trailing; comment",
            ]
        );
        assert!(split_statements("-- only; a comment\n  \n").is_empty());
        // Unterminated quotes run to the end rather than panic.
        for broken in ["SELECT 'open", "SELECT \"open", "$x$ open", "E'\\"] {
            assert_eq!(split_statements(broken), [broken]);
        }
        assert!(split_statements("/* open").is_empty());
    }

    #[test]
    fn the_template_is_the_bootstrap_script_split_with_every_service_schema() {
        let statements = template_statements();
        let parts: Vec<&str> = statements.iter().map(|s| s.part).collect();
        for part in [
            "conventions",
            "auth schema",
            "storage schema",
            "storage grants",
            "realtime schema",
            "realtime functions",
        ] {
            assert!(parts.contains(&part), "{part} is missing");
        }
        // Nothing is lost by splitting: the statements hold every
        // non-comment word of the scripts they came from.
        let words = |s: &str| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .flat_map(str::split_whitespace)
                .count()
        };
        let joined: usize = statements.iter().map(|s| words(&s.sql)).sum();
        let source = words(include_str!("bootstrap.sql"))
            + words(&supa_auth::schema::full_script())
            + words(supa_storage::schema::SCHEMA_SQL)
            + words(supa_storage::schema::GRANTS_SQL)
            + words(supa_realtime::schema::SCHEMA_SQL)
            + words(&supa_realtime::schema::FUNCTIONS_SQL);
        assert_eq!(joined, source);
    }

    #[test]
    fn project_statements_name_the_project_and_hide_passwords() {
        let r = ProjectRef::parse("abcdefghijklmnopqrst").unwrap();
        let statements = project_statements(&r);
        assert_eq!(
            statements[0].sql,
            r#"CREATE DATABASE "proj_abcdefghijklmnopqrst" TEMPLATE "supa_template""#
        );
        let created: Vec<&str> = statements
            .iter()
            .filter(|s| s.sql.starts_with("CREATE ROLE"))
            .map(|s| s.sql.as_str())
            .collect();
        assert_eq!(created.len(), 5);
        assert!(
            created
                .iter()
                .all(|s| s.ends_with(&format!("PASSWORD '{MASKED_PASSWORD}'")))
        );
        assert_eq!(
            render(
                "ALTER ROLE %I SET x = %L",
                &["a\"b".into(), "it's \\".into()]
            ),
            r#"ALTER ROLE "a""b" SET x = E'it''s \\'"#
        );
    }
}
