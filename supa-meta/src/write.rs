//! postgres-meta's write endpoints: create, update and delete of schemas,
//! tables, columns, extensions, functions, policies, triggers,
//! publications, roles and privileges.
//!
//! Each change is DDL put together by PostgreSQL's own `format()` from a
//! template of ours and bound values (`%I` identifiers, `%L` literals), then
//! run as one implicit transaction with `NOTIFY pgrst` after it, and the
//! object is read back through the same catalog query the read endpoints
//! use. Only the parts postgres-meta itself takes as SQL (a column's type,
//! a default given as an expression, check and policy expressions, a
//! function's argument list and body language) travel as SQL text (`%s`);
//! every keyword chosen from a fixed set (events, timings, commands) is
//! checked against that set first.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use supa_core::ProjectRef;

use crate::{Endpoint, Error, Meta, Params};

/// DDL being put together: a `format()` template and its arguments.
#[derive(Debug, Default)]
pub(crate) struct Ddl {
    template: String,
    args: Vec<Option<String>>,
}

impl Ddl {
    /// Appends one statement; `%I`, `%L` and `%s` take `args` in order.
    fn push(&mut self, template: &str, args: &[&str]) {
        self.template.push_str(template);
        self.template.push_str(";\n");
        self.args.extend(args.iter().map(|a| Some((*a).to_owned())));
    }

    /// Appends one statement whose `%L` may be NULL.
    fn push_nullable(&mut self, template: &str, args: &[Option<&str>]) {
        self.template.push_str(template);
        self.template.push_str(";\n");
        self.args.extend(args.iter().map(|a| a.map(str::to_owned)));
    }

    fn is_empty(&self) -> bool {
        self.template.is_empty()
    }
}

/// A keyword from a fixed set, or a 400 naming the field.
fn keyword<'a>(field: &str, value: &'a str, allowed: &[&str]) -> Result<&'a str, Error> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(Error::BadRequest(format!(
            "body/{field} must be one of {}",
            allowed.join(", ")
        )))
    }
}

/// A JSON request body, or a 400 saying what is wrong with it.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest("body must be a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("body: {e}")))
}

/// A type as postgres-meta takes it: `text`, `text[]` (quoted name), or a
/// qualified or parameterized type (`public.mood`, `numeric(10,2)`) as SQL.
fn type_sql(ty: &str) -> (&'static str, String) {
    if let Some(element) = ty.strip_suffix("[]") {
        if element.contains(['.', '(']) {
            ("%s[]", element.to_owned())
        } else {
            ("%I[]", element.to_owned())
        }
    } else if ty.contains(['.', '(']) {
        ("%s", ty.to_owned())
    } else {
        ("%I", ty.to_owned())
    }
}

