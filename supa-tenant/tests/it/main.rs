//! The control plane against a real PostgreSQL cluster from the test kit.

mod api;

use std::sync::{Arc, Mutex};

use sqlx::{Connection, Executor, PgConnection, Row};
use supa_core::{KeyKind, ProjectRef, ProjectStatus, Secret};
use supa_tenant::embedded::{Durability, EmbeddedPostgres, SUPERUSER};
use supa_tenant::{
    CreateOptions, CreateProject, CreateStep, Error, Invalidation, MasterKey, NewApiKey, NewWorker,
    Placement, Tenant, WorkerPatch, WorkerStatus,
};

fn local_worker(id: &str, password: &str) -> NewWorker {
    let pg = supa_testkit::cluster().postgres();
    NewWorker {
        id: id.to_owned(),
        host: "127.0.0.1".into(),
        port: pg.port(),
        admin_user: SUPERUSER.into(),
        admin_password: Secret::new(password.to_owned()),
        max_databases: 1000,
        weight: 100,
        status: WorkerStatus::Active,
    }
}

/// A control plane with its own management database and the test cluster
/// registered as worker `local`.
async fn tenant() -> Tenant {
    let db = supa_testkit::fresh_database().await;
    let tenant = Tenant::connect(&db.url, MasterKey::from_bytes(&[42; 32]))
        .await
        .unwrap();
    let password = supa_testkit::cluster()
        .postgres()
        .password()
        .expose()
        .clone();
    tenant
        .register_worker(local_worker("local", &password))
        .await
        .unwrap();
    tenant
}

/// Creates a project and returns its ref.
async fn new_project(tenant: &Tenant, name: &str) -> ProjectRef {
    tenant
        .create_project(create(name))
        .await
        .unwrap()
        .project
        .project_ref
}

fn create(name: &str) -> CreateProject {
    CreateProject {
        name: name.into(),
        ..CreateProject::default()
    }
}

async fn superuser(database: &str) -> PgConnection {
    PgConnection::connect(&supa_testkit::cluster().url(database))
        .await
        .unwrap()
}

/// What a project leaves on the worker and in the management database.
async fn traces(tenant: &Tenant, r: &str) -> (bool, bool, i64, i64) {
    let mut c = superuser("postgres").await;
    let db: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(format!("proj_{r}"))
            .fetch_one(&mut c)
            .await
            .unwrap();
    let role: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(format!("{r}_authenticator"))
            .fetch_one(&mut c)
            .await
            .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE ref = $1")
        .bind(r)
        .fetch_one(tenant.pool())
        .await
        .unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE project_ref = $1")
        .bind(r)
        .fetch_one(tenant.pool())
        .await
        .unwrap();
    (db, role, rows, keys)
}

#[test]
fn embedded_cluster_is_reused_by_the_next_start() {
    let cluster = supa_testkit::cluster();
    let again = EmbeddedPostgres::start(cluster.dir(), Durability::Throwaway).unwrap();
    assert_eq!(again.port(), cluster.postgres().port());
    assert_eq!(
        again.password().expose(),
        cluster.postgres().password().expose()
    );
}

/// Stops a cluster started by a test and removes its files, however the
/// test ends.
struct StopOnDrop(Option<EmbeddedPostgres>, Vec<std::path::PathBuf>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pg) = self.0.take() {
            pg.stop().ok();
        }
        for dir in &self.1 {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}

