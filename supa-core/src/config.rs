use serde::{Deserialize, Serialize};
use url::Url;

use crate::{Error, KeyKind, ProjectRef, Secret, serialize_exposed};

/// A project's lifecycle state, spelled as Supabase's Management API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ProjectStatus {
    /// Being created; not serving yet.
    ComingUp,
    /// Created and serving requests.
    ActiveHealthy,
    /// Paused by its owner; requests get 503.
    Inactive,
    /// Creation failed and was rolled back.
    InitFailed,
    /// Being deleted.
    GoingDown,
    /// Deleted.
    Removed,
    /// Being paused.
    Pausing,
    /// Being restored from a pause.
    Restoring,
    /// Being restarted.
    Restarting,
    /// Being upgraded.
    Upgrading,
    /// A pause that did not complete.
    PauseFailed,
    /// A restore that did not complete.
    RestoreFailed,
    /// The control plane cannot tell.
    Unknown,
}

impl ProjectStatus {
    /// The status as the Management API spells it (`ACTIVE_HEALTHY`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::ComingUp => "COMING_UP",
            ProjectStatus::ActiveHealthy => "ACTIVE_HEALTHY",
            ProjectStatus::Inactive => "INACTIVE",
            ProjectStatus::InitFailed => "INIT_FAILED",
            ProjectStatus::GoingDown => "GOING_DOWN",
            ProjectStatus::Removed => "REMOVED",
            ProjectStatus::Pausing => "PAUSING",
            ProjectStatus::Restoring => "RESTORING",
            ProjectStatus::Restarting => "RESTARTING",
            ProjectStatus::Upgrading => "UPGRADING",
            ProjectStatus::PauseFailed => "PAUSE_FAILED",
            ProjectStatus::RestoreFailed => "RESTORE_FAILED",
            ProjectStatus::Unknown => "UNKNOWN",
        }
    }

    /// Whether the gateway should route requests to the project.
    pub fn is_serving(self) -> bool {
        self == ProjectStatus::ActiveHealthy
    }
}

/// Where the gateway sends a project's requests for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Upstream {
    /// The service linked into the gateway process: no HTTP hop.
    #[default]
    Embedded,
    /// Any PostgREST-compatible server reachable over HTTP.
    Http {
        /// Base URL; the gateway appends the path after `/rest/v1`.
        url: Url,
    },
    /// An AWS Lambda Function URL with `AWS_IAM` auth, reached with SigV4.
    Lambda {
        /// The function URL, `https://<id>.lambda-url.<region>.on.aws/`.
        function_url: Url,
        /// The AWS region that signs the request (`us-east-1`).
        region: String,
    },
}

impl Upstream {
    /// Checks what serde cannot: URL schemes and the region's spelling.
    pub fn validate(&self) -> Result<(), Error> {
        let check_url = |url: &Url| {
            if matches!(url.scheme(), "http" | "https") && url.host().is_some() {
                Ok(())
            } else {
                Err(Error::InvalidUpstream(format!(
                    "{url} is not an http(s) URL with a host"
                )))
            }
        };
        match self {
            Upstream::Embedded => Ok(()),
            Upstream::Http { url } => check_url(url),
            Upstream::Lambda {
                function_url,
                region,
            } => {
                check_url(function_url)?;
                let well_formed = !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if well_formed {
                    Ok(())
                } else {
                    Err(Error::InvalidUpstream(format!(
                        "region {region:?} must look like us-east-1"
                    )))
                }
            }
        }
    }

    /// A short name for metrics and logs: `embedded`, `http` or `lambda`.
    pub fn kind(&self) -> &'static str {
        match self {
            Upstream::Embedded => "embedded",
            Upstream::Http { .. } => "http",
            Upstream::Lambda { .. } => "lambda",
        }
    }
}

/// The Supabase services a project's requests go to, each mounted under
/// its own prefix by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Service {
    /// `/rest/v1`: the data plane.
    Rest,
    /// `/auth/v1`.
    Auth,
    /// `/storage/v1`.
    Storage,
    /// `/realtime/v1`.
    Realtime,
    /// `/functions/v1`.
    Functions,
}

