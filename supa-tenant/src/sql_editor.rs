//! What Studio's SQL editor keeps per project: the queries run (the newest
//! [`HISTORY_KEPT`]) and snippets saved by name.

use sqlx::Row;
use supa_core::ProjectRef;

use crate::{Error, Tenant};

/// Queries kept in a project's history.
pub const HISTORY_KEPT: i64 = 50;

/// A query that was run.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Identifier.
    pub id: i64,
    /// The query text.
    pub query: String,
    /// The error it failed with, if it did.
    pub error: Option<String>,
    /// Rows returned, when it succeeded.
    pub row_count: Option<i32>,
    /// When, ISO 8601.
    pub ran_at: String,
}

/// A saved query.
#[derive(Debug, Clone)]
pub struct Snippet {
    /// Identifier (UUID).
    pub id: String,
    /// Name, unique in the project.
    pub name: String,
    /// The query text.
    pub query: String,
}

impl Tenant {
    /// Records a query run in the project's history, dropping the oldest
    /// beyond [`HISTORY_KEPT`].
    pub async fn record_sql(
        &self,
        project_ref: &ProjectRef,
        query: &str,
        outcome: Result<usize, &str>,
    ) -> Result<(), Error> {
        let (error, rows) = match outcome {
            Ok(n) => (None, Some(i32::try_from(n).unwrap_or(i32::MAX))),
            Err(e) => (Some(e), None),
        };
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO sql_history (project_ref, query, error, row_count) VALUES ($1, $2, $3, $4)")
            .bind(project_ref.as_str())
            .bind(query)
            .bind(error)
            .bind(rows)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM sql_history WHERE project_ref = $1 AND id NOT IN
               (SELECT id FROM sql_history WHERE project_ref = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(project_ref.as_str())
        .bind(HISTORY_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The project's history, newest first.
    pub async fn sql_history(&self, project_ref: &ProjectRef) -> Result<Vec<HistoryEntry>, Error> {
        let rows = sqlx::query(
            "SELECT id, query, error, row_count,
                    to_char(ran_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS ran_at
             FROM sql_history WHERE project_ref = $1 ORDER BY id DESC",
        )
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    id: r.try_get("id")?,
                    query: r.try_get("query")?,
                    error: r.try_get("error")?,
                    row_count: r.try_get("row_count")?,
                    ran_at: r.try_get("ran_at")?,
                })
            })
            .collect()
    }

    /// Saves a snippet; the same name replaces the query.
    pub async fn save_snippet(
        &self,
        project_ref: &ProjectRef,
        name: &str,
        query: &str,
    ) -> Result<Snippet, Error> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name", "must be 1-100 characters"));
        }
        if query.trim().is_empty() {
            return Err(Error::invalid("query", "must not be empty"));
        }
        self.get_project(project_ref).await?;
        let id: String = sqlx::query_scalar(
            "INSERT INTO sql_snippets (project_ref, name, query) VALUES ($1, $2, $3)
             ON CONFLICT (project_ref, name) DO UPDATE SET query = EXCLUDED.query, updated_at = now()
             RETURNING id::text",
        )
        .bind(project_ref.as_str())
        .bind(name)
        .bind(query)
        .fetch_one(&self.db)
        .await?;
        Ok(Snippet {
            id,
            name: name.to_owned(),
            query: query.to_owned(),
        })
    }

    /// The project's snippets, by name.
    pub async fn snippets(&self, project_ref: &ProjectRef) -> Result<Vec<Snippet>, Error> {
        let rows = sqlx::query(
            "SELECT id::text AS id, name, query FROM sql_snippets WHERE project_ref = $1 ORDER BY name",
        )
        .bind(project_ref.as_str())
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Snippet {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    query: r.try_get("query")?,
                })
            })
            .collect()
    }
}
