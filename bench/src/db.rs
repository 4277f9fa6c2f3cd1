//! The benchmarks' own view of the orders table: one plain connection, next to whatever pool the
//! system under test uses, for counting and checking what the system wrote.

/// Connects without TLS (every database here is local) and drives the connection on its own task.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
