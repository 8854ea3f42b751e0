//! Functions served from a folder, as Supabase's edge runtime serves
//! `/home/deno/functions/<slug>/index.ts` in self-hosted Supabase: each
//! function is bundled on its first request and again whenever its files
//! change (a new version), and runs with the same workers, limits and
//! `verify_jwt` as deployed ones. [`edge_env`] reads edge-runtime's
//! environment for the binary.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use supa_core::{BoxFuture, DirectoryError, FunctionDeployment, ProjectConfig, ProjectRef, Secret};

use crate::{Builder, Bundle, FunctionStore, Functions, LogEvent};

/// How often a function's files are looked at for changes.
const RESCAN: Duration = Duration::from_millis(500);
/// The folder edge-runtime's main service lives in: not a function.
const MAIN: &str = "main";

/// One function as last built.
struct Built {
    checked: Instant,
    deployment: FunctionDeployment,
    bundle: Arc<Bundle>,
}

/// The functions of one folder, for one project.
pub struct FolderFunctions {
    dir: PathBuf,
    builder: Builder,
    verify_jwt: bool,
    base: ProjectConfig,
    built: Mutex<HashMap<String, Built>>,
    /// One build per function at a time.
    building: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for FolderFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderFunctions")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FolderFunctions {
    /// Serves `dir/<slug>/index.ts` as project `base` (its JWT secret and
    /// functions' environment), `verify_jwt` for every function.
    pub fn new(dir: PathBuf, builder: Builder, verify_jwt: bool, base: ProjectConfig) -> Arc<Self> {
        Arc::new(Self {
            dir,
            builder,
            verify_jwt,
            base,
            built: Mutex::default(),
            building: tokio::sync::Mutex::new(()),
        })
    }

    /// The router: each request's function is (re)built if its files
    /// changed, then served by `functions`, which must use this as its
    /// store.
    pub fn router(self: Arc<Self>, functions: Arc<Functions>) -> Router {
        let inner = functions.router();
        Router::new().fallback(move |request: Request<Body>| {
            let (folder, inner) = (self.clone(), inner.clone());
            async move { folder.serve(inner, request).await }
        })
    }

