//! Applies `migrations/*.sql` with refinery. Run by the local runner at start and by the migrator
//! in a deploy — never on a Lambda cold start, where concurrent instances would race.

use deadpool_postgres::Pool;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("no database connection for migrations")]
    Connection(#[from] deadpool_postgres::PoolError),
    #[error("migration failed")]
    Migration(#[from] refinery::Error),
}

/// Applies every migration not yet applied; returns the names of those it applied.
pub async fn run_migrations(pool: &Pool) -> Result<Vec<String>, MigrationError> {
    apply(pool, embedded::migrations::runner()).await
}

async fn apply(pool: &Pool, runner: refinery::Runner) -> Result<Vec<String>, MigrationError> {
    let mut client = pool.get().await?;
    let report = runner.run_async(&mut **client).await?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
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
