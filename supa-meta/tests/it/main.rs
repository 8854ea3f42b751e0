//! Integration tests of supa-meta against a real PostgreSQL, and against
//! postgres-meta itself reading the same database.

mod differential;
mod support;
mod typegen;
mod writes;
