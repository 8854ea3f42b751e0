//! Faults on a real PostgreSQL database and a real filesystem store: the
//! backend failing in the middle of an upload, the database failing after
//! the bytes are written, and the bytes a crash leaves behind, which the
//! sweeper removes (and nothing a row still names).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use supa_core::{ProjectConfig, ProjectRef, Role, Secret};
use supa_storage::{Backend, Storage};
use tower::ServiceExt as _;

const REF: &str = "faultsfaultsfaultsaa";
const PREFIX: &str = "tenant";

/// A filesystem store whose multipart uploads fail at their second part
/// while `failing` is set: a backend that dies in the middle of an upload.
#[derive(Debug)]
struct Faulty {
    inner: Arc<LocalFileSystem>,
    failing: Arc<AtomicBool>,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    parts: usize,
    failing: bool,
}

#[async_trait::async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.parts += 1;
        if self.failing && self.parts > 1 {
            return Box::pin(async {
                Err(object_store::Error::Generic {
                    store: "faulty",
                    source: "the disk went away".into(),
                })
            });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Key,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Key,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner,
            parts: 0,
            failing: self.failing.load(Ordering::SeqCst),
        }))
    }

    async fn get_opts(
        &self,
        location: &Key,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Key>>,
    ) -> BoxStream<'static, object_store::Result<Key>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Key>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Key>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Key,
        to: &Key,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

struct Fixture {
    storage: Storage,
    app: axum::Router,
    db: tokio_postgres::Client,
    root: tempfile::TempDir,
    failing: Arc<AtomicBool>,
    token: String,
    config: ProjectConfig,
}