impl Meta {
    /// Runs `ddl` in one transaction, announces the schema change, and
    /// returns what `locate` (a query with one text column, or none) finds.
    async fn apply(
        &self,
        project: &ProjectRef,
        ddl: &Ddl,
        locate: Option<(&str, &[&str])>,
    ) -> Result<Option<String>, Error> {
        let client = self.client(project).await?;
        if !ddl.is_empty() {
            let statement: String = client
                .query_one(
                    "SELECT format($1, VARIADIC $2::text[])",
                    &[&ddl.template, &ddl.args],
                )
                .await
                .map_err(|e| Error::from_pg(&e))?
                .get(0);
            client
                .batch_execute(&format!("{statement}NOTIFY pgrst, 'reload schema';"))
                .await
                .map_err(|e| Error::from_pg(&e))?;
            self.changed(project);
        }
        let Some((sql, args)) = locate else {
            return Ok(None);
        };
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let row = client
            .query_opt(sql, &params)
            .await
            .map_err(|e| Error::from_pg(&e))?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    /// Runs `ddl`, finds what it made with `locate`, and reads it back.
    async fn made(
        &self,
        project: &ProjectRef,
        ddl: &Ddl,
        endpoint: Endpoint,
        locate: (&str, &[&str]),
    ) -> Result<Value, Error> {
        let id = self.apply(project, ddl, Some(locate)).await?;
        self.read_back(project, endpoint, id).await
    }

    async fn read_back(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        id: Option<String>,
    ) -> Result<Value, Error> {
        let id = id.ok_or_else(|| Error::Internal("a created object was not found".into()))?;
        self.first(project, endpoint, &Params::lookup(&id))
            .await?
            .ok_or_else(|| Error::Internal(format!("{} {id} vanished", endpoint.path())))
    }

    /// The object `id` of `endpoint`, or postgres-meta's 404.
    async fn existing(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        id: &str,
    ) -> Result<Map<String, Value>, Error> {
        let found = self.first(project, endpoint, &Params::lookup(id)).await?;
        match found {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(Error::NotFound(match endpoint {
                Endpoint::Extensions => format!("Cannot find an extension named {id}"),
                _ => format!(
                    "Cannot find a {} with ID {id}",
                    endpoint.noun().unwrap_or("object")
                ),
            })),
        }
    }

    /// `POST /{endpoint}`.
    pub async fn create(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        bytes: &[u8],
    ) -> Result<Value, Error> {
        match endpoint {
            Endpoint::Schemas => self.create_schema(project, body(bytes)?).await,
            Endpoint::Tables => self.create_table(project, body(bytes)?).await,
            Endpoint::Columns => self.create_column(project, body(bytes)?).await,
            Endpoint::Extensions => self.create_extension(project, body(bytes)?).await,
            Endpoint::Functions => self.create_function(project, body(bytes)?).await,
            Endpoint::Policies => self.create_policy(project, body(bytes)?).await,
            Endpoint::Triggers => self.create_trigger(project, body(bytes)?).await,
            Endpoint::Publications => self.create_publication(project, body(bytes)?).await,
            Endpoint::Roles => self.create_role(project, body(bytes)?).await,
            Endpoint::TablePrivileges | Endpoint::ColumnPrivileges => {
                self.privileges(project, endpoint, true, body(bytes)?).await
            }
            _ => Err(Error::NotFound(format!(
                "{} cannot be created",
                endpoint.path()
            ))),
        }
    }

    /// `PATCH /{endpoint}/{id}`.
    pub async fn update(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        id: &str,
        bytes: &[u8],
    ) -> Result<Value, Error> {
        let old = self.existing(project, endpoint, id).await?;
        let text = |k: &str| old[k].as_str().unwrap_or_default().to_owned();
        let mut ddl = Ddl::default();
        match endpoint {
            Endpoint::Schemas => {
                let b: SchemaPatch = body(bytes)?;
                if let Some(owner) = &b.owner {
                    ddl.push("ALTER SCHEMA %I OWNER TO %I", &[&text("name"), owner]);
                }
                if let Some(name) = b.name.as_ref().filter(|n| **n != text("name")) {
                    ddl.push("ALTER SCHEMA %I RENAME TO %I", &[&text("name"), name]);
                }
            }
            Endpoint::Tables => {
                let key = self.constraint_name(project, &old["id"], "p", None).await?;
                update_table(&mut ddl, &old, key.as_deref(), body(bytes)?)?;
            }
            Endpoint::Columns => {
                let position = Some(&old["ordinal_position"]);
                let check = self
                    .constraint_name(project, &old["table_id"], "c", position)
                    .await?;
                let unique = self
                    .constraint_name(project, &old["table_id"], "u", position)
                    .await?;
                let found = Constraints {
                    check: check.as_deref(),
                    unique: unique.as_deref(),
                };
                update_column(&mut ddl, &old, found, body(bytes)?)?;
            }
            Endpoint::Extensions => {
                let b: ExtensionPatch = body(bytes)?;
                if b.update {
                    match &b.version {
                        Some(v) => ddl.push("ALTER EXTENSION %I UPDATE TO %L", &[id, v]),
                        None => ddl.push("ALTER EXTENSION %I UPDATE", &[id]),
                    }
                }
                if let Some(schema) = &b.schema {
                    ddl.push("ALTER EXTENSION %I SET SCHEMA %I", &[id, schema]);
                }
            }
            Endpoint::Functions => update_function(&mut ddl, &old, body(bytes)?)?,
            Endpoint::Policies => {
                let b: PolicyPatch = body(bytes)?;
                let (name, schema, table) = (text("name"), text("schema"), text("table"));
                let on = [name.as_str(), schema.as_str(), table.as_str()];
                if let Some(d) = &b.definition {
                    ddl.push(
                        "ALTER POLICY %I ON %I.%I USING (%s)",
                        &[on[0], on[1], on[2], d],
                    );
                }
                if let Some(c) = &b.check {
                    ddl.push(
                        "ALTER POLICY %I ON %I.%I WITH CHECK (%s)",
                        &[on[0], on[1], on[2], c],
                    );
                }
                if let Some(roles) = &b.roles {
                    let (list, args) = idents(roles)?;
                    let mut all = on.to_vec();
                    all.extend(args.iter().map(String::as_str));
                    ddl.push(&format!("ALTER POLICY %I ON %I.%I TO {list}"), &all);
                }
                if let Some(new) = b.name.as_ref().filter(|n| **n != name) {
                    ddl.push(
                        "ALTER POLICY %I ON %I.%I RENAME TO %I",
                        &[on[0], on[1], on[2], new],
                    );
                }
            }
            Endpoint::Triggers => {
                let b: TriggerPatch = body(bytes)?;
                let (name, schema, table) = (text("name"), text("schema"), text("table"));
                if let Some(mode) = &b.enabled_mode {
                    let sql = match keyword(
                        "enabled_mode",
                        mode,
                        &["ORIGIN", "DISABLED", "REPLICA", "ALWAYS"],
                    )? {
                        "ORIGIN" => "ALTER TABLE %I.%I ENABLE TRIGGER %I",
                        "DISABLED" => "ALTER TABLE %I.%I DISABLE TRIGGER %I",
                        "REPLICA" => "ALTER TABLE %I.%I ENABLE REPLICA TRIGGER %I",
                        _ => "ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER %I",
                    };
                    ddl.push(sql, &[&schema, &table, &name]);
                }
                if let Some(new) = b.name.as_ref().filter(|n| **n != name) {
                    ddl.push(
                        "ALTER TRIGGER %I ON %I.%I RENAME TO %I",
                        &[&name, &schema, &table, new],
                    );
                }
            }
            Endpoint::Publications => update_publication(&mut ddl, &old, body(bytes)?)?,
            Endpoint::Roles => update_role(&mut ddl, &text("name"), body(bytes)?)?,
            _ => {
                return Err(Error::NotFound(format!(
                    "{} cannot be changed",
                    endpoint.path()
                )));
            }
        }
        self.apply(project, &ddl, None).await?;
        self.read_back(project, endpoint, Some(id.to_owned())).await
    }

    /// `DELETE /{endpoint}/{id}`: the object as it was.
    pub async fn remove(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        id: &str,
        cascade: bool,
    ) -> Result<Value, Error> {
        let old = self.existing(project, endpoint, id).await?;
        let text = |k: &str| old[k].as_str().unwrap_or_default().to_owned();
        let mode = if cascade { "CASCADE" } else { "RESTRICT" };
        let mut ddl = Ddl::default();
        match endpoint {
            Endpoint::Schemas => ddl.push(&format!("DROP SCHEMA %I {mode}"), &[&text("name")]),
            Endpoint::Tables => ddl.push(
                &format!("DROP TABLE %I.%I {mode}"),
                &[&text("schema"), &text("name")],
            ),
            Endpoint::Columns => ddl.push(
                &format!("ALTER TABLE %I.%I DROP COLUMN %I {mode}"),
                &[&text("schema"), &text("table"), &text("name")],
            ),
            Endpoint::Extensions => ddl.push(&format!("DROP EXTENSION %I {mode}"), &[id]),
            Endpoint::Functions => ddl.push(
                &format!("DROP FUNCTION %I.%I(%s) {mode}"),
                &[
                    &text("schema"),
                    &text("name"),
                    &text("identity_argument_types"),
                ],
            ),
            Endpoint::Policies => ddl.push(
                "DROP POLICY %I ON %I.%I",
                &[&text("name"), &text("schema"), &text("table")],
            ),
            Endpoint::Triggers => ddl.push(
                &format!("DROP TRIGGER %I ON %I.%I {mode}"),
                &[&text("name"), &text("schema"), &text("table")],
            ),
            Endpoint::Publications => ddl.push("DROP PUBLICATION %I", &[&text("name")]),
            Endpoint::Roles => ddl.push("DROP ROLE %I", &[&text("name")]),
            _ => {
                return Err(Error::NotFound(format!(
                    "{} cannot be deleted",
                    endpoint.path()
                )));
            }
        }
        self.apply(project, &ddl, None).await?;
        Ok(Value::Object(old))
    }

    async fn create_schema(&self, project: &ProjectRef, b: NewSchema) -> Result<Value, Error> {
        let mut ddl = Ddl::default();
        match &b.owner {
            Some(owner) => ddl.push("CREATE SCHEMA %I AUTHORIZATION %I", &[&b.name, owner]),
            // The admin that runs it, where postgres-meta names `postgres`
            // (a role a Supa worker need not have).
            None => ddl.push("CREATE SCHEMA %I", &[&b.name]),
        }
        self.made(
            project,
            &ddl,
            Endpoint::Schemas,
            (
                "SELECT oid::text FROM pg_namespace WHERE nspname = $1",
                &[&b.name],
            ),
        )
        .await
    }

    async fn create_table(&self, project: &ProjectRef, b: NewTable) -> Result<Value, Error> {
        let schema = b.schema.as_deref().unwrap_or("public");
        let mut ddl = Ddl::default();
        ddl.push("CREATE TABLE %I.%I ()", &[schema, &b.name]);
        if let Some(comment) = &b.comment {
            ddl.push("COMMENT ON TABLE %I.%I IS %L", &[schema, &b.name, comment]);
        }
        self.made(
            project,
            &ddl,
            Endpoint::Tables,
            (LOCATE_RELATION, &[schema, &b.name]),
        )
        .await
    }

    async fn create_column(&self, project: &ProjectRef, b: NewColumn) -> Result<Value, Error> {
        let table = self
            .existing(project, Endpoint::Tables, &b.table_id.to_string())
            .await?;
        let (schema, table) = (
            table["schema"].as_str().unwrap_or_default().to_owned(),
            table["name"].as_str().unwrap_or_default().to_owned(),
        );
        let (ty_template, ty) = type_sql(&b.r#type);
        let mut template = format!("ALTER TABLE %I.%I ADD COLUMN %I {ty_template}");
        let mut args: Vec<&str> = vec![&schema, &table, &b.name, &ty];
        if b.is_identity.unwrap_or(false) {
            if b.default_value.is_some() {
                return Err(Error::BadRequest(
                    "Columns cannot both be identity and have a default value".into(),
                ));
            }
            let generation = keyword(
                "identity_generation",
                b.identity_generation.as_deref().unwrap_or("BY DEFAULT"),
                &["BY DEFAULT", "ALWAYS"],
            )?;
            template.push_str(&format!(" GENERATED {generation} AS IDENTITY"));
        } else if let Some(default) = &b.default_value {
            template.push_str(default_clause(b.default_value_format.as_deref())?);
            args.push(default);
        }
        match b.is_nullable {
            Some(true) => template.push_str(" NULL"),
            Some(false) => template.push_str(" NOT NULL"),
            None => {}
        }
        if b.is_primary_key.unwrap_or(false) {
            template.push_str(" PRIMARY KEY");
        }
        if b.is_unique.unwrap_or(false) {
            template.push_str(" UNIQUE");
        }
        if let Some(check) = &b.check {
            template.push_str(" CHECK (%s)");
            args.push(check);
        }
        let mut ddl = Ddl::default();
        ddl.push(&template, &args);
        if let Some(comment) = &b.comment {
            ddl.push(
                "COMMENT ON COLUMN %I.%I.%I IS %L",
                &[&schema, &table, &b.name, comment],
            );
        }
        let table_id = b.table_id.to_string();
        self.made(project, &ddl, Endpoint::Columns, (
                    "SELECT attrelid || '.' || attnum FROM pg_attribute WHERE attrelid = $1::text::oid AND attname = $2 AND NOT attisdropped",
                    &[&table_id, &b.name],
                ))
            .await
    }

    async fn create_extension(
        &self,
        project: &ProjectRef,
        b: NewExtension,
    ) -> Result<Value, Error> {
        let mut template = "CREATE EXTENSION %I".to_owned();
        let mut args: Vec<&str> = vec![&b.name];
        if let Some(schema) = &b.schema {
            template.push_str(" SCHEMA %I");
            args.push(schema);
        }
        if let Some(version) = &b.version {
            template.push_str(" VERSION %L");
            args.push(version);
        }
        if b.cascade {
            template.push_str(" CASCADE");
        }
        let mut ddl = Ddl::default();
        ddl.push(&template, &args);
        self.apply(project, &ddl, None).await?;
        self.read_back(project, Endpoint::Extensions, Some(b.name))
            .await
    }

    async fn create_function(&self, project: &ProjectRef, b: NewFunction) -> Result<Value, Error> {
        let schema = b.schema.clone().unwrap_or_else(|| "public".into());
        let mut ddl = Ddl::default();
        function_ddl(&mut ddl, false, &schema, &b)?;
        // Arguments may carry names and defaults, which regprocedure does
        // not parse; the function just made is the newest of its name.
        self.made(
            project,
            &ddl,
            Endpoint::Functions,
            (
                "SELECT p.oid::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = $1 AND p.proname = $2 ORDER BY p.oid DESC LIMIT 1",
                &[&schema, &b.name],
            ),
        )
        .await
    }

    async fn create_policy(&self, project: &ProjectRef, b: NewPolicy) -> Result<Value, Error> {
        let schema = b.schema.as_deref().unwrap_or("public");
        let action = keyword(
            "action",
            b.action.as_deref().unwrap_or("PERMISSIVE"),
            &["PERMISSIVE", "RESTRICTIVE"],
        )?;
        let command = keyword(
            "command",
            b.command.as_deref().unwrap_or("ALL"),
            &["ALL", "SELECT", "INSERT", "UPDATE", "DELETE"],
        )?;
        let roles = b.roles.clone().unwrap_or_else(|| vec!["public".into()]);
        let (list, role_args) = idents(&roles)?;
        let mut template = format!("CREATE POLICY %I ON %I.%I AS {action} FOR {command} TO {list}");
        let mut args: Vec<&str> = vec![&b.name, schema, &b.table];
        args.extend(role_args.iter().map(String::as_str));
        if let Some(d) = &b.definition {
            template.push_str(" USING (%s)");
            args.push(d);
        }
        if let Some(c) = &b.check {
            template.push_str(" WITH CHECK (%s)");
            args.push(c);
        }
        let mut ddl = Ddl::default();
        ddl.push(&template, &args);
        self.made(
            project,
            &ddl,
            Endpoint::Policies,
            (
                "SELECT p.oid::text FROM pg_policy p WHERE p.polname = $3
                       AND p.polrelid = to_regclass(format('%I.%I', $1::text, $2::text))",
                &[schema, &b.table, &b.name],
            ),
        )
        .await
    }

    async fn create_trigger(&self, project: &ProjectRef, b: NewTrigger) -> Result<Value, Error> {
        let schema = b.schema.as_deref().unwrap_or("public");
        let function_schema = b.function_schema.as_deref().unwrap_or("public");
        let activation = keyword(
            "activation",
            &b.activation,
            &["BEFORE", "AFTER", "INSTEAD OF"],
        )?;
        if b.events.is_empty() {
            return Err(Error::BadRequest("body/events must not be empty".into()));
        }
        let events = b
            .events
            .iter()
            .map(|e| keyword("events", e, &["INSERT", "UPDATE", "DELETE", "TRUNCATE"]))
            .collect::<Result<Vec<_>, _>>()?
            .join(" OR ");
        let orientation = match &b.orientation {
            Some(o) => format!(
                " FOR EACH {}",
                keyword("orientation", o, &["ROW", "STATEMENT"])?
            ),
            None => String::new(),
        };
        let mut template = format!("CREATE TRIGGER %I {activation} {events} ON %I.%I{orientation}");
        let mut args: Vec<&str> = vec![&b.name, schema, &b.table];
        if let Some(c) = &b.condition {
            template.push_str(" WHEN (%s)");
            args.push(c);
        }
        let placeholders = vec!["%L"; b.function_args.len()].join(", ");
        template.push_str(&format!(" EXECUTE FUNCTION %I.%I({placeholders})"));
        args.extend([function_schema, b.function_name.as_str()]);
        args.extend(b.function_args.iter().map(String::as_str));
        let mut ddl = Ddl::default();
        ddl.push(&template, &args);
        self.made(
            project,
            &ddl,
            Endpoint::Triggers,
            (
                "SELECT t.oid::text FROM pg_trigger t WHERE t.tgname = $3
                       AND t.tgrelid = to_regclass(format('%I.%I', $1::text, $2::text))",
                &[schema, &b.table, &b.name],
            ),
        )
        .await
    }

    async fn create_publication(
        &self,
        project: &ProjectRef,
        b: NewPublication,
    ) -> Result<Value, Error> {
        let mut template = "CREATE PUBLICATION %I".to_owned();
        let mut args: Vec<String> = vec![b.name.clone()];
        match &b.tables {
            None => template.push_str(" FOR ALL TABLES"),
            Some(tables) if tables.is_empty() => {}
            Some(tables) => {
                let (list, table_args) = qualified(tables);
                template.push_str(&format!(" FOR TABLE {list}"));
                args.extend(table_args);
            }
        }
        template.push_str(" WITH (publish = %L)");
        args.push(b.operations().join(","));
        let mut ddl = Ddl::default();
        ddl.push(
            &template,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        self.made(
            project,
            &ddl,
            Endpoint::Publications,
            (
                "SELECT oid::text FROM pg_publication WHERE pubname = $1",
                &[&b.name],
            ),
        )
        .await
    }

    async fn create_role(&self, project: &ProjectRef, b: NewRole) -> Result<Value, Error> {
        let flag = |on: Option<bool>, default: bool, yes: &str, no: &str| {
            format!(" {}", if on.unwrap_or(default) { yes } else { no })
        };
        let mut template = "CREATE ROLE %I WITH".to_owned();
        template += &flag(b.is_superuser, false, "SUPERUSER", "NOSUPERUSER");
        template += &flag(b.can_create_db, false, "CREATEDB", "NOCREATEDB");
        template += &flag(b.can_create_role, false, "CREATEROLE", "NOCREATEROLE");
        template += &flag(b.inherit_role, true, "INHERIT", "NOINHERIT");
        template += &flag(b.can_login, false, "LOGIN", "NOLOGIN");
        template += &flag(b.is_replication_role, false, "REPLICATION", "NOREPLICATION");
        template += &flag(b.can_bypass_rls, false, "BYPASSRLS", "NOBYPASSRLS");
        template += &format!(" CONNECTION LIMIT {}", b.connection_limit.unwrap_or(-1));
        let mut args: Vec<String> = vec![b.name.clone()];
        if let Some(p) = &b.password {
            template.push_str(" PASSWORD %L");
            args.push(p.clone());
        }
        if let Some(v) = &b.valid_until {
            template.push_str(" VALID UNTIL %L");
            args.push(v.clone());
        }
        for (clause, list) in [
            ("IN ROLE", &b.member_of),
            ("ROLE", &b.members),
            ("ADMIN", &b.admins),
        ] {
            if let Some(list) = list {
                let (sql, more) = idents(list)?;
                template.push_str(&format!(" {clause} {sql}"));
                args.extend(more);
            }
        }
        let mut ddl = Ddl::default();
        ddl.push(
            &template,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        for (k, v) in b.config.iter().flatten() {
            if let Some(v) = v.as_str().filter(|v| !v.is_empty() && !k.is_empty()) {
                role_setting(&mut ddl, &b.name, k, v);
            }
        }
        self.made(
            project,
            &ddl,
            Endpoint::Roles,
            (
                "SELECT oid::text FROM pg_roles WHERE rolname = $1",
                &[&b.name],
            ),
        )
        .await
    }

    /// `POST` (grant) or `DELETE` (revoke) of table or column privileges;
    /// the privileges of the relations touched, as listed afterwards.
    pub async fn privileges(
        &self,
        project: &ProjectRef,
        endpoint: Endpoint,
        grant: bool,
        changes: Vec<PrivilegeChange>,
    ) -> Result<Value, Error> {
        let columns = endpoint == Endpoint::ColumnPrivileges;
        let allowed: &[&str] = if columns {
            &["ALL", "SELECT", "INSERT", "UPDATE", "REFERENCES"]
        } else {
            &[
                "ALL",
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "TRUNCATE",
                "REFERENCES",
                "TRIGGER",
                "MAINTAIN",
            ]
        };
        let mut ddl = Ddl::default();
        let mut relations = Vec::new();
        for change in &changes {
            let privilege = keyword("privilege_type", &change.privilege_type, allowed)?;
            // The relation and column as PostgreSQL quotes them, found
            // from their numeric ids.
            let (relation_id, mut args) = self.privilege_target(project, columns, change).await?;
            relations.push(relation_id);
            let target = if columns {
                "(%s) ON TABLE %s"
            } else {
                "ON TABLE %s"
            };
            let grantee = if change.grantee.eq_ignore_ascii_case("public") {
                "PUBLIC"
            } else {
                args.push(change.grantee.clone());
                "%I"
            };
            let template = if grant {
                let with = if change.is_grantable.unwrap_or(false) {
                    " WITH GRANT OPTION"
                } else {
                    ""
                };
                format!("GRANT {privilege} {target} TO {grantee}{with}")
            } else {
                format!("REVOKE {privilege} {target} FROM {grantee}")
            };
            ddl.push(
                &template,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
        }
        self.apply(project, &ddl, None).await?;
        let params = Params {
            ids: (!columns).then(|| relations.clone()),
            ..Params::default()
        };
        let listed = self.list(project, endpoint, &params).await?;
        let mut listed: Vec<Value> =
            serde_json::from_str(&listed).map_err(|e| Error::Internal(e.to_string()))?;
        listed.retain(|item| {
            let relation = match &item["column_id"] {
                Value::String(id) => id.split_once('.').map_or("", |(t, _)| t).to_owned(),
                _ => item["relation_id"].to_string(),
            };
            relations.contains(&relation)
        });
        Ok(Value::Array(listed))
    }

    /// The relation id of a privilege change, and the quoted names its
    /// statement takes: `[column, relation]` or `[relation]`.
    async fn privilege_target(
        &self,
        project: &ProjectRef,
        columns: bool,
        change: &PrivilegeChange,
    ) -> Result<(String, Vec<String>), Error> {
        let client = self.client(project).await?;
        let row = if columns {
            let id = change
                .column_id
                .as_deref()
                .ok_or_else(|| Error::BadRequest("body/column_id is required".into()))?;
            client
                .query_opt(
                    "SELECT a.attrelid::text, quote_ident(a.attname), a.attrelid::regclass::text
                     FROM pg_attribute a
                     WHERE a.attrelid::text || '.' || a.attnum = $1 AND a.attnum > 0 AND NOT a.attisdropped",
                    &[&id],
                )
                .await
        } else {
            let id = change
                .relation_id
                .ok_or_else(|| Error::BadRequest("body/relation_id is required".into()))?
                .to_string();
            client
                .query_opt(
                    "SELECT c.oid::text, c.oid::regclass::text FROM pg_class c WHERE c.oid::text = $1",
                    &[&id],
                )
                .await
        }
        .map_err(|e| Error::from_pg(&e))?
        .ok_or_else(|| {
            Error::NotFound(if columns {
                format!("Cannot find a column with ID {}", change.column_id.as_deref().unwrap_or_default())
            } else {
                format!("Cannot find a relation with ID {}", change.relation_id.unwrap_or_default())
            })
        })?;
        let names = (1..row.len()).map(|i| row.get::<_, String>(i)).collect();
        Ok((row.get(0), names))
    }

    /// The name of `table_id`'s constraint of kind `kind` (`p`), or of its
    /// first single-column check on `position` (`c`).
    async fn constraint_name(
        &self,
        project: &ProjectRef,
        table_id: &Value,
        kind: &str,
        position: Option<&Value>,
    ) -> Result<Option<String>, Error> {
        let client = self.client(project).await?;
        let table_id = table_id.to_string();
        let position = position.map(Value::to_string);
        let row = client
            .query_opt(
                "SELECT conname::text FROM pg_constraint
                 WHERE conrelid::text = $1 AND contype::text = $2
                   AND ($3::text IS NULL OR (cardinality(conkey) = 1 AND conkey[1]::text = $3))
                 ORDER BY oid LIMIT 1",
                &[&table_id, &kind, &position],
            )
            .await
            .map_err(|e| Error::from_pg(&e))?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// Finds a relation created by name.
const LOCATE_RELATION: &str = "SELECT to_regclass(format('%I.%I', $1::text, $2::text))::oid::text";

/// `%I, %I, ...` for a list of names, and the names.
fn idents(names: &[String]) -> Result<(String, Vec<String>), Error> {
    if names.is_empty() {
        return Err(Error::BadRequest(
            "body: a role list must not be empty".into(),
        ));
    }
    let list = names
        .iter()
        .map(|n| {
            if n.eq_ignore_ascii_case("public") {
                "PUBLIC"
            } else {
                "%I"
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let args = names
        .iter()
        .filter(|n| !n.eq_ignore_ascii_case("public"))
        .cloned()
        .collect();
    Ok((list, args))
}

/// `%I.%I, %I` for `schema.table` or `table` names, and the parts.
fn qualified(tables: &[String]) -> (String, Vec<String>) {
    let mut args = Vec::new();
    let list = tables
        .iter()
        .map(|t| match t.split_once('.') {
            Some((schema, table)) => {
                args.extend([schema.to_owned(), table.to_owned()]);
                "%I.%I"
            }
            None => {
                args.push(t.clone());
                "%I"
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    (list, args)
}

/// ` DEFAULT %L` or ` DEFAULT %s` (an expression).
fn default_clause(format: Option<&str>) -> Result<&'static str, Error> {
    match keyword(
        "default_value_format",
        format.unwrap_or("literal"),
        &["literal", "expression"],
    )? {
        "expression" => Ok(" DEFAULT %s"),
        _ => Ok(" DEFAULT %L"),
    }
}

/// A role setting; list settings (`search_path`) take each item quoted.
fn role_setting(ddl: &mut Ddl, role: &str, key: &str, value: &str) {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    let placeholders = vec!["%L"; items.len()].join(", ");
    let mut args = vec![role, key];
    args.extend(items);
    ddl.push(&format!("ALTER ROLE %I SET %I = {placeholders}"), &args);
}

fn update_table(
    ddl: &mut Ddl,
    old: &Map<String, Value>,
    primary_key: Option<&str>,
    b: TablePatch,
) -> Result<(), Error> {
    let schema = old["schema"].as_str().unwrap_or_default().to_owned();
    let name = old["name"].as_str().unwrap_or_default().to_owned();
    let on = [schema.as_str(), name.as_str()];
    if let Some(rls) = b.rls_enabled {
        let verb = if rls { "ENABLE" } else { "DISABLE" };
        ddl.push(&format!("ALTER TABLE %I.%I {verb} ROW LEVEL SECURITY"), &on);
    }
    if let Some(forced) = b.rls_forced {
        let verb = if forced { "FORCE" } else { "NO FORCE" };
        ddl.push(&format!("ALTER TABLE %I.%I {verb} ROW LEVEL SECURITY"), &on);
    }
    if let Some(identity) = &b.replica_identity {
        match keyword(
            "replica_identity",
            identity,
            &["DEFAULT", "INDEX", "FULL", "NOTHING"],
        )? {
            "INDEX" => {
                let index = b.replica_identity_index.as_deref().ok_or_else(|| {
                    Error::BadRequest("body/replica_identity_index is required for INDEX".into())
                })?;
                ddl.push(
                    "ALTER TABLE %I.%I REPLICA IDENTITY USING INDEX %I",
                    &[on[0], on[1], index],
                );
            }
            other => ddl.push(&format!("ALTER TABLE %I.%I REPLICA IDENTITY {other}"), &on),
        }
    }
    if let Some(keys) = &b.primary_keys {
        if let Some(existing) = primary_key {
            ddl.push(
                "ALTER TABLE %I.%I DROP CONSTRAINT %I",
                &[on[0], on[1], existing],
            );
        }
        if !keys.is_empty() {
            let names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
            let placeholders = vec!["%I"; names.len()].join(", ");
            let mut args = on.to_vec();
            args.extend(names.iter().map(String::as_str));
            ddl.push(
                &format!("ALTER TABLE %I.%I ADD PRIMARY KEY ({placeholders})"),
                &args,
            );
        }
    }
    if let Some(comment) = &b.comment {
        ddl.push_nullable(
            "COMMENT ON TABLE %I.%I IS %L",
            &[Some(on[0]), Some(on[1]), comment.as_deref()],
        );
    }
    let mut current_schema = schema.clone();
    if let Some(new_schema) = b.schema.as_ref().filter(|s| **s != schema) {
        ddl.push(
            "ALTER TABLE %I.%I SET SCHEMA %I",
            &[on[0], on[1], new_schema],
        );
        current_schema = new_schema.clone();
    }
    if let Some(new_name) = b.name.as_ref().filter(|n| **n != name) {
        ddl.push(
            "ALTER TABLE %I.%I RENAME TO %I",
            &[&current_schema, &name, new_name],
        );
    }
    Ok(())
}

/// The single-column constraints of a column, by name.
struct Constraints<'a> {
    /// Its first check (the one postgres-meta reports).
    check: Option<&'a str>,
    /// Its unique constraint.
    unique: Option<&'a str>,
}

fn update_column(
    ddl: &mut Ddl,
    old: &Map<String, Value>,
    found: Constraints<'_>,
    b: ColumnPatch,
) -> Result<(), Error> {
    let text = |k: &str| old[k].as_str().unwrap_or_default().to_owned();
    let (schema, table, name) = (text("schema"), text("table"), text("name"));
    let on = [schema.as_str(), table.as_str(), name.as_str()];
    let alter = "ALTER TABLE %I.%I ALTER COLUMN %I";
    if let Some(ty) = &b.r#type {
        let (t, ty) = type_sql(ty);
        ddl.push(
            &format!("{alter} SET DATA TYPE {t} USING %I::{t}"),
            &[on[0], on[1], on[2], &ty, on[2], &ty],
        );
    }
    if b.drop_default {
        ddl.push(&format!("{alter} DROP DEFAULT"), &on);
    } else if let Some(default) = &b.default_value {
        let clause = default_clause(b.default_value_format.as_deref())?;
        ddl.push(
            &format!("{alter} SET{clause}"),
            &[on[0], on[1], on[2], default],
        );
    }
    let was_identity = old["is_identity"].as_bool().unwrap_or(false);
    let generation = b
        .identity_generation
        .as_deref()
        .map(|g| keyword("identity_generation", g, &["BY DEFAULT", "ALWAYS"]))
        .transpose()?;
    match (b.is_identity, was_identity) {
        (Some(false), _) => ddl.push(&format!("{alter} DROP IDENTITY IF EXISTS"), &on),
        (_, true) => {
            if let Some(g) = generation {
                ddl.push(&format!("{alter} SET GENERATED {g}"), &on);
            }
        }
        (Some(true), false) => {
            let g = generation.unwrap_or("BY DEFAULT");
            ddl.push(&format!("{alter} ADD GENERATED {g} AS IDENTITY"), &on);
        }
        (None, false) => {}
    }
    match b.is_nullable {
        Some(true) => ddl.push(&format!("{alter} DROP NOT NULL"), &on),
        Some(false) => ddl.push(&format!("{alter} SET NOT NULL"), &on),
        None => {}
    }
    let was_unique = old["is_unique"].as_bool().unwrap_or(false);
    match b.is_unique {
        Some(true) if !was_unique => ddl.push("ALTER TABLE %I.%I ADD UNIQUE (%I)", &on),
        Some(false) if was_unique => {
            if let Some(unique) = found.unique {
                ddl.push(
                    "ALTER TABLE %I.%I DROP CONSTRAINT %I",
                    &[on[0], on[1], unique],
                );
            }
        }
        _ => {}
    }
    if let Some(check) = &b.check {
        if let Some(existing) = found.check {
            ddl.push(
                "ALTER TABLE %I.%I DROP CONSTRAINT %I",
                &[on[0], on[1], existing],
            );
        }
        if let Some(check) = check {
            let constraint = format!("{table}_{name}_check");
            ddl.push(
                "ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (%s)",
                &[on[0], on[1], &constraint, check],
            );
        }
    }
    if let Some(comment) = &b.comment {
        ddl.push_nullable(
            "COMMENT ON COLUMN %I.%I.%I IS %L",
            &[Some(on[0]), Some(on[1]), Some(on[2]), comment.as_deref()],
        );
    }
    if let Some(new_name) = b.name.as_ref().filter(|n| **n != name) {
        ddl.push(
            "ALTER TABLE %I.%I RENAME COLUMN %I TO %I",
            &[on[0], on[1], on[2], new_name],
        );
    }
    Ok(())
}

fn function_ddl(ddl: &mut Ddl, replace: bool, schema: &str, b: &NewFunction) -> Result<(), Error> {
    let behavior = keyword(
        "behavior",
        b.behavior.as_deref().unwrap_or("VOLATILE"),
        &["IMMUTABLE", "STABLE", "VOLATILE"],
    )?;
    let security = if b.security_definer.unwrap_or(false) {
        "SECURITY DEFINER"
    } else {
        "SECURITY INVOKER"
    };
    let or_replace = if replace { " OR REPLACE" } else { "" };
    let mut template = format!(
        "CREATE{or_replace} FUNCTION %I.%I(%s) RETURNS %s AS %L LANGUAGE %I {behavior} CALLED ON NULL INPUT {security}"
    );
    let args = b.args.join(", ");
    let return_type = b.return_type.clone().unwrap_or_else(|| "void".into());
    let language = b.language.clone().unwrap_or_else(|| "sql".into());
    let mut values: Vec<String> = vec![
        schema.to_owned(),
        b.name.clone(),
        args,
        return_type,
        b.definition.clone(),
        language,
    ];
    for (param, value) in b.config_params.iter().flatten() {
        let value = value.as_str().unwrap_or_default();
        if value == "FROM CURRENT" {
            template.push_str(" SET %I FROM CURRENT");
            values.push(param.clone());
        } else {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            template.push_str(&format!(
                " SET %I TO {}",
                vec!["%L"; items.len()].join(", ")
            ));
            values.push(param.clone());
            values.extend(items.into_iter().map(str::to_owned));
        }
    }
    ddl.push(
        &template,
        &values.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    Ok(())
}

fn update_function(ddl: &mut Ddl, old: &Map<String, Value>, b: FunctionPatch) -> Result<(), Error> {
    let text = |k: &str| old[k].as_str().unwrap_or_default().to_owned();
    let (schema, name, identity) = (
        text("schema"),
        text("name"),
        text("identity_argument_types"),
    );
    if let Some(definition) = &b.definition {
        let current = NewFunction {
            name: name.clone(),
            schema: Some(schema.clone()),
            args: split_arguments(&text("argument_types")),
            definition: definition.clone(),
            return_type: Some(text("return_type")),
            language: Some(text("language")),
            behavior: Some(text("behavior")),
            security_definer: old["security_definer"].as_bool(),
            config_params: old["config_params"].as_object().cloned(),
        };
        function_ddl(ddl, true, &schema, &current)?;
    }
    let mut current_name = name.clone();
    if let Some(new) = b.name.as_ref().filter(|n| **n != name) {
        ddl.push(
            "ALTER FUNCTION %I.%I(%s) RENAME TO %I",
            &[&schema, &name, &identity, new],
        );
        current_name = new.clone();
    }
    if let Some(new) = b.schema.as_ref().filter(|s| **s != schema) {
        ddl.push(
            "ALTER FUNCTION %I.%I(%s) SET SCHEMA %I",
            &[&schema, &current_name, &identity, new],
        );
    }
    Ok(())
}

/// `a integer, b text DEFAULT 'x, y'` into its arguments (commas inside
/// quotes or parentheses stay).
fn split_arguments(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, ch) in list.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(list[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !list[start..].trim().is_empty() {
        out.push(list[start..].trim().to_owned());
    }
    out
}

fn update_publication(
    ddl: &mut Ddl,
    old: &Map<String, Value>,
    b: PublicationPatch,
) -> Result<(), Error> {
    let name = old["name"].as_str().unwrap_or_default().to_owned();
    let flag = |new: Option<bool>, key: &str| new.unwrap_or(old[key].as_bool().unwrap_or(false));
    let operations = NewPublication {
        name: name.clone(),
        publish_insert: flag(b.publish_insert, "publish_insert"),
        publish_update: flag(b.publish_update, "publish_update"),
        publish_delete: flag(b.publish_delete, "publish_delete"),
        publish_truncate: flag(b.publish_truncate, "publish_truncate"),
        tables: None,
    }
    .operations()
    .join(",");
    ddl.push(
        "ALTER PUBLICATION %I SET (publish = %L)",
        &[&name, &operations],
    );
    if let Some(tables) = &b.tables {
        if old["tables"].is_null() {
            return Err(Error::BadRequest(
                "body/tables: a publication FOR ALL TABLES has no table list to set".into(),
            ));
        }
        if tables.is_empty() {
            // Dropping every table: there is no `SET TABLE` with none.
            for t in old["tables"].as_array().into_iter().flatten() {
                ddl.push(
                    "ALTER PUBLICATION %I DROP TABLE %I.%I",
                    &[
                        &name,
                        t["schema"].as_str().unwrap_or_default(),
                        t["name"].as_str().unwrap_or_default(),
                    ],
                );
            }
        } else {
            let (list, args) = qualified(tables);
            let mut all = vec![name.as_str()];
            all.extend(args.iter().map(String::as_str));
            ddl.push(&format!("ALTER PUBLICATION %I SET TABLE {list}"), &all);
        }
    }
    if let Some(new) = b.name.as_ref().filter(|n| **n != name) {
        ddl.push("ALTER PUBLICATION %I RENAME TO %I", &[&name, new]);
    }
    Ok(())
}

fn update_role(ddl: &mut Ddl, name: &str, b: RolePatch) -> Result<(), Error> {
    let mut clauses = String::new();
    let mut flag = |on: Option<bool>, yes: &str, no: &str| {
        if let Some(on) = on {
            clauses.push(' ');
            clauses.push_str(if on { yes } else { no });
        }
    };
    flag(b.is_superuser, "SUPERUSER", "NOSUPERUSER");
    flag(b.can_create_db, "CREATEDB", "NOCREATEDB");
    flag(b.can_create_role, "CREATEROLE", "NOCREATEROLE");
    flag(b.inherit_role, "INHERIT", "NOINHERIT");
    flag(b.can_login, "LOGIN", "NOLOGIN");
    flag(b.is_replication_role, "REPLICATION", "NOREPLICATION");
    flag(b.can_bypass_rls, "BYPASSRLS", "NOBYPASSRLS");
    if let Some(limit) = b.connection_limit {
        clauses.push_str(&format!(" CONNECTION LIMIT {limit}"));
    }
    let mut args: Vec<String> = vec![name.to_owned()];
    if let Some(p) = &b.password {
        clauses.push_str(" PASSWORD %L");
        args.push(p.clone());
    }
    if let Some(v) = &b.valid_until {
        clauses.push_str(" VALID UNTIL %L");
        args.push(v.clone());
    }
    if !clauses.is_empty() {
        ddl.push(
            &format!("ALTER ROLE %I{clauses}"),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    for change in b.config.iter().flatten() {
        match keyword("config.op", &change.op, &["add", "replace", "remove"])? {
            "remove" => ddl.push("ALTER ROLE %I RESET %I", &[name, &change.path]),
            _ => {
                let value = change.value.as_deref().unwrap_or_default();
                role_setting(ddl, name, &change.path, value);
            }
        }
    }
    if let Some(new) = b.name.as_ref().filter(|n| *n != name) {
        ddl.push("ALTER ROLE %I RENAME TO %I", &[name, new]);
    }
    Ok(())
}

#[derive(Deserialize)]
struct NewSchema {
    name: String,
    owner: Option<String>,
}

#[derive(Deserialize)]
struct SchemaPatch {
    name: Option<String>,
    owner: Option<String>,
}

#[derive(Deserialize)]
struct NewTable {
    name: String,
    schema: Option<String>,
    comment: Option<String>,
}

#[derive(Deserialize)]
struct PrimaryKey {
    name: String,
}

#[derive(Deserialize)]
struct TablePatch {
    name: Option<String>,
    schema: Option<String>,
    rls_enabled: Option<bool>,
    rls_forced: Option<bool>,
    replica_identity: Option<String>,
    replica_identity_index: Option<String>,
    primary_keys: Option<Vec<PrimaryKey>>,
    #[serde(default, deserialize_with = "present")]
    comment: Option<Option<String>>,
}

#[derive(Deserialize)]
struct NewColumn {
    table_id: u32,
    name: String,
    r#type: String,
    default_value: Option<String>,
    default_value_format: Option<String>,
    is_identity: Option<bool>,
    identity_generation: Option<String>,
    is_nullable: Option<bool>,
    is_primary_key: Option<bool>,
    is_unique: Option<bool>,
    comment: Option<String>,
    check: Option<String>,
}

#[derive(Deserialize)]
struct ColumnPatch {
    name: Option<String>,
    r#type: Option<String>,
    #[serde(default)]
    drop_default: bool,
    default_value: Option<String>,
    default_value_format: Option<String>,
    is_identity: Option<bool>,
    identity_generation: Option<String>,
    is_nullable: Option<bool>,
    is_unique: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    comment: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    check: Option<Option<String>>,
}

#[derive(Deserialize)]
struct NewExtension {
    name: String,
    schema: Option<String>,
    version: Option<String>,
    #[serde(default)]
    cascade: bool,
}

#[derive(Deserialize)]
struct ExtensionPatch {
    #[serde(default)]
    update: bool,
    version: Option<String>,
    schema: Option<String>,
}

#[derive(Deserialize)]
struct NewFunction {
    name: String,
    schema: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    definition: String,
    return_type: Option<String>,
    language: Option<String>,
    behavior: Option<String>,
    security_definer: Option<bool>,
    config_params: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct FunctionPatch {
    name: Option<String>,
    schema: Option<String>,
    definition: Option<String>,
}

#[derive(Deserialize)]
struct NewPolicy {
    name: String,
    table: String,
    schema: Option<String>,
    definition: Option<String>,
    check: Option<String>,
    action: Option<String>,
    command: Option<String>,
    roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct PolicyPatch {
    name: Option<String>,
    definition: Option<String>,
    check: Option<String>,
    roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct NewTrigger {
    name: String,
    schema: Option<String>,
    table: String,
    function_schema: Option<String>,
    function_name: String,
    #[serde(default)]
    function_args: Vec<String>,
    activation: String,
    events: Vec<String>,
    orientation: Option<String>,
    condition: Option<String>,
}

#[derive(Deserialize)]
struct TriggerPatch {
    name: Option<String>,
    enabled_mode: Option<String>,
}

#[derive(Deserialize)]
struct NewPublication {
    name: String,
    #[serde(default)]
    publish_insert: bool,
    #[serde(default)]
    publish_update: bool,
    #[serde(default)]
    publish_delete: bool,
    #[serde(default)]
    publish_truncate: bool,
    tables: Option<Vec<String>>,
}

impl NewPublication {
    fn operations(&self) -> Vec<&'static str> {
        [
            (self.publish_insert, "insert"),
            (self.publish_update, "update"),
            (self.publish_delete, "delete"),
            (self.publish_truncate, "truncate"),
        ]
        .into_iter()
        .filter_map(|(on, op)| on.then_some(op))
        .collect()
    }
}

#[derive(Deserialize)]
struct PublicationPatch {
    name: Option<String>,
    publish_insert: Option<bool>,
    publish_update: Option<bool>,
    publish_delete: Option<bool>,
    publish_truncate: Option<bool>,
    tables: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct NewRole {
    name: String,
    is_superuser: Option<bool>,
    can_create_db: Option<bool>,
    can_create_role: Option<bool>,
    inherit_role: Option<bool>,
    can_login: Option<bool>,
    is_replication_role: Option<bool>,
    can_bypass_rls: Option<bool>,
    connection_limit: Option<i32>,
    password: Option<String>,
    valid_until: Option<String>,
    member_of: Option<Vec<String>>,
    members: Option<Vec<String>>,
    admins: Option<Vec<String>>,
    config: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct RoleConfigChange {
    op: String,
    path: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct RolePatch {
    name: Option<String>,
    is_superuser: Option<bool>,
    can_create_db: Option<bool>,
    can_create_role: Option<bool>,
    inherit_role: Option<bool>,
    can_login: Option<bool>,
    is_replication_role: Option<bool>,
    can_bypass_rls: Option<bool>,
    connection_limit: Option<i32>,
    password: Option<String>,
    valid_until: Option<String>,
    config: Option<Vec<RoleConfigChange>>,
}

/// One grant or revoke of `POST`/`DELETE /table-privileges` or
/// `/column-privileges`.
#[derive(Debug, Deserialize)]
pub struct PrivilegeChange {
    /// The relation (table privileges).
    relation_id: Option<u32>,
    /// `table_oid.attnum` (column privileges).
    column_id: Option<String>,
    /// A role, or `PUBLIC`.
    grantee: String,
    /// `SELECT`, `INSERT`, ... or `ALL`.
    privilege_type: String,
    /// `WITH GRANT OPTION` (grants only).
    is_grantable: Option<bool>,
}

/// Tells a field sent as `null` from a field left out.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_quoted_unless_they_are_sql() {
        assert_eq!(type_sql("text"), ("%I", "text".into()));
        assert_eq!(type_sql("text[]"), ("%I[]", "text".into()));
        assert_eq!(type_sql("public.mood"), ("%s", "public.mood".into()));
        assert_eq!(
            type_sql("numeric(10,2)[]"),
            ("%s[]", "numeric(10,2)".into())
        );
    }

    #[test]
    fn keywords_come_from_their_set() {
        assert!(keyword("command", "SELECT", &["SELECT"]).is_ok());
        let e = keyword("command", "SELECT; DROP TABLE x", &["SELECT"]).unwrap_err();
        assert!(e.to_string().contains("command"));
    }

    #[test]
    fn argument_lists_split_outside_quotes_and_parentheses() {
        assert_eq!(
            split_arguments("a integer, b numeric(10,2) DEFAULT 1.5, c text DEFAULT 'x, y'"),
            [
                "a integer",
                "b numeric(10,2) DEFAULT 1.5",
                "c text DEFAULT 'x, y'"
            ]
        );
        assert!(split_arguments("").is_empty());
    }
}
