//! Supa's data plane: a PostgREST-compatible engine, layered on
//! `supa-core` and `supa-keys`.
//!
//! A request goes URL -> AST ([`grammar`], [`request`]) -> one SQL statement
//! that builds the whole body inside PostgreSQL ([`plan`]) -> a transaction
//! that sets the role, the JWT claims and the request GUCs first
//! ([`service`]). Identifiers are always quoted and values always bound.
//! One [`Engine`] serves many databases (one per project), each with its own
//! bounded pool and schema cache, created on first use.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod config;
pub mod cors;
pub mod db;
mod engine;
mod error;
pub mod grammar;
mod jwt;
pub mod openapi;
pub mod plan;
pub mod request;
pub mod schema;
pub mod service;
pub mod sql;

pub use config::{RestConfig, TxEnd};
pub use engine::{Engine, listen_for_reloads};
pub use error::{Error, sqlstate_status};
pub use service::{Auth, Service};
