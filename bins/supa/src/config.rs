//! `supa config check`: the settings `supa up` would run with, where each
//! comes from, and what the profile refuses.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use supa_core::profile::{Posture, mask_url};
use supa_core::{Profile, env};

/// One setting as `supa up` would see it.
struct Effective {
    var: String,
    value: Option<String>,
    source: &'static str,
    secret: bool,
}

pub(crate) fn check(profile: &Profile, config: Option<&Path>) -> anyhow::Result<()> {
    let from_file = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            env::file_values(&text, profile)?
        }
        None => Vec::new(),
    };
    let cli = crate::Cli::command();
    let up = cli
        .find_subcommand("up")
        .context("the up command is missing")?;
    let mut settings: Vec<Effective> = up
        .get_arguments()
        .filter_map(|arg| {
            let var = arg.get_env()?.to_str()?.to_owned();
            let env_value = std::env::var(&var).ok().filter(|v| !v.is_empty());
            let file_value = from_file
                .iter()
                .find(|(v, _)| *v == var)
                .map(|(_, value)| value.clone());
            let default = arg
                .get_default_values()
                .first()
                .and_then(|d| d.to_str())
                .map(str::to_owned);
            let (value, source) = match (env_value, file_value, default) {
                (Some(v), _, _) => (Some(v), "environment"),
                (None, Some(v), _) => (Some(v), "config file"),
                (None, None, Some(v)) => (Some(v), "default"),
                (None, None, None) => (None, "unset"),
            };
            Some(Effective {
                var,
                value,
                source,
                secret: arg.is_hide_env_values_set(),
            })
        })
        .collect();
    settings.sort_by(|a, b| a.var.cmp(&b.var));

    println!("profile      {}", profile.name().unwrap_or("(none)"));
    println!(
        "config file  {}",
        config.map_or("(none)".to_owned(), |p| p.display().to_string())
    );
    println!();
    let width = settings.iter().map(|s| s.var.len()).max().unwrap_or(0);
    for s in &settings {
        let shown = match (&s.value, s.secret) {
            (None, _) => "-".to_owned(),
            (Some(v), true) if v.contains("://") => mask_url(v),
            (Some(v), true) => format!("*** ({} bytes)", v.len()),
            (Some(v), false) => v.clone(),
        };
        println!("{:width$}  {shown}  ({})", s.var, s.source);
    }

    let value = |var: &str| {
        settings
            .iter()
            .find(|s| s.var == var)
            .and_then(|s| s.value.as_deref())
    };
    let redis_url = env::redis_url(value(env::REDIS_URL), value(env::REDIS_PASSWORD))
        .map_err(anyhow::Error::msg)?;
    let refused = profile.refusals(&Posture {
        embedded_database: value(env::DATABASE_URL).is_none(),
        generated_master_key: value(env::MASTER_KEY).is_none(),
        redis_url: redis_url.as_deref(),
        tokens: vec![
            (env::ADMIN_TOKEN, value(env::ADMIN_TOKEN)),
            (env::SERVICE_TOKEN, value(env::SERVICE_TOKEN)),
        ],
    });
    println!();
    if refused.is_empty() {
        println!("nothing refused (fsync of the databases is checked at start)");
        return Ok(());
    }
    for line in &refused {
        println!("{line}");
    }
    anyhow::bail!("{} setting(s) refused by profile production", refused.len())
}
