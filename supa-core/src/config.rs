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
    /// How an in-process data plane reaches the project's database
    /// (embedded upstream); absent for other upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<ProjectDatabase>,
}

impl ProjectConfig {
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

/// The project database as its authenticator role logs in to it.
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

    fn config(upstream: Upstream) -> ProjectConfig {
        ProjectConfig {
            project_ref: ProjectRef::parse("runvpplxfmoostzzpjco").unwrap(),
            status: ProjectStatus::ActiveHealthy,
            jwt_secret: Secret::new("s".repeat(40)),
            upstream,
            services: ServiceUpstreams::default(),
            database: None,
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let c = config(Upstream::Lambda {
            function_url: "https://abc.lambda-url.eu-west-1.on.aws/".parse().unwrap(),
            region: "eu-west-1".into(),
        });
        let v = serde_json::to_value(&c).unwrap();
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
                }
            })
        );
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
    fn status_names_follow_supabase() {
        assert_eq!(
            serde_json::to_string(&ProjectStatus::ComingUp).unwrap(),
            "\"COMING_UP\""
        );
        assert!(ProjectStatus::ActiveHealthy.is_serving());
        assert!(!ProjectStatus::Inactive.is_serving());
    }
}
