//! Embedding the endpoint behind the AWS SDK (feature `sdk`), for the local runner: choosing the
//! SQS endpoint from configuration, and an [`SdkConfig`] that points the SQS clients at an
//! embedded endpoint.

use std::net::SocketAddr;
use std::str::FromStr;

use aws_config::{Region, SdkConfig};
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use aws_types::origin::Origin;

use crate::server::{self, DEFAULT_LISTEN, SqsLocalHandle};

/// Which SQS endpoint a process uses (the runner reads it from `SQS_ENDPOINT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SqsEndpoint {
    /// `embedded` (the default): an in-process endpoint; no emulator needed.
    #[default]
    Embedded,
    /// `external`: whatever the SDK's standard configuration says (`AWS_ENDPOINT_URL` pointing
    /// at moto or LocalStack, or real AWS).
    External,
    /// An `http(s)://` URL: that endpoint, for SQS only.
    Url(String),
}

impl FromStr for SqsEndpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "" | "embedded" => Ok(Self::Embedded),
            "external" => Ok(Self::External),
            lower if lower.starts_with("http://") || lower.starts_with("https://") => {
                Ok(Self::Url(text.trim_end_matches('/').to_owned()))
            }
            _ => Err(format!(
                "{text:?} is not `embedded`, `external` or an http(s):// URL"
            )),
        }
    }
}

/// The SQS side of a process: the SDK configuration for its SQS clients, and the embedded
/// endpoint when there is one (keep it alive as long as the clients).
pub struct SqsConnection {
    pub sdk: SdkConfig,
    pub embedded: Option<SqsLocalHandle>,
}

impl SqsConnection {
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Where SQS requests go, for startup banners.
    pub fn describe(&self) -> String {
        match (&self.embedded, self.sdk.endpoint_url()) {
            (Some(handle), _) => format!("embedded sqs-local at {}", handle.endpoint_url),
            (None, Some(url)) => url.to_owned(),
            (None, None) => "AWS".to_owned(),
        }
    }
}

/// Resolves `endpoint` against the process's SDK configuration `base`. For the embedded choice
/// it starts an endpoint on `listen` and signs with fixed local credentials, so that no AWS
/// credentials need to exist. Without `listen` it takes [`DEFAULT_LISTEN`] when that port is
/// free (a predictable URL for tools such as `orders-admin`), and any free port otherwise
/// (several runners side by side, as the end-to-end tests start them).
pub async fn connect(
    endpoint: &SqsEndpoint,
    base: &SdkConfig,
    listen: Option<SocketAddr>,
) -> std::io::Result<SqsConnection> {
    match endpoint {
        SqsEndpoint::External => Ok(SqsConnection {
            sdk: base.clone(),
            embedded: None,
        }),
        SqsEndpoint::Url(url) => Ok(SqsConnection {
            sdk: with_endpoint(base.to_builder(), url).build(),
            embedded: None,
        }),
        SqsEndpoint::Embedded => {
            let handle = match listen {
                Some(listen) => server::spawn(listen).await?,
                None => {
                    let preferred: SocketAddr = DEFAULT_LISTEN.parse().expect("a socket address");
                    match server::spawn(preferred).await {
                        Ok(handle) => handle,
                        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                            server::spawn(SocketAddr::from(([127, 0, 0, 1], 0))).await?
                        }
                        Err(error) => return Err(error),
                    }
                }
            };
            Ok(SqsConnection {
                sdk: embedded_sdk_config(base, &handle.endpoint_url),
                embedded: Some(handle),
            })
        }
    }
}

/// Sets the endpoint as code-given configuration. Without the origin, a service client built
/// from the config would still prefer an endpoint from the environment (`AWS_ENDPOINT_URL`, which
/// the run scripts point at moto) over this one.
fn with_endpoint(
    mut builder: aws_types::sdk_config::Builder,
    endpoint_url: &str,
) -> aws_types::sdk_config::Builder {
    builder.set_endpoint_url(Some(endpoint_url.to_owned()));
    builder.insert_origin("endpoint_url", Origin::shared_config());
    builder
}

/// `base` with its endpoint replaced by `endpoint_url`, local credentials, and a region (the
/// base's, or `us-east-1`).
pub fn embedded_sdk_config(base: &SdkConfig, endpoint_url: &str) -> SdkConfig {
    let region = base
        .region()
        .cloned()
        .unwrap_or_else(|| Region::new("us-east-1"));
    with_endpoint(base.to_builder(), endpoint_url)
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local",
            "local",
            None,
            None,
            "sqs-local",
        )))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without an address: the default port, or any port once the default is taken.
    #[tokio::test]
    async fn default_port_or_any() {
        let base = aws_config::SdkConfig::builder().build();
        let first = connect(&SqsEndpoint::Embedded, &base, None).await.unwrap();
        let second = connect(&SqsEndpoint::Embedded, &base, None).await.unwrap();
        let ports = [&first, &second].map(|c| c.embedded.as_ref().unwrap().addr.port());
        assert_ne!(ports[0], ports[1]);
        assert!(ports.contains(&9324) || std::net::TcpListener::bind("127.0.0.1:9324").is_err());
    }

    #[test]
    fn endpoint_choices() {
        assert_eq!("".parse(), Ok(SqsEndpoint::Embedded));
        assert_eq!("Embedded".parse(), Ok(SqsEndpoint::Embedded));
        assert_eq!("external".parse(), Ok(SqsEndpoint::External));
        assert_eq!(
            "http://127.0.0.1:5055/".parse(),
            Ok(SqsEndpoint::Url("http://127.0.0.1:5055".into()))
        );
        assert!("moto".parse::<SqsEndpoint>().is_err());
    }

    /// What `AWS_ENDPOINT_URL` looks like to a client built from a loaded config.
    #[derive(Debug)]
    struct EnvironmentEndpoint;

    impl aws_types::service_config::LoadServiceConfig for EnvironmentEndpoint {
        fn load_config(
            &self,
            key: aws_types::service_config::ServiceConfigKey<'_>,
        ) -> Option<String> {
            (key.env() == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:9".to_owned())
        }
    }

    /// Also proves that an endpoint from the environment (here: nothing listens on port 9) does
    /// not win over the embedded one.
    #[tokio::test]
    async fn messages_arrive_at_the_embedded_endpoint() {
        let mut base = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:9")
            .service_config(EnvironmentEndpoint);
        base.insert_origin("endpoint_url", Origin::shared_environment_variable());
        let base = base.build();
        let connection = connect(
            &SqsEndpoint::Embedded,
            &base,
            Some("127.0.0.1:0".parse().unwrap()),
        )
        .await
        .unwrap();
        assert!(connection.is_embedded());
        let client = aws_sdk_sqs::Client::new(&connection.sdk);
        let inbox = client
            .create_queue()
            .queue_name("inbox")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        client
            .send_message()
            .queue_url(&inbox)
            .message_body(r#"{"kind":"order_failed"}"#)
            .send()
            .await
            .unwrap();
        let received = client
            .receive_message()
            .queue_url(&inbox)
            .send()
            .await
            .unwrap();
        assert_eq!(
            received.messages()[0].body(),
            Some(r#"{"kind":"order_failed"}"#)
        );
    }
}