/// Where the services other than the data plane run for a project; each is
/// embedded unless the platform API points it elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceUpstreams {
    /// `/auth/v1`.
    #[serde(default)]
    pub auth: Upstream,
    /// `/storage/v1`.
    #[serde(default)]
    pub storage: Upstream,
    /// `/realtime/v1`.
    #[serde(default)]
    pub realtime: Upstream,
    /// `/functions/v1`.
    #[serde(default)]
    pub functions: Upstream,
}

/// A project's data plane settings, as Supabase's Management API names
/// them (`/v1/projects/{ref}/postgrest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgrestSettings {
    /// Exposed schemas, comma-separated; the first is the default one.
    pub db_schema: String,
    /// The most rows one read returns.
    pub max_rows: i64,
    /// Schemas added to every request's `search_path`, comma-separated.
    pub db_extra_search_path: String,
    /// Connections of the project's pool; the platform's default when null.
    pub db_pool: Option<i64>,
    /// Whether `Accept: application/vnd.pgrst.plan` answers with the
    /// statement's execution plan (PostgREST's `db-plan-enabled`; off by
    /// default, as plans show a database's shape).
    pub db_plan_enabled: bool,
}

impl Default for PostgrestSettings {
    fn default() -> Self {
        Self {
            db_schema: "public, graphql_public".into(),
            max_rows: 1000,
            db_extra_search_path: "public, extensions".into(),
            db_pool: None,
            db_plan_enabled: false,
        }
    }
}

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`).
const MAX_IDENTIFIER: usize = 63;

impl PostgrestSettings {
    /// Splits a comma-separated list of schemas.
    pub fn schemas(list: &str) -> Vec<String> {
        list.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, reason: String| Err(Error::InvalidSetting { field, reason });
        let check_list = |field: &'static str, list: &str, required: bool| {
            let names = Self::schemas(list);
            if required && names.is_empty() {
                return invalid(field, "must name at least one schema".into());
            }
            if list.split(',').any(|s| s.trim().is_empty()) && !list.trim().is_empty() {
                return invalid(field, format!("{list:?} has an empty item"));
            }
            for name in &names {
                if name.len() > MAX_IDENTIFIER || name.chars().any(char::is_control) {
                    return invalid(
                        field,
                        format!(
                            "{name:?} is not a schema name (1-{MAX_IDENTIFIER} bytes, no control characters)"
                        ),
                    );
                }
            }
            Ok(())
        };
        check_list("db_schema", &self.db_schema, true)?;
        check_list("db_extra_search_path", &self.db_extra_search_path, false)?;
        if !(1..=1_000_000).contains(&self.max_rows) {
            return invalid(
                "max_rows",
                format!("{} is not between 1 and 1000000", self.max_rows),
            );
        }
        if let Some(pool) = self.db_pool
            && !(1..=1000).contains(&pool)
        {
            return invalid("db_pool", format!("{pool} is not between 1 and 1000"));
        }
        Ok(())
    }
}

/// What a gateway needs to know about a project to serve one request.
///
/// Travels from the control plane's directory to gateways (in process, through
/// Redis, or over the internal API), so the JWT secret is serialized in clear;
/// every one of those channels is authenticated and never public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectConfig {
    /// The project's ref.
    #[serde(rename = "ref")]
    pub project_ref: ProjectRef,
    /// Lifecycle state; only `ACTIVE_HEALTHY` projects are served.
    pub status: ProjectStatus,
    /// The HS256 secret that signs and verifies the project's JWTs.
    #[serde(serialize_with = "serialize_exposed")]
    pub jwt_secret: Secret<String>,
    /// Where `/rest/v1` requests go.
    pub upstream: Upstream,
    /// Where the other services' requests go.
    #[serde(default)]
    pub services: ServiceUpstreams,
    /// How the data plane serves the project.
    #[serde(default)]
    pub postgrest: PostgrestSettings,
    /// How the auth server serves the project.
    #[serde(default)]
    pub auth: crate::AuthSettings,
    /// How the storage server serves the project.
    #[serde(default)]
    pub storage: crate::StorageSettings,
    /// How the realtime server serves the project.
    #[serde(default)]
    pub realtime: crate::RealtimeSettings,
    /// The project's edge functions and their environment.
    #[serde(default)]
    pub functions: crate::FunctionsConfig,
    /// The SMTP password of `auth` (write-only in the Management API).
    #[serde(
        default,
        serialize_with = "crate::secret::serialize_exposed_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub smtp_pass: Option<Secret<String>>,
    /// The write-only secrets of `auth` other than `smtp_pass`, by field
    /// name ([`crate::AUTH_SECRET_FIELDS`]: OAuth client secrets, hook
    /// signing secrets).
    #[serde(
        default,
        serialize_with = "crate::secret::serialize_exposed_map",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub auth_secrets: std::collections::BTreeMap<String, Secret<String>>,
    /// The project's live publishable key (public by design): S3 clients
    /// that send a user's JWT as their session token sign with it, as
    /// Supabase's S3 endpoint has them sign with the anon key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishable_key: Option<String>,
    /// The secrets of the project's S3 access keys, by access key id.
    #[serde(
        default,
        serialize_with = "crate::secret::serialize_exposed_map",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub s3_credentials: std::collections::BTreeMap<String, Secret<String>>,
    /// How an in-process data plane reaches the project's database
    /// (embedded upstream); absent for other upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<ProjectDatabase>,
    /// How the auth server reaches it (`{ref}_auth`, acting as
    /// `supabase_auth_admin`); absent for projects made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_database: Option<ProjectDatabase>,
    /// How the storage server reaches it (`{ref}_storage`, acting as
    /// `supabase_storage_admin` or the request's API role); absent for
    /// projects made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_database: Option<ProjectDatabase>,
    /// How the realtime server reaches it (`{ref}_realtime`, acting as
    /// `supabase_realtime_admin` or a subscriber's API role); absent for
    /// projects made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_database: Option<ProjectDatabase>,
}

impl ProjectConfig {
    /// The one active project of a standalone server (`supa-auth`,
    /// `supa-storage`), signed with `jwt_secret`, everything else at its
    /// default; the server sets its own settings and login on it.
    pub fn standalone(project_ref: ProjectRef, jwt_secret: Secret<String>) -> Self {
        Self {
            project_ref,
            status: ProjectStatus::ActiveHealthy,
            jwt_secret,
            upstream: Upstream::default(),
            services: ServiceUpstreams::default(),
            postgrest: PostgrestSettings::default(),
            auth: crate::AuthSettings::default(),
            storage: crate::StorageSettings::default(),
            realtime: crate::RealtimeSettings::default(),
            functions: crate::FunctionsConfig::default(),
            smtp_pass: None,
            auth_secrets: Default::default(),
            publishable_key: None,
            s3_credentials: Default::default(),
            database: None,
            auth_database: None,
            storage_database: None,
            realtime_database: None,
        }
    }

    /// Where `service`'s requests for this project go.
    pub fn upstream_of(&self, service: Service) -> &Upstream {
        match service {
            Service::Rest => &self.upstream,
            Service::Auth => &self.services.auth,
            Service::Storage => &self.services.storage,
            Service::Realtime => &self.services.realtime,
            Service::Functions => &self.services.functions,
        }
    }
}

/// The project database as one of its login roles reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDatabase {
    /// Worker host.
    pub host: String,
    /// Worker port.
    pub port: u16,
    /// Database name (`proj_{ref}`).
    pub name: String,
    /// Login role (`{ref}_authenticator`).
    pub user: String,
    /// Its password.
    #[serde(serialize_with = "serialize_exposed")]
    pub password: Secret<String>,
}

/// What the directory knows about a live API key, found by the key's SHA-256:
/// the gateway still checks that the ref matches the project addressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The project the key belongs to.
    #[serde(rename = "ref")]
    pub project_ref: ProjectRef,
    /// Publishable or secret.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// The key's id in the Management API.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_serialized_ones() {
        for status in [
            ProjectStatus::ComingUp,
            ProjectStatus::ActiveHealthy,
            ProjectStatus::InitFailed,
            ProjectStatus::PauseFailed,
            ProjectStatus::Unknown,
        ] {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
        }
    }

    fn config(upstream: Upstream) -> ProjectConfig {
        ProjectConfig {
            upstream,
            ..ProjectConfig::standalone(
                ProjectRef::parse("runvpplxfmoostzzpjco").unwrap(),
                Secret::new("s".repeat(40)),
            )
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let c = config(Upstream::Lambda {
            function_url: "https://abc.lambda-url.eu-west-1.on.aws/".parse().unwrap(),
            region: "eu-west-1".into(),
        });
        let mut v = serde_json::to_value(&c).unwrap();
        // The auth settings travel whole (their names are Supabase's, tested
        // with them); the rest of the shape is fixed here.
        let auth = v.as_object_mut().unwrap().remove("auth").unwrap();
        assert_eq!(
            (&auth["jwt_exp"], &auth["mailer_autoconfirm"]),
            (&serde_json::json!(3600), &serde_json::json!(false))
        );
        assert!(v.get("smtp_pass").is_none());
        // So do the realtime settings (checked in their own module).
        let realtime = v.as_object_mut().unwrap().remove("realtime").unwrap();
        assert_eq!(realtime["max_concurrent_users"], 200);
        assert_eq!(
            v,
            serde_json::json!({
                "ref": "runvpplxfmoostzzpjco",
                "status": "ACTIVE_HEALTHY",
                "jwt_secret": "s".repeat(40),
                "upstream": {
                    "kind": "lambda",
                    "function_url": "https://abc.lambda-url.eu-west-1.on.aws/",
                    "region": "eu-west-1"
                },
                "services": {
                    "auth": {"kind": "embedded"},
                    "storage": {"kind": "embedded"},
                    "realtime": {"kind": "embedded"},
                    "functions": {"kind": "embedded"}
                },
                "postgrest": {
                    "db_schema": "public, graphql_public",
                    "max_rows": 1000,
                    "db_extra_search_path": "public, extensions",
                    "db_pool": null,
                    "db_plan_enabled": false
                },
                "functions": {"deployments": {}},
                "storage": {
                    "fileSizeLimit": 52428800,
                    "features": {
                        "imageTransformation": {"enabled": true},
                        "s3Protocol": {"enabled": true}
                    }
                }
            })
        );
        // Write-only auth secrets travel only when there are some.
        assert!(v.get("auth_secrets").is_none());
        assert_eq!(serde_json::from_value::<ProjectConfig>(v).unwrap(), c);
        // Debug output masks the secret.
        assert!(!format!("{c:?}").contains("ssss"));
    }

    #[test]
    fn upstream_validation() {
        assert!(Upstream::Embedded.validate().is_ok());
        let http = |u: &str| Upstream::Http {
            url: u.parse().unwrap(),
        };
        assert!(http("http://127.0.0.1:3000").validate().is_ok());
        assert!(http("ftp://example.com").validate().is_err());
        let lambda = |r: &str| Upstream::Lambda {
            function_url: "https://x.lambda-url.us-east-1.on.aws/".parse().unwrap(),
            region: r.into(),
        };
        assert!(lambda("us-east-1").validate().is_ok());
        assert!(lambda("").validate().is_err());
        assert!(lambda("US East").validate().is_err());
        assert_eq!(lambda("us-east-1").kind(), "lambda");
    }

    #[test]
    fn postgrest_settings_are_checked_field_by_field() {
        assert!(PostgrestSettings::default().validate().is_ok());
        let with = |f: &dyn Fn(&mut PostgrestSettings)| {
            let mut s = PostgrestSettings::default();
            f(&mut s);
            s.validate().map_err(|e| e.field())
        };
        assert_eq!(with(&|s| s.max_rows = 0), Err("max_rows"));
        assert_eq!(with(&|s| s.db_pool = Some(0)), Err("db_pool"));
        assert_eq!(with(&|s| s.db_schema = " ".into()), Err("db_schema"));
        assert_eq!(
            with(&|s| s.db_schema = "public,,api".into()),
            Err("db_schema")
        );
        assert_eq!(with(&|s| s.db_schema = "x".repeat(64)), Err("db_schema"));
        assert_eq!(
            with(&|s| s.db_extra_search_path = "a\u{0}".into()),
            Err("db_extra_search_path")
        );
        assert_eq!(with(&|s| s.db_extra_search_path = String::new()), Ok(()));
        assert_eq!(
            with(&|s| s.db_schema = "public, \"My Schema\"".into()),
            Ok(())
        );
        assert_eq!(
            PostgrestSettings::schemas(" public , api"),
            ["public", "api"]
        );
    }

    #[test]
    fn status_names_follow_supabase() {
        assert_eq!(
            serde_json::to_string(&ProjectStatus::ComingUp).unwrap(),
            "\"COMING_UP\""
        );
        assert!(ProjectStatus::ActiveHealthy.is_serving());
        assert!(!ProjectStatus::Inactive.is_serving());
    }
}