/// Starts a cluster in `<parent>/data` whose parent has `mode`, checks it
/// answers, is found again by the next start, and is set up for logical
/// decoding; where its files live.
fn cluster_under_parent_with_mode(mode: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::Builder::new()
        .prefix("supa-parent-")
        .tempdir()
        .unwrap()
        .keep();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(mode)).unwrap();
    let data_dir = parent.join("data");
    let pg = EmbeddedPostgres::start(&data_dir, Durability::Throwaway).unwrap();
    let pgdata = pg.pgdata().to_owned();
    let mut guard = StopOnDrop(Some(pg), vec![parent.clone()]);
    if !pgdata.starts_with(&parent) {
        guard.1.push(pgdata.parent().unwrap().to_owned());
    }
    let url = guard.0.as_ref().unwrap().url("postgres");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let one: i32 = rt.block_on(async {
        let mut conn = PgConnection::connect(url.expose()).await.unwrap();
        sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(one, 1);
    // Stopped and started again, the same cluster comes back.
    guard.0.take().unwrap().stop().unwrap();
    let again = EmbeddedPostgres::start(&data_dir, Durability::Throwaway).unwrap();
    assert_eq!(again.pgdata(), pgdata);
    assert_ne!(again.port(), 0);
    guard.0 = Some(again);
    // Realtime decodes each project's WAL; replication connections are
    // the superuser's alone.
    let conf = std::fs::read_to_string(pgdata.join("postgresql.conf")).unwrap();
    assert!(conf.contains("\nwal_level = logical\n"));
    let hba = std::fs::read_to_string(pgdata.join("pg_hba.conf")).unwrap();
    let replication: Vec<&str> = hba
        .lines()
        .filter(|l| !l.starts_with('#') && l.split_whitespace().nth(1) == Some("replication"))
        .collect();
    assert!(!replication.is_empty());
    for line in replication {
        assert_eq!(line.split_whitespace().nth(2), Some(SUPERUSER), "{line}");
    }

    (parent.canonicalize().unwrap(), pgdata)
}

#[test]
fn embedded_cluster_starts_under_a_parent_closed_to_postgres() {
    // A checkout in /root, a `mktemp -d` dir: 0700, owned by us.
    let (parent, pgdata) = cluster_under_parent_with_mode(0o700);
    let as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n";
    if as_root {
        assert!(
            pgdata.starts_with(supa_tenant::embedded::FALLBACK_CLUSTERS),
            "{}",
            pgdata.display()
        );
    } else {
        // Without root, the server runs as us and reaches the data dir.
        assert!(pgdata.starts_with(&parent));
    }
}

#[test]
fn embedded_cluster_lives_in_a_reachable_data_dir() {
    let (parent, pgdata) = cluster_under_parent_with_mode(0o755);
    assert_eq!(pgdata, parent.join("data").join("pgdata"));
}

#[tokio::test]
async fn workers_that_cannot_decode_are_refused_with_what_to_change() {
    let tenant = tenant().await;
    // An admin that may create databases and roles, but not decode.
    let admin = supa_testkit::cluster().postgres().url("postgres");
    let mut conn = PgConnection::connect(admin.expose()).await.unwrap();
    conn.execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'no_decoding') THEN
             CREATE ROLE no_decoding LOGIN CREATEDB CREATEROLE PASSWORD 'pw'; END IF;
         END $$",
    )
    .await
    .unwrap();
    let mut worker = local_worker("nodecoding", "pw");
    worker.admin_user = "no_decoding".into();
    let err = tenant.register_worker(worker).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("needs REPLICATION"), "{err}");

    // Amazon RDS's way: membership of `rds_replication` passes that check
    // (vanilla PostgreSQL then refuses the probe slot, which RDS allows).
    conn.execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') THEN
             CREATE ROLE rds_replication NOLOGIN; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_style') THEN
             CREATE ROLE rds_style LOGIN CREATEDB CREATEROLE PASSWORD 'pw' IN ROLE rds_replication; END IF;
         END $$",
    )
    .await
    .unwrap();
    let mut worker = local_worker("rdsstyle", "pw");
    worker.admin_user = "rds_style".into();
    let err = tenant.register_worker(worker).await.unwrap_err();
    assert!(!err.to_string().contains("needs REPLICATION"), "{err}");
    assert!(err.to_string().contains("replication"), "{err}");

    // A cluster without logical decoding.
    let dir = tempfile::Builder::new()
        .prefix("supa-replica-")
        .tempdir()
        .unwrap()
        .keep();
    let data_dir = dir.join("data");
    let pg = EmbeddedPostgres::start(&data_dir, Durability::Throwaway).unwrap();
    let mut guard = StopOnDrop(None, vec![dir.clone()]);
    if !pg.pgdata().starts_with(&dir) {
        guard.1.push(pg.pgdata().parent().unwrap().to_owned());
    }
    let mut c = PgConnection::connect(pg.url("postgres").expose())
        .await
        .unwrap();
    c.execute("ALTER SYSTEM SET wal_level = replica")
        .await
        .unwrap();
    drop(c);
    pg.stop().unwrap();
    let pg = EmbeddedPostgres::start(&data_dir, Durability::Throwaway).unwrap();
    let mut worker = local_worker("replica", pg.password().expose());
    worker.port = pg.port();
    guard.0 = Some(pg);
    let err = tenant.register_worker(worker).await.unwrap_err();
    assert_eq!(err.status(), 400);
    let text = err.to_string();
    assert!(
        text.contains("wal_level is \"replica\"") && text.contains("set wal_level = logical"),
        "{text}"
    );
}

