//! Supa's metadata service: postgres-meta's API for every project database,
//! on `supa-core` only.
//!
//! Studio, the Supabase CLI and scripts read a project's schema through
//! postgres-meta's endpoints (`/tables`, `/columns`, `/functions`,
//! `/policies`, ...). This crate answers them with the same JSON, one
//! catalog statement per request that builds the whole answer inside
//! PostgreSQL. A [`Meta`] engine serves many projects, each through a small
//! pool opened on first use and closed when idle; how to log in to a
//! project's database comes from a [`Connector`] (the control plane
//! implements it). [`router`] is the axum `Router` the Management API and
//! the gateway mount. [`Meta::typescript`] prints a project's TypeScript
//! types as postgres-meta's generator does, byte for byte.

#![forbid(unsafe_code)]

mod api;
mod catalog;
mod encode;
mod engine;
mod error;
mod request;
mod typegen;
mod write;

pub use api::{router, serve};
pub use engine::{Connector, FixedDatabase, Meta};
pub use error::Error;
pub use request::{Endpoint, Params};
pub use typegen::TypegenOptions;
pub use write::PrivilegeChange;
