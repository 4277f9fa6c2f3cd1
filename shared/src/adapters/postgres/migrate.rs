//! Applies `migrations/*.sql` with refinery. Run by the local runner at start and by the migrator
//! in a deploy — never on a Lambda cold start, where concurrent instances would race.

use deadpool_postgres::Pool;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// No connection: the deploy fails (FAILED to CloudFormation) and can simply be retried.
    #[error("no database connection for migrations")]
    Connection(#[from] deadpool_postgres::PoolError),
    /// The applied migrations could not be read.
    #[error("reading the applied migrations")]
    History(#[from] tokio_postgres::Error),
    /// The database has migrations of a newer release but lacks some of this release's: not a
    /// history this release can have come from, so nothing is applied.
    #[error(
        "the database has migrations of a newer release (versions {newer:?}) but not this release's versions {missing:?}"
    )]
    NotANewerSchema { newer: Vec<i32>, missing: Vec<i32> },
    /// Creating or granting the application role failed (e.g. the migrator's user may not).
    #[error("could not create or grant the application role")]
    ApplicationRole(#[source] tokio_postgres::Error),
    /// The application role's name is not a plain lower-case identifier.
    #[error("application role name {0:?} is not a lower-case identifier")]
    RoleName(String),
    /// A migration failed, or an applied migration differs from this release's copy of it.
    #[error("migration failed")]
    Migration(#[from] refinery::Error),
}

/// Applies every migration not yet applied; returns the names of those it applied.
///
/// A database that a newer release has already migrated further is accepted as it is: that is
/// what a rollback (CloudFormation's, or redeploying the previous release) runs this migrator
/// against, and migrations are expand-then-contract, so the older code works on the newer schema
/// (docs/DEPLOY.md, "Migrations"). refinery's default would abort on the migrations it does not
/// know and fail the rollback. This release's own migrations must all be applied and unchanged.
pub async fn run_migrations(pool: &Pool) -> Result<Vec<String>, MigrationError> {
    apply(pool, embedded::migrations::runner()).await
}

/// The versions recorded in refinery's history table (none before the first migration).
async fn applied_versions(client: &tokio_postgres::Client) -> Result<Vec<i32>, MigrationError> {
    // Simple queries: no statement is left on the connection (the migrator runs through RDS
    // Proxy like everything else).
    let exists = client
        .simple_query("SELECT to_regclass('refinery_schema_history') IS NOT NULL")
        .await?;
    let exists = exists.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "t"),
        _ => None,
    });
    if exists != Some(true) {
        return Ok(Vec::new());
    }
    let rows = client
        .simple_query("SELECT version FROM refinery_schema_history")
        .await?;
    Ok(rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .collect())
}

async fn apply(pool: &Pool, runner: refinery::Runner) -> Result<Vec<String>, MigrationError> {
    let mut client = pool.get().await?;
    let known: Vec<i32> = runner
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .collect();
    let newest_known = known.iter().copied().max().unwrap_or(0);
    let applied = applied_versions(&client).await?;
    let newer: Vec<i32> = applied
        .iter()
        .copied()
        .filter(|v| *v > newest_known)
        .collect();
    if !newer.is_empty() {
        let missing: Vec<i32> = known
            .iter()
            .copied()
            .filter(|v| !applied.contains(v))
            .collect();
        if !missing.is_empty() {
            return Err(MigrationError::NotANewerSchema { newer, missing });
        }
        tracing::warn!(
            ?newer,
            newest_known,
            "the database has migrations of a newer release (a rollback): leaving them as they are"
        );
    }
    // Unknown applied migrations are tolerated only when they are all newer than this release's
    // (checked above); applied migrations this release knows are still compared by checksum.
    let runner = runner.set_abort_missing(newer.is_empty());
    let report = runner.run_async(&mut **client).await?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// The role the api, placer, alerter and sweeper connect as: it may read and write the rows of
/// the application's tables, nothing else - no DDL, no ownership, not refinery's history. The
/// migrator (the owner, RDS's master user) creates it and sets its password from its secret on
/// every run, so a restored database or a rotated secret is brought in line by the next deploy.
///
/// RDS's master user is no superuser (CREATEROLE, CREATEDB, rds_superuser): nothing here may need
/// more. In particular no `NOSUPERUSER`/`NOREPLICATION` in `ALTER ROLE`: naming those attributes
/// at all takes a superuser. `CREATE ROLE` without them gives none of them.
pub async fn ensure_application_role(
    pool: &Pool,
    role: &str,
    password: &str,
) -> Result<(), MigrationError> {
    if role.is_empty()
        || !role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(MigrationError::RoleName(role.to_owned()));
    }
    // A literal, not a parameter: utility statements (CREATE/ALTER ROLE) take none. The
    // generated password excludes quotes and backslashes; doubling quotes covers any other.
    let password = password.replace('\'', "''");
    let client = pool.get().await?;
    client
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                 CREATE ROLE {role} LOGIN;
               END IF;
             END $$;
             ALTER ROLE {role} WITH LOGIN PASSWORD '{password}';
             DO $$ BEGIN
               EXECUTE format('GRANT CONNECT ON DATABASE %I TO {role}', current_database());
             END $$;
             GRANT USAGE ON SCHEMA public TO {role};
             REVOKE CREATE ON SCHEMA public FROM {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role};
             REVOKE ALL ON refinery_schema_history FROM {role};"
        ))
        .await
        .map_err(MigrationError::ApplicationRole)?;
    Ok(())
}

/// Applies the migrations up to and including `version`: the schema of an earlier release, for
/// tests of upgrades (and for reproducing an old deployment by hand).
pub async fn run_migrations_up_to(
    pool: &Pool,
    version: i32,
) -> Result<Vec<String>, MigrationError> {
    let runner = embedded::migrations::runner().set_target(refinery::Target::Version(version));
    apply(pool, runner).await
}
