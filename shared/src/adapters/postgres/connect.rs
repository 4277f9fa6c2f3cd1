//! The connection pool: where credentials come from (a URL locally, a rotating Secrets Manager
//! secret in AWS), TLS with certificate verification, and the pool's size and timeouts.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, tokio_postgres,
};
use futures::future::BoxFuture;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::adapters::secrets::{DatabaseSecret, SecretReader};

/// Where the database credentials come from.
#[derive(Clone)]
pub enum DatabaseCredentials {
    /// A `postgres://` URL (local runs and tests).
    Url(String),
    /// An RDS-format JSON secret, read at start-up and re-read once when the database refuses
    /// the password (the secret was rotated under a running Lambda).
    Secret {
        arn: String,
        /// Connect here instead of the secret's `host` (an RDS Proxy endpoint).
        host_override: Option<String>,
        dbname_override: Option<String>,
    },
}

impl fmt::Debug for DatabaseCredentials {
    // Never print a password: URLs are shown without their userinfo.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(url) => {
                let shown = match (url.find("://"), url.rfind('@')) {
                    (Some(scheme), Some(at)) if at > scheme => {
                        format!("{}://***@{}", &url[..scheme], &url[at + 1..])
                    }
                    _ => url.clone(),
                };
                f.debug_tuple("Url").field(&shown).finish()
            }
            Self::Secret {
                arn,
                host_override,
                dbname_override,
            } => f
                .debug_struct("Secret")
                .field("arn", arn)
                .field("host_override", host_override)
                .field("dbname_override", dbname_override)
                .finish(),
        }
    }
}

/// Whether the connection is encrypted. `VerifyFull` checks the server certificate and its name
/// against the public web PKI roots (RDS Proxy's certificates chain to Amazon Trust Services,
/// among them), the built-in RDS CA bundle (an RDS instance's certificate chains to its region's
/// RDS CA: a direct connection, e.g. `ExistingDatabaseHost` without a proxy) and an optional
/// `DATABASE_CA_FILE` (any other server, e.g. a self-managed PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    VerifyFull,
}