    async fn serve(&self, inner: Router, mut request: Request<Body>) -> Response<Body> {
        use tower::ServiceExt as _;
        let slug = crate::service::slug_of(request.uri().path()).to_owned();
        let mut config = self.base.clone();
        if slug != MAIN && crate::bundle::normalize_path(&slug).as_deref() == Some(slug.as_str()) {
            match self.current(&slug).await {
                Ok(Some(deployment)) => {
                    config.functions.deployments = BTreeMap::from([(slug, deployment)]);
                }
                Ok(None) => {}
                Err(message) => {
                    tracing::warn!(%message, "a function did not build");
                    return crate::Error::boot(message).into_response();
                }
            }
        }
        request.extensions_mut().insert(Arc::new(config));
        match inner.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// The function's deployment, built anew when its files changed.
    async fn current(&self, slug: &str) -> Result<Option<FunctionDeployment>, String> {
        if let Some(b) = self.lock().get(slug)
            && b.checked.elapsed() < RESCAN
        {
            return Ok(Some(b.deployment.clone()));
        }
        let folder = self.dir.join(slug);
        if !folder.join("index.ts").is_file() {
            self.lock().remove(slug);
            return Ok(None);
        }
        let _held = self.building.lock().await;
        let files = crate::read_folder(&folder).map_err(|e| format!("cannot read {slug}: {e}"))?;
        if let Some(b) = self.lock().get_mut(slug)
            && b.bundle.sources().eq(files.iter())
        {
            b.checked = Instant::now();
            return Ok(Some(b.deployment.clone()));
        }
        let bundle = self.builder.build(files, "index.ts", None).await?;
        let mut built = self.lock();
        let version = built.get(slug).map_or(1, |b| b.deployment.version + 1);
        let deployment = FunctionDeployment {
            id: slug.to_owned(),
            version,
            verify_jwt: self.verify_jwt,
            sha256: bundle.sha256(),
        };
        built.insert(
            slug.to_owned(),
            Built {
                checked: Instant::now(),
                deployment: deployment.clone(),
                bundle: Arc::new(bundle),
            },
        );
        Ok(Some(deployment))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Built>> {
        self.built.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FunctionStore for FolderFunctions {
    fn bundle<'a>(
        &'a self,
        _project: &'a ProjectRef,
        slug: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<Option<Bundle>, DirectoryError>> {
        let found = self
            .lock()
            .get(slug)
            .filter(|b| b.deployment.version == version)
            .map(|b| (*b.bundle).clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    /// Log events go to this process's log, as edge-runtime prints them.
    fn record(&self, events: Vec<LogEvent>) -> BoxFuture<'_, Result<(), DirectoryError>> {
        for e in events {
            tracing::info!(
                function = %e.slug,
                version = e.version,
                event_type = %e.event_type,
                level = %e.level,
                execution_id = %e.execution_id,
                "{}",
                e.event_message
            );
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The one project a standalone server serves.
pub const STANDALONE_REF: &str = "standalonefunctionsx";

/// What Supabase's edge-runtime container is configured with, read from
/// its environment.
#[derive(Debug)]
pub struct EdgeEnv {
    /// `JWT_SECRET`: verifies callers' tokens.
    pub jwt_secret: Secret<String>,
    /// `VERIFY_JWT` (default true).
    pub verify_jwt: bool,
    /// What every function's environment holds: the container's variables
    /// but the runtime's own (`JWT_SECRET`, `VERIFY_JWT`, `PATH`, `HOME`,
    /// `SUPA_*`, `DENO_*`, ...).
    pub function_env: BTreeMap<String, Secret<String>>,
}

/// Variables of the runtime itself, never given to functions.
const RUNTIME_VARS: &[&str] = &[
    "JWT_SECRET",
    "VERIFY_JWT",
    "PATH",
    "HOME",
    "HOSTNAME",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "TERM",
    "USER",
    "LOG_LEVEL",
    "_",
];

/// Reads edge-runtime's environment from `vars`.
pub fn edge_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<EdgeEnv, String> {
    let mut jwt_secret = None;
    let mut verify_jwt = true;
    let mut function_env = BTreeMap::new();
    for (name, value) in vars {
        match name.as_str() {
            "JWT_SECRET" => jwt_secret = Some(value),
            "VERIFY_JWT" => {
                verify_jwt = match value.trim().to_ascii_lowercase().as_str() {
                    "" | "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => {
                        return Err(format!("VERIFY_JWT must be true or false, not {other:?}"));
                    }
                }
            }
            n if RUNTIME_VARS.contains(&n)
                || n.starts_with("SUPA_")
                || n.starts_with("DENO_")
                || n.starts_with("SSL_CERT") => {}
            _ => {
                function_env.insert(name, Secret::new(value));
            }
        }
    }
    let jwt_secret = jwt_secret
        .filter(|s| !s.is_empty())
        .ok_or("JWT_SECRET is required (it verifies callers' tokens)")?;
    Ok(EdgeEnv {
        jwt_secret: Secret::new(jwt_secret),
        verify_jwt,
        function_env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn edge_runtimes_environment_is_read_and_its_own_variables_kept_back() {
        let env = edge_env(vars(&[
            ("JWT_SECRET", "a-secret-of-at-least-32-characters!!"),
            ("VERIFY_JWT", "false"),
            ("SUPABASE_URL", "http://kong:8000"),
            ("STRIPE_KEY", "sk_test"),
            ("PATH", "/usr/bin"),
            ("SUPA_DENO", "/x/deno"),
        ]))
        .unwrap();
        assert!(!env.verify_jwt);
        assert_eq!(
            env.function_env.keys().collect::<Vec<_>>(),
            ["STRIPE_KEY", "SUPABASE_URL"]
        );
        assert!(edge_env(vars(&[("VERIFY_JWT", "true")])).is_err());
        assert!(edge_env(vars(&[("JWT_SECRET", "s"), ("VERIFY_JWT", "maybe")])).is_err());
        assert!(edge_env(vars(&[("JWT_SECRET", "s")])).unwrap().verify_jwt);
    }

    #[test]
    fn the_standalone_ref_is_a_ref() {
        assert!(ProjectRef::parse(STANDALONE_REF).is_ok());
    }

    #[test]
    fn a_functions_folder_is_read_as_deployed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
        std::fs::write(dir.path().join("index.ts"), "a").unwrap();
        std::fs::write(dir.path().join("lib/b.ts"), "b").unwrap();
        std::fs::write(dir.path().join(crate::BUNDLE_FILE), "built").unwrap();
        std::fs::write(dir.path().join("node_modules/x/i.js"), "x").unwrap();
        let files = crate::read_folder(dir.path()).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["index.ts", "lib/b.ts"]);
        std::fs::write(dir.path().join("lib/b.ts"), "c").unwrap();
        assert_ne!(crate::read_folder(dir.path()).unwrap(), files);
    }
}
