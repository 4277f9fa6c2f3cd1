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

    /// The API key pepper: the secret's whole string, or the `pepper` field of a JSON secret
    /// (what `GenerateSecretString` with a `SecretStringTemplate` produces).
    pub async fn pepper(&self, arn: &str) -> Result<String, BoxError> {
        let output = self.client.get_secret_value().secret_id(arn).send().await?;
        let text = output
            .secret_string()
            .ok_or_else(|| EmptySecret { arn: arn.into() })?;
        Ok(pepper_from_secret(text))
    }
}

fn pepper_from_secret(text: &str) -> String {
    field_or_bare(text, "pepper")
}

/// A secret that is either the value itself or JSON with the value in `field` (what a
/// `SecretStringTemplate` or the console's key/value editor produce).
pub(crate) fn field_or_bare(text: &str, field: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get(field).and_then(|p| p.as_str()).map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned())
}

/// The key hasher from the configured pepper (read from Secrets Manager in AWS).
pub async fn key_hasher(
    source: &PepperSource,
    sdk: &aws_config::SdkConfig,
) -> Result<crate::auth::KeyHasher, BoxError> {
    let pepper = match source {
        PepperSource::Value(value) => value.clone(),
        PepperSource::SecretArn(arn) => SecretReader::new(sdk).pepper(arn).await?,
    };
    Ok(crate::auth::KeyHasher::new(pepper.as_bytes())?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pepper_is_read_bare_or_from_json() {
        assert_eq!(super::pepper_from_secret("abc\n"), "abc");
        assert_eq!(super::pepper_from_secret(r#"{"pepper":"p-1"}"#), "p-1");
    }
}

/// Where the API key pepper (the HMAC key of the stored key hashes) comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PepperSource {
    /// The pepper itself (local runs and tests); never printed.
    Value(String),
    /// A Secrets Manager secret holding it (AWS); read once at cold start.
    SecretArn(String),
}

impl std::fmt::Debug for PepperSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("PepperSource::Value(***)"),
            Self::SecretArn(arn) => write!(f, "PepperSource::SecretArn({arn})"),
        }
    }
}