/// Everything needed to build the pool; read from the environment by `config`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub credentials: DatabaseCredentials,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    /// Connections per process. One Lambda instance serves one request at a time, so a couple of
    /// connections suffice; instances × this must stay under the proxy's connection limit.
    pub pool_size: usize,
    /// Bounds how long a request waits for the database before failing with a 500, so that an
    /// outage makes fast errors rather than piled-up requests.
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("invalid database URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    #[error("database credentials come from a secret but no Secrets Manager client was given")]
    NoSecretReader,
    #[error("could not read the database secret")]
    Secret(#[source] crate::ports::BoxError),
    #[error("could not load the database CA bundle {path}")]
    CaBundle {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("could not configure TLS")]
    Tls(#[from] rustls::Error),
    #[error("could not build the connection pool")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// Builds the pool once per process (the cold start). No connection is opened here, so a
/// database outage at start-up does not crash the function; requests then fail with a 500.
pub async fn build_pool(
    config: &DatabaseConfig,
    secrets: Option<SecretReader>,
) -> Result<Pool, PoolError> {
    let (base, source) = match &config.credentials {
        DatabaseCredentials::Url(url) => (
            url.parse::<tokio_postgres::Config>()
                .map_err(PoolError::InvalidUrl)?,
            CredentialSource::Static,
        ),
        DatabaseCredentials::Secret {
            arn,
            host_override,
            dbname_override,
        } => {
            let reader = secrets.ok_or(PoolError::NoSecretReader)?;
            let secret = reader
                .database_secret(arn)
                .await
                .map_err(PoolError::Secret)?;
            let mut base = tokio_postgres::Config::new();
            base.host(host_override.as_deref().unwrap_or(&secret.host))
                .port(secret.port)
                .dbname(dbname_override.as_deref().unwrap_or(&secret.dbname));
            let source = CredentialSource::Secret {
                reader,
                arn: arn.clone(),
                current: RwLock::new(secret),
            };
            (base, source)
        }
    };
    let mut base = base;
    base.connect_timeout(config.connect_timeout)
        .application_name("order-placement");
    base.ssl_mode(match config.tls {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::VerifyFull => SslMode::Require,
    });

    let connect = CredentialedConnect {
        base: base.clone(),
        source,
        tls: MakeRustlsConnect::new(tls_config(config)?),
    };
    let manager_config = ManagerConfig {
        // A closed connection is detected without a round trip; a broken one fails its query.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = Manager::from_connect(without_password(base), connect, manager_config);
    Ok(Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .build()?)
}

/// Opens the pool's first connection in the background, beside the rest of the cold start.
/// Left to the first request, the connection (a TCP and maybe TLS handshake, a new server
/// backend behind the proxy) comes after the SDK clients, the secrets and the runtime's first
/// poll, and the first response waits for all of them in a row; started here, it overlaps them.
/// The function awaits the task at the end of its init, so the first request finds the
/// connection idle in the pool (not awaited, a pool of two would open a second one beside it
/// while it is still opening, and gain nothing). The wait is bounded by the pool's create
/// timeout (`connect_timeout`). A failure only logs: no connection is required at start-up (an
/// outage must not crash the init), and the first request connects again and reports what it
/// meets.
pub fn warm_up(pool: &Pool) -> JoinHandle<()> {
    let pool = pool.clone();
    tokio::spawn(async move {
        if let Err(error) = pool.get().await {
            tracing::warn!(
                error = %error,
                "could not open the first database connection at start-up; requests will retry"
            );
        }
    })
}

/// The manager keeps a copy of the config for its `Debug`; make sure it holds no secret.
fn without_password(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    config.password("");
    config
}

/// The Amazon RDS certificate authorities of every region (see the file's header for where they
/// come from and how to refresh them).
const RDS_CA_BUNDLE: &[u8] = include_bytes!("../../../certs/rds-ca-bundle.pem");

fn rds_ca_certificates() -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(RDS_CA_BUNDLE)
        .collect::<Result<Vec<_>, _>>()
        .expect("the built-in RDS CA bundle is valid PEM (unit-tested)")
}

fn tls_config(config: &DatabaseConfig) -> Result<rustls::ClientConfig, PoolError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Without these a direct connection to an RDS instance fails verification: its certificate
    // is issued by the RDS CA, not by a public root. (Parsed only when TLS is on.)
    if config.tls == TlsMode::VerifyFull {
        for cert in rds_ca_certificates() {
            roots.add(cert)?;
        }
    }
    if let Some(path) = &config.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| PoolError::CaBundle {
                path: path.clone(),
                source,
            })?;
        for cert in certs {
            roots.add(cert)?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

enum CredentialSource {
    Static,
    Secret {
        reader: SecretReader,
        arn: String,
        current: RwLock<DatabaseSecret>,
    },
}

struct CredentialedConnect {
    base: tokio_postgres::Config,
    source: CredentialSource,
    tls: MakeRustlsConnect,
}

impl CredentialedConnect {
    async fn config(&self) -> tokio_postgres::Config {
        let mut config = self.base.clone();
        if let CredentialSource::Secret { current, .. } = &self.source {
            let secret = current.read().await;
            config.user(&secret.username).password(&secret.password);
        }
        config
    }

    async fn open(
        &self,
        config: tokio_postgres::Config,
    ) -> Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error> {
        let (client, connection) = config.connect(self.tls.clone()).await?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(error = %error, "database connection closed with an error");
            }
        });
        Ok((client, task))
    }

    /// Re-reads the secret; true when it changed (worth one more try).
    async fn refresh_secret(&self) -> bool {
        let CredentialSource::Secret {
            reader,
            arn,
            current,
        } = &self.source
        else {
            return false;
        };
        match reader.database_secret(arn).await {
            Ok(fresh) => {
                let mut current = current.write().await;
                let changed =
                    current.username != fresh.username || current.password != fresh.password;
                *current = fresh;
                changed
            }
            Err(error) => {
                tracing::error!(error = %error, "could not re-read the database secret");
                false
            }
        }
    }
}

impl Connect for CredentialedConnect {
    fn connect(
        &self,
        _: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        Box::pin(async move {
            match self.open(self.config().await).await {
                Err(error) if is_auth_failure(&error) && self.refresh_secret().await => {
                    tracing::info!(
                        "database refused the credentials; retrying with the re-read secret"
                    );
                    self.open(self.config().await).await
                }
                other => other,
            }
        })
    }
}

fn is_auth_failure(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_full_trusts_the_rds_certificate_authorities() {
        let bundle = rds_ca_certificates();
        assert!(bundle.len() >= 60, "one RDS CA per region and kind");
        for cert in &bundle {
            let der = cert.as_ref();
            assert!(
                der.windows(b"Amazon RDS".len()).any(|w| w == b"Amazon RDS"),
                "only Amazon RDS CAs in the bundle"
            );
        }
        // The us-east-1 RSA2048 G1 root, which RDS instances there use by default.
        assert!(bundle.iter().any(|c| {
            let der = c.as_ref();
            let name = b"Amazon RDS us-east-1 Root CA RSA2048 G1";
            der.windows(name.len()).any(|w| w == name)
        }));
        let config = DatabaseConfig {
            credentials: DatabaseCredentials::Url("postgres://app@db/orders".into()),
            tls: TlsMode::VerifyFull,
            ca_file: None,
            pool_size: 1,
            connect_timeout: Duration::from_secs(1),
        };
        tls_config(&config).expect("TLS with the web roots and the RDS CAs");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let credentials = DatabaseCredentials::Url("postgres://app:s3cret@db:5432/orders".into());
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db:5432/orders"));
    }
}