#[tokio::test]
async fn workers_are_checked_at_registration() {
    let tenant = tenant().await;
    let err = tenant
        .register_worker(local_worker("bad", "wrong-password"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert!(
        matches!(tenant.get_worker("bad").await, Err(Error::NotFound(_))),
        "nothing stored"
    );

    let mut unreachable = local_worker("gone", "x");
    unreachable.port = 1;
    assert_eq!(
        tenant
            .register_worker(unreachable)
            .await
            .unwrap_err()
            .status(),
        400
    );
    let mut bad_id = local_worker("Bad Id", "x");
    bad_id.id = "Bad Id".into();
    assert!(matches!(
        tenant.register_worker(bad_id).await,
        Err(Error::InvalidInput { field: "id", .. })
    ));

    let password = supa_testkit::cluster()
        .postgres()
        .password()
        .expose()
        .clone();
    let dup = tenant
        .register_worker(local_worker("local", &password))
        .await
        .unwrap_err();
    assert_eq!(dup.status(), 409);

    let patched = tenant
        .patch_worker(
            "local",
            WorkerPatch {
                weight: Some(7),
                status: Some(WorkerStatus::Draining),
                ..WorkerPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.weight, patched.status),
        (7, WorkerStatus::Draining)
    );
    assert_eq!(tenant.list_workers().await.unwrap().len(), 1);
    // A draining worker takes no new project.
    assert!(matches!(
        tenant.create_project(create("p")).await,
        Err(Error::NoCapacity)
    ));

    // The stored password is ciphertext.
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT admin_password_enc FROM workers WHERE id = 'local'")
            .fetch_one(tenant.pool())
            .await
            .unwrap();
    assert!(
        !sealed
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
}

#[tokio::test]
async fn project_lifecycle() {
    let tenant = tenant().await;
    let created = tenant.create_project(create("demo")).await.unwrap();
    let r = created.project.project_ref;
    assert_eq!(created.project.status, ProjectStatus::ActiveHealthy);
    assert_eq!(created.project.name, "demo");
    assert!(supa_keys::validate(&r, &created.publishable_key).is_ok());
    assert!(supa_keys::validate(&r, created.secret_key.expose()).is_ok());
    assert_eq!(traces(&tenant, r.as_str()).await, (true, true, 1, 2));

    assert_eq!(tenant.list_projects().await.unwrap().len(), 1);
    assert_eq!(tenant.get_project(&r).await.unwrap().project_ref, r);
    assert_eq!(tenant.get_worker("local").await.unwrap().project_count, 1);
    assert!(matches!(
        tenant.delete_worker("local").await,
        Err(Error::Conflict(_))
    ));

    let config = tenant.project_config(&r).await.unwrap();
    assert_eq!(config.upstream, supa_core::Upstream::Embedded);
    assert!(config.jwt_secret.expose().len() >= 32);
    // The JWT secret is encrypted at rest.
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT jwt_secret_enc FROM projects WHERE ref = $1")
        .bind(r.as_str())
        .fetch_one(tenant.pool())
        .await
        .unwrap();
    assert!(
        !sealed
            .windows(config.jwt_secret.expose().len())
            .any(|w| w == config.jwt_secret.expose().as_bytes())
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tenant.on_invalidate(move |i| sink.lock().unwrap().push(i.clone()));
    tenant.delete_project(&r).await.unwrap();
    assert_eq!(traces(&tenant, r.as_str()).await, (false, false, 0, 0));
    assert!(seen.lock().unwrap().contains(&Invalidation::Project(r)));
    assert!(matches!(
        tenant.get_project(&r).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        tenant.delete_project(&r).await,
        Err(Error::NotFound(_))
    ));
    tenant.delete_worker("local").await.unwrap();
}

#[tokio::test]
async fn chosen_refs_are_validated_and_unique() {
    let tenant = tenant().await;
    let r = ProjectRef::generate();
    let req = CreateProject {
        name: "a".into(),
        project_ref: Some(r.to_string()),
        worker_id: None,
    };
    assert_eq!(
        tenant
            .create_project(req.clone())
            .await
            .unwrap()
            .project
            .project_ref,
        r
    );
    assert_eq!(tenant.create_project(req).await.unwrap_err().status(), 409);
    assert_eq!(
        traces(&tenant, r.as_str()).await,
        (true, true, 1, 2),
        "the original is untouched"
    );
    let bad = CreateProject {
        name: "a".into(),
        project_ref: Some("UPPER".into()),
        worker_id: None,
    };
    assert!(matches!(
        tenant.create_project(bad).await,
        Err(Error::InvalidInput { field: "ref", .. })
    ));
    let unknown_worker = CreateProject {
        name: "a".into(),
        project_ref: None,
        worker_id: Some("nope".into()),
    };
    assert!(matches!(
        tenant.create_project(unknown_worker).await,
        Err(Error::InvalidInput {
            field: "worker_id",
            ..
        })
    ));
    assert!(matches!(
        tenant.create_project(create(" ")).await,
        Err(Error::InvalidInput { field: "name", .. })
    ));
    tenant.delete_project(&r).await.unwrap();
}

#[tokio::test]
async fn a_failure_after_any_step_leaves_nothing_behind() {
    let tenant = tenant().await;
    for step in CreateStep::ALL {
        let r = ProjectRef::generate();
        let req = CreateProject {
            name: "doomed".into(),
            project_ref: Some(r.to_string()),
            worker_id: None,
        };
        let options = CreateOptions {
            fail_after: Some(step),
            ..CreateOptions::default()
        };
        assert!(
            tenant.create_project_with(req, options).await.is_err(),
            "{step:?}"
        );
        assert_eq!(
            traces(&tenant, r.as_str()).await,
            (false, false, 0, 0),
            "after {step:?}"
        );
    }
}

#[tokio::test]
async fn keys_list_reveal_create_and_revoke() {
    let tenant = tenant().await;
    let created = tenant.create_project(create("keys")).await.unwrap();
    let r = created.project.project_ref;

    let masked = tenant.list_keys(&r, false).await.unwrap();
    assert_eq!(masked.len(), 2);
    let secret = masked.iter().find(|k| k.kind == KeyKind::Secret).unwrap();
    let publishable = masked
        .iter()
        .find(|k| k.kind == KeyKind::Publishable)
        .unwrap();
    assert_eq!(publishable.api_key, created.publishable_key);
    assert_ne!(secret.api_key, *created.secret_key.expose());
    assert!(!secret.api_key.contains(&created.secret_key.expose()[16..]));
    assert_eq!(secret.name, "default");
    assert_eq!(
        secret.hash,
        supa_keys::hash_hex(created.secret_key.expose())
    );
    assert_eq!(
        secret.secret_jwt_template,
        Some(serde_json::json!({"role": "service_role"}))
    );

    let revealed = tenant.list_keys(&r, true).await.unwrap();
    assert!(
        revealed
            .iter()
            .any(|k| k.api_key == *created.secret_key.expose())
    );

    let extra = tenant
        .create_key(
            &r,
            NewApiKey {
                kind: KeyKind::Secret,
                name: "ci".into(),
            },
        )
        .await
        .unwrap();
    assert!(supa_keys::validate(&r, &extra.api_key).is_ok());
    assert_eq!(
        tenant
            .create_key(
                &r,
                NewApiKey {
                    kind: KeyKind::Secret,
                    name: "ci".into()
                }
            )
            .await
            .unwrap_err()
            .status(),
        409
    );
    assert_eq!(
        tenant
            .create_key(
                &r,
                NewApiKey {
                    kind: KeyKind::Publishable,
                    name: "x".into()
                }
            )
            .await
            .unwrap_err()
            .status(),
        400
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tenant.on_invalidate(move |i| sink.lock().unwrap().push(i.clone()));
    tenant.revoke_key(&r, &extra.id).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Invalidation::Key(extra.hash.clone())]
    );
    assert_eq!(tenant.list_keys(&r, false).await.unwrap().len(), 2);
    assert_eq!(
        tenant.revoke_key(&r, &extra.id).await.unwrap_err().status(),
        404
    );
    tenant.delete_project(&r).await.unwrap();
}

/// Connects to `database` as `user` with `password`.
async fn login(
    user: &str,
    password: &supa_core::Secret<String>,
    database: &str,
) -> Result<PgConnection, sqlx::Error> {
    let pg = supa_testkit::cluster().postgres();
    let options = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(pg.port())
        .username(user)
        .password(password.expose())
        .database(database);
    PgConnection::connect_with(&options).await
}

/// Connects to `database` as project `r`'s authenticator.
async fn authenticator(
    tenant: &Tenant,
    r: &ProjectRef,
    database: &str,
) -> Result<PgConnection, sqlx::Error> {
    let password = tenant.authenticator_password(r).await.unwrap();
    login(&format!("{r}_authenticator"), &password, database).await
}

#[tokio::test]
async fn projects_are_isolated_in_the_database() {
    let tenant = tenant().await;
    let a = new_project(&tenant, "a").await;
    let b = new_project(&tenant, "b").await;

    // A's authenticator reaches A's database only.
    let denied = authenticator(&tenant, &a, &format!("proj_{b}"))
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    assert!(
        authenticator(&tenant, &a, &format!("proj_{a}"))
            .await
            .is_ok()
    );

    let mut owner = superuser(&format!("proj_{a}")).await;
    owner
        .execute(
            "CREATE TABLE notes (id int PRIMARY KEY, owner uuid, body text);
             INSERT INTO notes VALUES (1, '11111111-1111-1111-1111-111111111111', 'secret');
             ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
             GRANT ALL ON notes TO anon, authenticated, service_role;",
        )
        .await
        .unwrap();

    let mut conn = authenticator(&tenant, &a, &format!("proj_{a}"))
        .await
        .unwrap();
    for (role, expected) in [("anon", 0i64), ("authenticated", 0), ("service_role", 1)] {
        let mut tx = conn.begin().await.unwrap();
        tx.execute(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, expected, "{role} with RLS on and no policy");
        tx.rollback().await.unwrap();
    }

    // auth.* read the claims the data plane sets per transaction.
    let claims =
        r#"{"sub":"11111111-1111-1111-1111-111111111111","role":"authenticated","email":"a@b.c"}"#;
    let mut tx = conn.begin().await.unwrap();
    tx.execute("SET LOCAL ROLE authenticated").await.unwrap();
    sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
        .bind(claims)
        .execute(&mut *tx)
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT auth.uid()::text AS uid, auth.role() AS role, auth.jwt() ->> 'email' AS email",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        row.get::<String, _>("uid"),
        "11111111-1111-1111-1111-111111111111"
    );
    assert_eq!(row.get::<String, _>("role"), "authenticated");
    assert_eq!(row.get::<String, _>("email"), "a@b.c");
    tx.rollback().await.unwrap();

    // A policy on auth.uid() lets the owner, and only the owner, read.
    owner
        .execute(
            "CREATE POLICY own ON notes FOR SELECT TO authenticated USING (owner = auth.uid())",
        )
        .await
        .unwrap();
    for (sub, expected) in [
        ("11111111-1111-1111-1111-111111111111", 1i64),
        ("22222222-2222-2222-2222-222222222222", 0),
    ] {
        let mut tx = conn.begin().await.unwrap();
        tx.execute("SET LOCAL ROLE authenticated").await.unwrap();
        sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
            .bind(format!(r#"{{"sub":"{sub}","role":"authenticated"}}"#))
            .execute(&mut *tx)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, expected, "{sub}");
        tx.rollback().await.unwrap();
    }

    // The authenticator cannot open the management database either.
    let admin_db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(tenant.pool())
        .await
        .unwrap();
    assert!(authenticator(&tenant, &a, &admin_db).await.is_err());

    tenant.delete_project(&a).await.unwrap();
    tenant.delete_project(&b).await.unwrap();
}

#[tokio::test]
async fn secrets_are_stored_encrypted_and_listed_as_digests() {
    use sha2::{Digest, Sha256};
    use supa_tenant::SecretInput;
    let tenant = tenant().await;
    let r = new_project(&tenant, "secrets").await;
    let input = |name: &str, value: &str| SecretInput {
        name: name.into(),
        value: Secret::new(value.into()),
    };

    tenant
        .set_secrets(
            &r,
            vec![input("STRIPE_KEY", "sk_live_123"), input("_X1", "v")],
        )
        .await
        .unwrap();
    tenant
        .set_secrets(&r, vec![input("STRIPE_KEY", "sk_live_456")])
        .await
        .unwrap();
    let listed = tenant.list_secrets(&r).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name, "STRIPE_KEY");
    assert_eq!(listed[0].value, hex::encode(Sha256::digest(b"sk_live_456")));
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT value_enc FROM secrets WHERE name = 'STRIPE_KEY'")
            .fetch_one(tenant.pool())
            .await
            .unwrap();
    assert!(!sealed.windows(11).any(|w| w == b"sk_live_456"));

    for bad in ["lower", "1ABC", "SUPABASE_URL", "A-B", ""] {
        let err = tenant
            .set_secrets(&r, vec![input("OK", "v"), input(bad, "v")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { field: "name", .. }),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        tenant.list_secrets(&r).await.unwrap().len(),
        2,
        "a rejected batch stores nothing"
    );

    tenant
        .unset_secrets(&r, &["STRIPE_KEY".into(), "MISSING".into()])
        .await
        .unwrap();
    assert_eq!(tenant.list_secrets(&r).await.unwrap().len(), 1);
    let unknown = ProjectRef::generate();
    assert!(matches!(
        tenant.list_secrets(&unknown).await,
        Err(Error::NotFound(_))
    ));
    tenant.delete_project(&r).await.unwrap();
}

#[tokio::test]
async fn sql_endpoint_runs_statements_and_maps_types() {
    use serde_json::json;
    use std::time::Duration;
    let tenant = tenant().await;
    let r = new_project(&tenant, "sql").await;
    let timeout = supa_tenant::DEFAULT_STATEMENT_TIMEOUT;

    // Listen for the schema reload the endpoint announces after DDL.
    let mut listener =
        sqlx::postgres::PgListener::connect(&supa_testkit::cluster().url(&format!("proj_{r}")))
            .await
            .unwrap();
    listener.listen("pgrst").await.unwrap();

    let created = tenant
        .run_sql(&r, "CREATE TABLE todos (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL, done boolean DEFAULT false)", timeout)
        .await
        .unwrap();
    assert_eq!(created, Vec::<serde_json::Value>::new());
    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note.payload(), "reload schema");

    let inserted = tenant
        .run_sql(
            &r,
            "INSERT INTO todos (title) VALUES ('a'), ('b') RETURNING id, title, done",
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(
        inserted,
        vec![
            json!({"id": 1, "title": "a", "done": false}),
            json!({"id": 2, "title": "b", "done": false})
        ]
    );
    tenant
        .run_sql(&r, "UPDATE todos SET done = true WHERE id = 1", timeout)
        .await
        .unwrap();
    tenant
        .run_sql(&r, "DELETE FROM todos WHERE id = 2", timeout)
        .await
        .unwrap();
    // Several statements: the rows of the last one.
    let rows = tenant
        .run_sql(
            &r,
            "SELECT 1; SELECT id, done FROM todos ORDER BY id",
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(rows, vec![json!({"id": 1, "done": true})]);

    let types = tenant
        .run_sql(
            &r,
            "SELECT 12345678901234::bigint AS big, 1.50::numeric AS num, 2.5::float8 AS f, 'NaN'::float8 AS nan,
                    '2024-05-01 12:00:00+00'::timestamptz AS ts, '2024-05-01 12:00:00'::timestamp AS ts_local,
                    '2024-05-01'::date AS d, '\\x0102ff'::bytea AS b, ARRAY[1,2,NULL]::int[] AS ints,
                    ARRAY['a b','c']::text[] AS texts, '{\"k\": [1, true]}'::jsonb AS j, NULL::text AS nothing,
                    '7f0c3c38-0b0e-4d7d-9d7c-5c7f1e2a9b10'::uuid AS u",
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(
        types,
        vec![json!({
            "big": 12345678901234i64, "num": 1.50, "f": 2.5, "nan": "NaN",
            "ts": "2024-05-01T12:00:00+00:00", "ts_local": "2024-05-01T12:00:00",
            "d": "2024-05-01", "b": "\\x0102ff", "ints": [1, 2, null], "texts": ["a b", "c"],
            "j": {"k": [1, true]}, "nothing": null, "u": "7f0c3c38-0b0e-4d7d-9d7c-5c7f1e2a9b10"
        })]
    );

    let err = tenant.run_sql(&r, "SELEC 1", timeout).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_string(),
        "Failed to run sql query: ERROR:  42601: syntax error at or near \"SELEC\""
    );
    let slow = tenant
        .run_sql(&r, "SELECT pg_sleep(5)", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(slow.to_string().contains("57014"), "{slow}");
    assert!(matches!(
        tenant.run_sql(&r, "  ", timeout).await,
        Err(Error::InvalidInput { field: "query", .. })
    ));
    assert!(matches!(
        tenant
            .run_sql(&ProjectRef::generate(), "SELECT 1", timeout)
            .await,
        Err(Error::NotFound(_))
    ));
    tenant.delete_project(&r).await.unwrap();
}

#[tokio::test]
async fn projects_have_what_supabase_sql_expects() {
    use serde_json::json;
    let tenant = tenant().await;
    let r = new_project(&tenant, "supabase-sql").await;
    let timeout = supa_tenant::DEFAULT_STATEMENT_TIMEOUT;
    // Migrations written for Supabase call extension functions unqualified.
    let rows = tenant
        .run_sql(
            &r,
            "CREATE TABLE things (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), other uuid DEFAULT gen_random_uuid());
             INSERT INTO things DEFAULT VALUES;
             SELECT current_setting('search_path') AS path, count(*) AS n FROM things",
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![json!({"path": "\"$user\", public, extensions", "n": 1})]
    );
    // So do sessions that log in to the database directly.
    let mut conn = superuser(&format!("proj_{r}")).await;
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(path, "\"$user\", public, extensions");
    // The Realtime publication (empty) and the GraphQL schema exist.
    let publication: Option<bool> = sqlx::query_scalar(
        "SELECT puballtables FROM pg_publication WHERE pubname = 'supabase_realtime'",
    )
    .fetch_optional(&mut conn)
    .await
    .unwrap();
    assert_eq!(publication, Some(false));
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'supabase_realtime'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    let graphql: bool =
        sqlx::query_scalar("SELECT has_schema_privilege('anon', 'graphql_public', 'USAGE')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(graphql);
    drop(conn);
    tenant.delete_project(&r).await.unwrap();
}

#[tokio::test]
async fn placement_strategies_spread_projects() {
    let password = supa_testkit::cluster()
        .postgres()
        .password()
        .expose()
        .clone();
    // Two worker entries for the one test cluster are enough to see placement.
    let tenant = tenant().await.with_placement(Placement::RoundRobin);
    tenant
        .register_worker(local_worker("second", &password))
        .await
        .unwrap();
    let mut placed = Vec::new();
    for i in 0..4 {
        let created = tenant
            .create_project(create(&format!("rr{i}")))
            .await
            .unwrap();
        placed.push(created.project.worker_id);
    }
    assert_eq!(placed, ["local", "second", "local", "second"]);

    // Least-databases fills the emptier worker first: give `second` two more.
    let least = tenant.clone().with_placement(Placement::LeastDatabases);
    tenant
        .create_project(CreateProject {
            worker_id: Some("second".into()),
            ..create("pinned")
        })
        .await
        .unwrap();
    let next = least.create_project(create("least")).await.unwrap();
    assert_eq!(next.project.worker_id, "local");

    // A worker in maintenance takes no new projects.
    tenant
        .patch_worker(
            "local",
            WorkerPatch {
                status: Some(WorkerStatus::Maintenance),
                ..WorkerPatch::default()
            },
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let created = tenant.create_project(create("rr")).await.unwrap();
        assert_eq!(created.project.worker_id, "second");
    }
    assert_eq!(
        "round-robin".parse::<Placement>().unwrap(),
        Placement::RoundRobin
    );
    assert_eq!(
        "least-databases".parse::<Placement>().unwrap(),
        Placement::LeastDatabases
    );
    assert!("random".parse::<Placement>().is_err());
}

#[tokio::test]
async fn concurrent_settings_changes_both_take_effect() {
    use supa_tenant::PostgrestPatch;
    let tenant = tenant().await;
    let r = new_project(&tenant, "settings-race").await;
    for round in 1..=20i64 {
        let rows = PostgrestPatch {
            max_rows: Some(round),
            ..PostgrestPatch::default()
        };
        let pool = PostgrestPatch {
            db_pool: Some(Some(round)),
            ..PostgrestPatch::default()
        };
        let (a, b) = tokio::join!(
            tenant.update_postgrest_settings(&r, rows),
            tenant.update_postgrest_settings(&r, pool)
        );
        a.unwrap();
        b.unwrap();
        let settings = tenant.postgrest_settings(&r).await.unwrap();
        assert_eq!((settings.max_rows, settings.db_pool), (round, Some(round)));
    }
    tenant.delete_project(&r).await.unwrap();
}

/// The auth server's login of project `r` to `database`.
async fn auth_login(
    tenant: &Tenant,
    r: &ProjectRef,
    database: &str,
) -> Result<PgConnection, sqlx::Error> {
    let password = tenant.auth_login_password(r).await.unwrap().unwrap();
    login(&format!("{r}_auth"), &password, database).await
}

#[tokio::test]
async fn the_auth_login_owns_the_auth_schema_of_its_project_only() {
    let tenant = tenant().await;
    let a = new_project(&tenant, "auth-a").await;
    let b = new_project(&tenant, "auth-b").await;
    let config = tenant.project_config(&a).await.unwrap();
    let db = config
        .auth_database
        .clone()
        .expect("a new project has an auth login");
    assert_eq!(db.user, format!("{a}_auth"));
    assert!(!format!("{config:?}").contains(db.password.expose()));

    // Its sessions act as supabase_auth_admin, in the auth schema.
    let mut conn = auth_login(&tenant, &a, &format!("proj_{a}")).await.unwrap();
    let (role, path): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_setting('search_path')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        (role.as_str(), path.as_str()),
        ("supabase_auth_admin", "auth")
    );
    conn.execute(
        "INSERT INTO users (id, aud, role, email, created_at, updated_at)
         VALUES ('33333333-3333-3333-3333-333333333333', 'authenticated', 'authenticated', 'a@b.c', now(), now())",
    )
    .await
    .unwrap();
    // ...and nothing else: the project's own tables are not its business.
    let mut owner = superuser(&format!("proj_{a}")).await;
    owner
        .execute("CREATE TABLE public.private_notes (id int)")
        .await
        .unwrap();
    let refused = conn
        .execute("SELECT * FROM public.private_notes")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    // Another project's database is closed to it.
    let denied = auth_login(&tenant, &a, &format!("proj_{b}"))
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    drop(conn);

    tenant.delete_project(&a).await.unwrap();
    let mut c = superuser("postgres").await;
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(format!("{a}_auth"))
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert!(!left, "deleting the project drops its auth login");
    tenant.delete_project(&b).await.unwrap();
}

/// A control plane keeping objects and backups in directories of its own.
async fn tenant_with_backups() -> (Tenant, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = |name: &str| {
        supa_storage::Backend::new(&supa_storage::BackendConfig::File {
            root: dir.path().join(name),
            etag: supa_storage::FileEtag::Mtime,
        })
        .unwrap()
    };
    let tenant = tenant()
        .await
        .with_object_store(store("objects"))
        .with_backup_store(store("backups"));
    (tenant, dir)
}

#[tokio::test]
async fn a_schedule_takes_the_days_backup_once_and_expires_old_ones() {
    let (tenant, dir) = tenant_with_backups().await;
    let r = new_project(&tenant, "scheduled").await;
    // Nothing is taken without a schedule.
    tenant.run_due_backups().await;
    assert!(tenant.list_backups(&r).await.unwrap().is_empty());
    // An old scheduled backup, past a 2-day retention.
    let old = tenant.backup_project(&r, "scheduled").await.unwrap();
    sqlx::query("UPDATE backups SET inserted_at = now() - interval '3 days' WHERE id::text = $1")
        .bind(&old.id)
        .execute(tenant.pool())
        .await
        .unwrap();
    let manual = tenant.backup_project(&r, "manual").await.unwrap();
    let schedule = supa_tenant::BackupSchedule {
        enabled: true,
        hour_utc: 0,
        retention_days: 2,
    };
    tenant.set_backup_schedule(&r, schedule).await.unwrap();
    assert_eq!(tenant.backup_schedule(&r).await.unwrap(), schedule);
    tenant.run_due_backups().await;
    // A second round the same day takes nothing more.
    tenant.run_due_backups().await;
    let kept = tenant.list_backups(&r).await.unwrap();
    let kinds: Vec<(&str, &str)> = kept
        .iter()
        .map(|b| (b.kind.as_str(), b.status.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("scheduled", "COMPLETED"), ("manual", "COMPLETED")],
        "{kept:?}"
    );
    assert_eq!(kept[1].id, manual.id);
    assert!(kept[0].database_bytes > 0);
    // The expired one's files went with its row.
    let files = dir.path().join("backups").join(r.as_str());
    assert!(!files.join(&old.id).join("database.dump").exists());
    assert!(files.join(&manual.id).join("database.dump").exists());
    // Bad schedules are refused by field.
    let bad = supa_tenant::BackupSchedule {
        hour_utc: 24,
        ..schedule
    };
    assert!(matches!(
        tenant.set_backup_schedule(&r, bad).await,
        Err(Error::InvalidInput {
            field: "hour_utc",
            ..
        })
    ));
}
