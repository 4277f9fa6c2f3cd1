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
    let mut client = pool.get().await?;
    let report = embedded::migrations::runner()
        .run_async(&mut **client)
        .await?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
