//! Commands that go through the Management API.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;
use supa_core::{KeyKind, ProjectRef, Secret};
use supa_tenant::client::ManagementClient;
use supa_tenant::{CreateProject, CreateStep, NewApiKey, NewWorker, ServicesPatch, Worker};

use crate::{ApiArgs, table};

/// A Management API client and how to print its answers.
pub(crate) struct Remote {
    client: ManagementClient,
    json: bool,
    gateway_url: String,
}

const WORKER_HEADER: [&str; 6] = ["ID", "ADDRESS", "STATUS", "PROJECTS", "CAPACITY", "WEIGHT"];

fn worker_row(w: &Worker) -> Vec<String> {
    vec![
        w.id.clone(),
        format!("{}:{}", w.host, w.port),
        w.status.as_str().to_owned(),
        w.project_count.to_string(),
        w.max_databases.to_string(),
        w.weight.to_string(),
    ]
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

impl Remote {
    pub(crate) fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let token = match &args.token {
            Some(t) => t.clone(),
            None => {
                let path = args.data_dir.join("admin_token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no admin token: {} is not readable; run `supa up` first, or pass --token",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let urls = args.urls();
        Ok(Self {
            client: ManagementClient::new(&urls.api_url, Secret::new(token))?,
            json: args.json,
            gateway_url: urls.gateway_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The Management API client.
    pub(crate) fn client(&self) -> &ManagementClient {
        &self.client
    }

    /// The gateway's public URL.
    pub(crate) fn gateway_url(&self) -> &str {
        &self.gateway_url
    }

    /// Whether answers are printed as JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON.
    pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
        print_json(value)
    }

    pub(crate) async fn create_project(
        &self,
        name: String,
        project_ref: Option<String>,
        worker_id: Option<String>,
    ) -> anyhow::Result<()> {
        let request = CreateProject {
            name,
            project_ref,
            worker_id,
        };
        let started = Instant::now();
        let total = CreateStep::ALL.len();
        let quiet = self.json;
        let created = self
            .client
            .create_project(&request, |step| {
                if !quiet {
                    let n = CreateStep::ALL.iter().position(|s| *s == step).unwrap_or(0) + 1;
                    eprintln!("  [{n}/{total}] {}", step.describe());
                    std::io::stderr().flush().ok();
                }
            })
            .await?;
        if self.json {
            return print_json(&created);
        }
        let p = &created.project;
        println!(
            "Created project {:?} in {} ms on worker {}",
            p.name,
            started.elapsed().as_millis(),
            p.worker_id
        );
        println!();
        println!("  ref              {}", p.project_ref);
        println!(
            "  API URL          {}/project/{}",
            self.gateway_url, p.project_ref
        );
        println!("  status           {}", status_name(&p.status));
        println!("  publishable key  {}", created.publishable_key);
        println!("  secret key       {}", created.secret_key.expose());
        println!();
        println!("The secret key bypasses Row Level Security: keep it on servers only.");
        println!(
            "See the keys again with: supa keys list {} --reveal",
            p.project_ref
        );
        Ok(())
    }

    pub(crate) async fn list_projects(&self) -> anyhow::Result<()> {
        let projects = self.client.list_projects().await?;
        if self.json {
            return print_json(&projects);
        }
        let rows: Vec<Vec<String>> = projects
            .iter()
            .map(|p| {
                vec![
                    p.project_ref.to_string(),
                    p.name.clone(),
                    status_name(&p.status),
                    p.worker_id.clone(),
                    p.created_at.clone(),
                ]
            })
            .collect();
        table::print(&["REF", "NAME", "STATUS", "WORKER", "CREATED"], &rows);
        Ok(())
    }

    pub(crate) async fn get_project(&self, r: &ProjectRef) -> anyhow::Result<()> {
        let p = self.client.get_project(r).await?;
        if self.json {
            return print_json(&p);
        }
        table::print(
            &["FIELD", "VALUE"],
            &[
                vec!["ref".into(), p.project_ref.to_string()],
                vec!["name".into(), p.name],
                vec!["status".into(), status_name(&p.status)],
                vec!["worker".into(), p.worker_id],
                vec!["created".into(), p.created_at],
            ],
        );
        Ok(())
    }

    pub(crate) async fn set_upstream(
        &self,
        r: &ProjectRef,
        service: &str,
        upstream: supa_core::Upstream,
    ) -> anyhow::Result<()> {
        let mut services = ServicesPatch::default();
        let slot = match service {
            "rest" => None,
            "auth" => Some(&mut services.auth),
            "storage" => Some(&mut services.storage),
            "functions" => Some(&mut services.functions),
            other => bail!("no service {other}"),
        };
        let project = match slot {
            None => self.client.set_upstream(r, Some(&upstream), None).await?,
            Some(slot) => {
                *slot = Some(upstream.clone());
                self.client.set_upstream(r, None, Some(&services)).await?
            }
        };
        if self.json {
            return print_json(&project);
        }
        match upstream {
            supa_core::Upstream::Http { url } => {
                println!("Project {r}'s {service} requests go to {url}.")
            }
            supa_core::Upstream::Lambda { function_url, .. } => {
                println!("Project {r}'s {service} requests go to the Lambda at {function_url}.")
            }
            supa_core::Upstream::Embedded => {
                println!("Project {r}'s {service} requests are served by the gateway.")
            }
        }
        Ok(())
    }

    pub(crate) async fn list_workers(&self) -> anyhow::Result<()> {
        let workers = self.client.list_workers().await?;
        if self.json {
            return print_json(&workers);
        }
        let rows: Vec<Vec<String>> = workers.iter().map(worker_row).collect();
        table::print(&WORKER_HEADER, &rows);
        Ok(())
    }

    /// Registers `new`; the same id at the same address is success, so a
    /// deploy job can run it every time.
    pub(crate) async fn register_worker(&self, new: NewWorker) -> anyhow::Result<()> {
        let worker = match self.client.register_worker(&new).await {
            Ok(worker) => worker,
            Err(e) if e.status() == 409 => {
                let existing = self
                    .client
                    .list_workers()
                    .await?
                    .into_iter()
                    .find(|w| w.id == new.id)
                    .ok_or(e)?;
                if existing.host != new.host || existing.port != i32::from(new.port) {
                    bail!(
                        "worker {} is already registered at {}:{}; delete it first to move it",
                        existing.id,
                        existing.host,
                        existing.port
                    );
                }
                existing
            }
            Err(e) => return Err(e.into()),
        };
        if self.json {
            return print_json(&worker);
        }
        table::print(&WORKER_HEADER, &[worker_row(&worker)]);
        Ok(())
    }

    /// Pauses the project, or resumes it.
    pub(crate) async fn pause_project(&self, r: &ProjectRef, pause: bool) -> anyhow::Result<()> {
        let p = if pause {
            self.client.pause_project(r).await?
        } else {
            self.client.resume_project(r).await?
        };
        if self.json {
            return print_json(&p);
        }
        println!("Project {r} is {}.", status_name(&p.status));
        Ok(())
    }

    pub(crate) async fn backup_project(&self, r: &ProjectRef) -> anyhow::Result<()> {
        let backup = self.client.backup_project(r).await?;
        if self.json {
            return print_json(&backup);
        }
        println!(
            "Backup {} of {r}: database {} bytes, {} objects ({} bytes).",
            backup.id, backup.database_bytes, backup.objects, backup.object_bytes
        );
        Ok(())
    }

    pub(crate) async fn list_backups(&self, r: &ProjectRef) -> anyhow::Result<()> {
        let backups = self.client.list_backups(r).await?;
        if self.json {
            return print_json(&backups);
        }
        let rows: Vec<Vec<String>> = backups
            .iter()
            .map(|b| {
                vec![
                    b.id.clone(),
                    b.inserted_at.clone(),
                    b.kind.clone(),
                    b.status.clone(),
                    b.database_bytes.to_string(),
                    b.objects.to_string(),
                ]
            })
            .collect();
        table::print(
            &["ID", "TAKEN", "KIND", "STATUS", "DATABASE BYTES", "OBJECTS"],
            &rows,
        );
        Ok(())
    }

    pub(crate) async fn restore_backup(&self, r: &ProjectRef, id: &str) -> anyhow::Result<()> {
        let p = self.client.restore_backup(r, id).await?;
        if self.json {
            return print_json(&p);
        }
        println!(
            "Restored backup {id} into {r}, which is {}.",
            status_name(&p.status)
        );
        Ok(())
    }

    pub(crate) async fn set_backup_schedule(
        &self,
        r: &ProjectRef,
        schedule: &supa_tenant::BackupSchedule,
    ) -> anyhow::Result<()> {
        let s = self.client.set_backup_schedule(r, schedule).await?;
        if self.json {
            return print_json(&s);
        }
        if s.enabled {
            println!(
                "Daily backups of {r} after {:02}:00 UTC, each kept {} days.",
                s.hour_utc, s.retention_days
            );
        } else {
            println!("Daily backups of {r} are off.");
        }
        Ok(())
    }

    pub(crate) async fn delete_project(&self, r: &ProjectRef) -> anyhow::Result<()> {
        let deleted = self.client.delete_project(r).await?;
        if self.json {
            return print_json(&deleted);
        }
        println!("Deleted project {r}: its database, role, keys and secrets are gone.");
        Ok(())
    }

    pub(crate) async fn list_keys(&self, r: &ProjectRef, reveal: bool) -> anyhow::Result<()> {
        let keys = self.client.list_keys(r, reveal).await?;
        if self.json {
            return print_json(&keys);
        }
        let rows: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                vec![
                    k.id.clone(),
                    k.name.clone(),
                    k.kind.as_str().to_owned(),
                    k.api_key.clone(),
                ]
            })
            .collect();
        table::print(&["ID", "NAME", "TYPE", "API KEY"], &rows);
        Ok(())
    }

    pub(crate) async fn create_key(&self, r: &ProjectRef, name: String) -> anyhow::Result<()> {
        let key = self
            .client
            .create_key(
                r,
                &NewApiKey {
                    kind: KeyKind::Secret,
                    name,
                },
            )
            .await?;
        if self.json {
            return print_json(&key);
        }
        println!("Created secret key {:?} ({})", key.name, key.id);
        println!("  {}", key.api_key);
        Ok(())
    }

    pub(crate) async fn revoke_key(&self, r: &ProjectRef, id: &str) -> anyhow::Result<()> {
        let key = self.client.revoke_key(r, id).await?;
        if self.json {
            return print_json(&key);
        }
        println!(
            "Revoked key {:?} ({}); gateways stop accepting it now.",
            key.name, key.id
        );
        Ok(())
    }

    pub(crate) async fn set_secrets(&self, r: &ProjectRef, pairs: &[String]) -> anyhow::Result<()> {
        let mut secrets = Vec::new();
        for pair in pairs {
            let Some((name, value)) = pair.split_once('=') else {
                bail!("{pair:?} is not NAME=VALUE");
            };
            secrets.push((name.to_owned(), Secret::new(value.to_owned())));
        }
        let listed = self.client.set_secrets(r, &secrets).await?;
        self.print_secrets(&listed)
    }

    pub(crate) async fn list_secrets(&self, r: &ProjectRef) -> anyhow::Result<()> {
        let listed = self.client.list_secrets(r).await?;
        self.print_secrets(&listed)
    }

    pub(crate) async fn unset_secrets(
        &self,
        r: &ProjectRef,
        names: &[String],
    ) -> anyhow::Result<()> {
        let listed = self.client.unset_secrets(r, names).await?;
        self.print_secrets(&listed)
    }

    fn print_secrets(&self, listed: &[supa_tenant::SecretDigest]) -> anyhow::Result<()> {
        if self.json {
            return print_json(&listed);
        }
        let rows: Vec<Vec<String>> = listed
            .iter()
            .map(|s| vec![s.name.clone(), s.value.clone()])
            .collect();
        table::print(&["NAME", "SHA-256 OF VALUE"], &rows);
        Ok(())
    }

    /// Prints the project's TypeScript types, the file as it is.
    pub(crate) async fn types(&self, r: &ProjectRef, schemas: &[String]) -> anyhow::Result<()> {
        let types = self.client.typescript_types(r, schemas).await?;
        std::io::stdout().write_all(types.as_bytes())?;
        Ok(())
    }

    /// The project's users, as the auth schema has them (no hash, no
    /// token).
    pub(crate) async fn auth_users(&self, r: &ProjectRef) -> anyhow::Result<()> {
        self.sql(
            r,
            "SELECT id, email, phone, is_anonymous AS anonymous,
                    email_confirmed_at IS NOT NULL AS confirmed,
                    coalesce(banned_until > now(), false) AS banned,
                    created_at, last_sign_in_at
             FROM auth.users WHERE deleted_at IS NULL ORDER BY created_at, id",
        )
        .await
    }

    /// The project's auth e-mails, each with the first link it carries.
    pub(crate) async fn auth_outbox(
        &self,
        r: &ProjectRef,
        email: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<()> {
        let mails = self.client.auth_outbox(r, email, limit).await?;
        if self.json {
            return print_json(&mails);
        }
        let cells: Vec<Vec<String>> = mails
            .iter()
            .map(|m| {
                let body = m["body"].as_str().unwrap_or("");
                let status = if !m["smtp"].as_bool().unwrap_or(false) {
                    "outbox".to_owned()
                } else if !m["sent_at"].is_null() {
                    "sent".to_owned()
                } else {
                    format!("pending ({} attempts)", m["attempts"])
                };
                vec![
                    table::cell(&m["created_at"]),
                    table::cell(&m["kind"]),
                    table::cell(&m["recipient"]),
                    status,
                    first_link(body).unwrap_or_default(),
                ]
            })
            .collect();
        table::print(&["sent", "kind", "to", "status", "link"], &cells);
        println!("({} e-mails)", mails.len());
        Ok(())
    }

    pub(crate) async fn sql(&self, r: &ProjectRef, sql: &str) -> anyhow::Result<()> {
        let rows = self.client.query(r, sql).await?;
        if self.json {
            return print_json(&rows);
        }
        // Columns in the order of the first row (the API keeps it).
        let headers: Vec<String> = rows
            .first()
            .and_then(|row| row.as_object())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        if headers.is_empty() {
            println!("OK ({} rows)", rows.len());
            return Ok(());
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| headers.iter().map(|h| table::cell(&row[h])).collect())
            .collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        table::print(&headers, &cells);
        println!("({} rows)", rows.len());
        Ok(())
    }
}

/// The first `href` of an e-mail's HTML, unescaped.
fn first_link(html: &str) -> Option<String> {
    let start = html.find("href=\"")? + 6;
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&#34;", "\"")
            .replace("&#39;", "'"),
    )
}

fn status_name(status: &impl Serialize) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
