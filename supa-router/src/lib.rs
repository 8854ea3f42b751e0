//! Supa's gateway, above `supa-rest` in the crate graph.
//!
//! For each request ([DESIGN section 4]): resolve the project from the
//! `Host` or the `/project/{ref}` prefix, check the opaque API key (checksum
//! first, then its hash in the key cache), load the project's config
//! (memory cache, then the [`ProjectDirectory`]), pick the JWT (a user's,
//! verified, or one minted for the key's role) and hand the request to the
//! project's upstream: the in-process data plane, an HTTP server, or an AWS
//! Lambda Function URL. Caches fetch one key or project at a time, keep
//! negative answers for 5 s at most and never cache a backend failure.
//!
//! [`ProjectDirectory`]: supa_core::ProjectDirectory

#![forbid(unsafe_code)]

mod cors;
mod directory;
mod error;
mod gateway;
mod invalidation;
mod metrics;
mod pool;
mod rate;
mod services;
mod upstream;
mod usage;

pub use directory::{HttpDirectory, RedisDirectory};
pub use error::Error;
pub use gateway::{Gateway, GatewayConfig};
pub use invalidation::{CHANNEL, follow_invalidations};
pub use metrics::Metrics;
pub use rate::RateLimit;
pub use services::{KeyPolicy, SERVICES, ServiceEntry, Target, remote_meta};
pub use usage::hand_usage_to_redis;
