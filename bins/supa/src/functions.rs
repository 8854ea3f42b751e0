//! `supa functions`: edge functions in Supabase's folder layout
//! (`supabase/functions/<slug>/index.ts`), deployed through the
//! Management API.

use std::path::Path;

use anyhow::{Context as _, bail};
use supa_core::ProjectRef;

use crate::remote::Remote;
use crate::table;

/// What `supa functions new` writes: Supabase's template.
const TEMPLATE: &str = r#"// Invoke with supabase.functions.invoke("SLUG", { body: { name: "Functions" } }).
Deno.serve(async (req) => {
  const { name } = await req.json();
  const data = { message: `Hello ${name}!` };
  return new Response(JSON.stringify(data), {
    headers: { "Content-Type": "application/json" },
  });
});
"#;

pub(crate) fn new(dir: &Path, slug: &str) -> anyhow::Result<()> {
    supa_tenant::validate_slug(slug)?;
    let folder = dir.join(slug);
    let entry = folder.join("index.ts");
    if entry.exists() {
        bail!("{} already exists", entry.display());
    }
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    std::fs::write(&entry, TEMPLATE.replace("SLUG", slug))
        .with_context(|| format!("cannot write {}", entry.display()))?;
    println!("Created {}", entry.display());
    Ok(())
}

/// What to deploy.
pub(crate) struct Deploy<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) slug: &'a str,
    pub(crate) entrypoint: &'a str,
    pub(crate) import_map: Option<&'a str>,
    pub(crate) verify_jwt: bool,
}

pub(crate) async fn deploy(remote: &Remote, r: &ProjectRef, d: &Deploy<'_>) -> anyhow::Result<()> {
    let root = d.dir.join(d.slug);
    let files = supa_functions::read_folder(&root)
        .with_context(|| format!("cannot read {}", root.display()))?;
    if files.is_empty() {
        bail!("{} has no files to deploy", root.display());
    }
    let mut metadata = serde_json::json!({
        "entrypoint_path": d.entrypoint,
        "name": d.slug,
        "verify_jwt": d.verify_jwt,
    });
    if let Some(map) = d.import_map {
        metadata["import_map_path"] = map.into();
    }
    let function = remote
        .client()
        .deploy_function(r, d.slug, &metadata, &files)
        .await?;
    if remote.json() {
        return Remote::print_json(&function);
    }
    println!(
        "Deployed {} version {} ({} files); invoke it at {}/project/{r}/functions/v1/{}",
        function.slug,
        function.version,
        files.len(),
        remote.gateway_url(),
        function.slug
    );
    Ok(())
}

pub(crate) async fn list(remote: &Remote, r: &ProjectRef) -> anyhow::Result<()> {
    let functions = remote.client().list_functions(r).await?;
    if remote.json() {
        return Remote::print_json(&functions);
    }
    let rows: Vec<Vec<String>> = functions
        .iter()
        .map(|f| {
            vec![
                f.slug.clone(),
                f.name.clone(),
                f.version.to_string(),
                f.status.clone(),
                f.verify_jwt.to_string(),
                supa_core::time::iso8601_millis(u64::try_from(f.updated_at).unwrap_or(0)),
            ]
        })
        .collect();
    table::print(
        &[
            "slug",
            "name",
            "version",
            "status",
            "verify_jwt",
            "updated_at",
        ],
        &rows,
    );
    Ok(())
}

pub(crate) async fn delete(remote: &Remote, r: &ProjectRef, slug: &str) -> anyhow::Result<()> {
    remote.client().delete_function(r, slug).await?;
    println!("Deleted function {slug}.");
    Ok(())
}

pub(crate) async fn logs(
    remote: &Remote,
    r: &ProjectRef,
    slug: &str,
    limit: i64,
) -> anyhow::Result<()> {
    let mut events = remote.client().function_logs(r, slug, limit).await?;
    events.reverse();
    if remote.json() {
        return Remote::print_json(&events);
    }
    for e in &events {
        let micros = e["timestamp"].as_u64().unwrap_or(0);
        let when = supa_core::time::iso8601_millis(micros / 1_000);
        println!(
            "{when}  {:<10} {:<5} [{}] {}",
            e["event_type"].as_str().unwrap_or(""),
            e["level"].as_str().unwrap_or(""),
            e["execution_id"].as_str().unwrap_or(""),
            e["event_message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