impl Fixture {
    async fn new() -> Self {
        let database = supa_testkit::fresh_database().await;
        let config: tokio_postgres::Config = database.url.parse().unwrap();
        let (db, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let root = tempfile::tempdir().unwrap();
        let failing = Arc::new(AtomicBool::new(false));
        let store = Faulty {
            inner: Arc::new(LocalFileSystem::new_with_prefix(root.path()).unwrap()),
            failing: failing.clone(),
        };
        let backend = Backend::from_store(Arc::new(store), "faulty");
        let project_ref = ProjectRef::parse(REF).unwrap();
        let storage = Storage::single(project_ref, PREFIX, config.clone(), 4, backend).unwrap();
        // The API roles are the cluster's: one migration at a time makes them.
        static MIGRATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        {
            let _one = MIGRATING.lock().await;
            storage.migrate(project_ref).await.unwrap();
        }
        let project = ProjectConfig {
            storage_database: Some(supa_db::login_of(&config)),
            ..ProjectConfig::standalone(project_ref, Secret::new("s".repeat(40)))
        };
        let (key, _) = supa_keys::project_keys(&project).unwrap();
        let token = supa_keys::mint(&key, &project_ref, Role::ServiceRole, supa_keys::unix_now());
        let app =
            supa_storage::router(storage.clone()).layer(axum::Extension(Arc::new(project.clone())));
        db.batch_execute("INSERT INTO storage.buckets (id, name) VALUES ('b', 'b')")
            .await
            .unwrap();
        Self {
            storage,
            app,
            db,
            root,
            failing,
            token,
            config: project,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Body) -> (StatusCode, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/octet-stream")
            .body(body)
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        (
            status,
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap(),
        )
    }

    async fn rows(&self) -> i64 {
        self.db
            .query_one("SELECT count(*) FROM storage.objects", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Every file under the store's root, as paths relative to it.
    fn files(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out.sort();
        out
    }

    /// The project as the sweeper takes it.
    fn project(&self) -> supa_storage::StorageProject {
        supa_storage::StorageProject::from_config(&self.config).unwrap()
    }
}

fn big_body(bytes: usize) -> Body {
    Body::from(vec![7u8; bytes])
}

#[tokio::test]
async fn the_backend_failing_mid_upload_leaves_no_row_and_no_bytes() {
    let f = Fixture::new().await;
    f.failing.store(true, Ordering::SeqCst);
    // 20 MB: a multipart write whose second part fails.
    let (status, body) = f
        .call("POST", "/object/b/big.bin", big_body(20 * 1024 * 1024))
        .await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(f.rows().await, 0);
    assert_eq!(f.files(), Vec::<String>::new());
    // The same upload succeeds once the backend is back.
    f.failing.store(false, Ordering::SeqCst);
    let (status, _) = f
        .call("POST", "/object/b/big.bin", big_body(20 * 1024 * 1024))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.rows().await, 1);
    assert_eq!(f.files().len(), 1);
}

#[tokio::test]
async fn the_database_failing_after_the_bytes_leaves_nothing_visible() {
    let f = Fixture::new().await;
    // The row write that names stored bytes (its metadata has their ETag)
    // fails; the permission probe before the bytes does not.
    f.db.batch_execute(
        "CREATE FUNCTION public.fail() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'the database went away'; END $$;
         CREATE TRIGGER fail BEFORE INSERT ON storage.objects FOR EACH ROW
           WHEN (NEW.metadata ? 'eTag') EXECUTE FUNCTION public.fail();",
    )
    .await
    .unwrap();
    let (status, _) = f.call("POST", "/object/b/x.bin", big_body(1000)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(f.rows().await, 0);
    assert_eq!(f.files(), Vec::<String>::new());
    let (status, _) = f.call("GET", "/object/b/x.bin", Body::empty()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_sweeper_removes_what_a_crash_left_and_nothing_else() {
    let f = Fixture::new().await;
    let (status, _) = f
        .call("POST", "/object/b/keep/good.txt", big_body(10))
        .await;
    assert_eq!(status, StatusCode::OK);
    let backend = f.storage.backend();
    let put = |key: Key| async move {
        backend
            .put_small(&key, Bytes::from_static(b"left"))
            .await
            .unwrap()
    };
    let version = "0bd1c7ae-51e0-4f3f-8a5c-4f0b1e0c6f3a";
    // Bytes written before a crash stopped the row: a new object, and an
    // old version of a live one.
    put(Backend::key(PREFIX, "b", "crashed.txt", Some(version))).await;
    put(Backend::key(
        PREFIX,
        "b",
        "keep/good.txt",
        Some("11111111-2222-4333-8444-555555555555"),
    ))
    .await;
    // A resumable upload past its expiry, and one still running.
    let uploads = Key::from_iter([PREFIX, "~uploads", "expired"]);
    backend
        .put_small(
            &uploads.clone().join("info"),
            Bytes::from(r#"{"expires_ms": 1}"#),
        )
        .await
        .unwrap();
    put(uploads.clone().join("00000000000000000000-aaaa")).await;
    let running = Key::from_iter([PREFIX, "~uploads", "running"]);
    backend
        .put_small(
            &running.clone().join("info"),
            Bytes::from(r#"{"expires_ms": 99999999999999}"#),
        )
        .await
        .unwrap();
    // Parts of a multipart upload no row records; a rendition of a gone version.
    put(Key::from_iter([
        PREFIX,
        "~multipart",
        "gone",
        "00001",
        version,
    ]))
    .await;
    put(Key::from_iter([PREFIX, "~renders", version, "digest"])).await;
    assert_eq!(f.files().len(), 8);

    // Within the grace period only expired uploads go: other bytes may
    // belong to a write in flight.
    let swept = f
        .storage
        .sweep(&f.project(), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        swept,
        supa_storage::Swept {
            expired_uploads: 2,
            ..Default::default()
        }
    );
    let swept = f.storage.sweep(&f.project(), Duration::ZERO).await.unwrap();
    assert_eq!(
        swept,
        supa_storage::Swept {
            orphans: 2,
            expired_uploads: 0,
            stale_parts: 1,
            stale_renders: 1,
        }
    );
    let left = f.files();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().any(|p| p.contains("running")));
    let (status, body) = f
        .call("GET", "/object/b/keep/good.txt", Body::empty())
        .await;
    assert_eq!((status, body.len()), (StatusCode::OK, 10));
}
