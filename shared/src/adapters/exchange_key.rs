//! Builds the exchange client from configuration: the API key comes from an env var locally or
//! from Secrets Manager in AWS (read once at cold start; a rotated key shows up as 401s, which
//! are transient, until instances are recycled).

use aws_sdk_secretsmanager::Client;

use crate::adapters::http_exchange::ExchangeConfig;
use crate::adapters::http_exchange::HttpExchange;
use crate::ports::BoxError;

/// The exchange client for the functions.
pub async fn connect_exchange(
    config: &ExchangeConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<HttpExchange, BoxError> {
    let api_key = match (&config.api_key, &config.api_key_secret_arn) {
        (_, Some(arn)) => Some(read_api_key(sdk, arn).await?),
        (Some(key), None) => Some(key.clone()),
        (None, None) => None,
    };
    Ok(HttpExchange::new(
        config.base_url.clone(),
        api_key,
        config.connect_timeout,
        config.request_timeout,
    )?)
}

/// The exchange's API key for a client other than the HTTP one (the ingester's feed): the
/// secret's when an ARN is given, else the plain key, else none.
pub async fn resolve_api_key(
    api_key: Option<&str>,
    api_key_secret_arn: Option<&str>,
    sdk: &aws_config::SdkConfig,
) -> Result<Option<String>, BoxError> {
    Ok(match (api_key, api_key_secret_arn) {
        (_, Some(arn)) => Some(read_api_key(sdk, arn).await?),
        (Some(key), None) => Some(key.to_owned()),
        (None, None) => None,
    })
}

/// The secret is either the bare key or JSON with an `api_key` field.
async fn read_api_key(sdk: &aws_config::SdkConfig, arn: &str) -> Result<String, BoxError> {
    let output = Client::new(sdk)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await?;
    let text = output
        .secret_string()
        .ok_or("the exchange API key secret is empty")?;
    Ok(parse_api_key(text))
}

fn parse_api_key(text: &str) -> String {
    super::secrets::field_or_bare(text, "api_key")
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_is_read_bare_or_from_json() {
        assert_eq!(super::parse_api_key("abc123\n"), "abc123");
        assert_eq!(super::parse_api_key(r#"{"api_key":"k-1"}"#), "k-1");
    }
}
