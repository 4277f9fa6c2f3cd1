//! Secrets Manager: the database credentials in RDS's JSON secret format.

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;

use crate::ports::BoxError;

/// Reads secrets; cheap to clone (the SDK client is reference-counted).
#[derive(Clone, Debug)]
pub struct SecretReader {
    client: Client,
}

/// The fields of an RDS-managed secret that a connection needs. `Debug` hides the password.
#[derive(Clone, Deserialize)]
pub struct DatabaseSecret {
    pub username: String,
    pub password: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_dbname")]
    pub dbname: String,
}

fn default_port() -> u16 {
    5432
}

fn default_dbname() -> String {
    "postgres".into()
}

impl std::fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSecret")
            .field("username", &self.username)
            .field("password", &"***")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("secret {arn} has no string value")]
struct EmptySecret {
    arn: String,
}

impl SecretReader {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: Client::new(sdk),
        }
    }

    pub async fn database_secret(&self, arn: &str) -> Result<DatabaseSecret, BoxError> {
        let output = self.client.get_secret_value().secret_id(arn).send().await?;
        let text = output
            .secret_string()
            .ok_or_else(|| EmptySecret { arn: arn.into() })?;
        Ok(serde_json::from_str(text)?)
    }
}
