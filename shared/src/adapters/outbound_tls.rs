//! The certificate authorities our outbound HTTPS trusts — the AWS APIs and the exchange — built
//! into the binary instead of read from the system store.
//!
//! The SDK's default client and reqwest's default verifier each load the system store
//! (`rustls-native-certs`: every file of the CA bundle and the CA directory, parsed) when a
//! process first builds them: 1.5–20 ms per load on the benchmark machine, twice in the placer
//! and the alerter (the SDK and the exchange client), all of it inside the cold start (issue #12).
//! Trust anchors compiled in cost nothing at start-up. The database's roots are separate
//! (`postgres::connect`: web PKI plus the RDS CAs).

use aws_sdk_sqs::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// Amazon Trust Services' roots: every AWS service endpoint's certificate (SQS, SNS, Secrets
/// Manager, the API Gateway management API, their VPC endpoints) chains to one of them.
const AWS_TRUST_ROOTS: &[u8] = include_bytes!("../../certs/aws-trust-roots.pem");

/// The HTTPS client of every AWS SDK client: rustls with aws-lc, as the SDK's default, trusting
/// Amazon Trust Services' roots only. Unlike the default it reads no `HTTPS_PROXY`: the functions
/// reach AWS through VPC endpoints or a NAT gateway, never a proxy.
pub fn aws_https_client() -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(AWS_TRUST_ROOTS))
        .build()
        .expect("a trust store of PEM certificates is a valid TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
}

/// rustls for the exchange client: the web PKI roots (Mozilla's, compiled in), the aws-lc
/// provider, TLS 1.2 and 1.3. An exchange is a public HTTPS service; a private CA would not be in
/// a Lambda's system store either.
pub fn web_pki_tls() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn the_aws_roots_are_the_five_amazon_trust_services_certificates_and_all_parse() {
        let certs = CertificateDer::pem_slice_iter(AWS_TRUST_ROOTS)
            .collect::<Result<Vec<_>, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        let (valid, invalid) = store.add_parsable_certificates(certs);
        assert_eq!((valid, invalid), (5, 0));
        // Each one is also a root of the web PKI list the exchange client trusts: nothing here
        // that Mozilla's store does not vouch for.
        for anchor in &store.roots {
            assert!(
                webpki_roots::TLS_SERVER_ROOTS
                    .iter()
                    .any(|web| web.subject == anchor.subject),
                "{:?}",
                anchor.subject
            );
        }
    }
}
