//! The roots of trust of the function's HTTPS client (Connect, and Secrets Manager for the webhook
//! secret).
//!
//! The SDK's default client reads the platform's whole certificate store when it is built: every
//! bundle and every file of the certificate directories, several hundred certificates parsed on
//! every cold start, which measured as about half of our init time (see docs/performance.md).
//! Every public AWS endpoint, Connect's and Secrets Manager's included, presents a certificate
//! issued by Amazon Trust Services, so by default the client trusts exactly those roots: Amazon
//! Root CA 1–4 and the Starfield Services Root G2 that cross-signs them (AWS's documented list).
//! `TLS_ROOTS=system` restores the platform store for an endpoint with another CA (a private
//! endpoint behind a TLS-inspecting proxy, say).
//!
//! `tls/amazon-roots.pem` was taken from Debian's ca-certificates (Mozilla's list); the tests
//! below pin each certificate's SHA-256 fingerprint.

use aws_sdk_connect::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};

/// Amazon Trust Services' roots, PEM.
pub const AMAZON_ROOTS_PEM: &str = include_str!("tls/amazon-roots.pem");

/// Which certificates the HTTPS client accepts as roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// Amazon Trust Services only, embedded in the binary: nothing to read at cold start.
    #[default]
    Amazon,
    /// The platform's certificate store (and `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    System,
}

impl TlsRoots {
    /// `amazon` or `system`, as `TLS_ROOTS` takes them.
    pub fn parse(text: &str) -> Option<TlsRoots> {
        match text.to_ascii_lowercase().as_str() {
            "amazon" => Some(TlsRoots::Amazon),
            "system" => Some(TlsRoots::System),
            _ => None,
        }
    }

    fn trust_store(self) -> TrustStore {
        match self {
            TlsRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM),
            TlsRoots::System => TrustStore::default(),
        }
    }
}

/// The SDK's default HTTPS client (rustls with aws-lc, proxy settings from the environment, as
/// aws-config builds it for the latest behavior version) with the chosen roots.
pub fn https_client(roots: TlsRoots) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build()
        .expect("a TLS context with a trust store always builds");
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    /// SHA-256 of each certificate's DER, in file order.
    fn fingerprints(pem: &str) -> Vec<String> {
        pem.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let body: String = block
                    .split("-----END CERTIFICATE-----")
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .collect();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .expect("base64 body");
                hex::encode_upper(Sha256::digest(der))
            })
            .collect()
    }

    #[test]
    fn embedded_roots_are_amazon_trust_services() {
        // Fingerprints as Amazon Trust Services publishes them (https://www.amazontrust.com/repository/).
        assert_eq!(
            fingerprints(AMAZON_ROOTS_PEM),
            [
                "8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E", // Amazon Root CA 1
                "1BA5B2AA8C65401A82960118F80BEC4F62304D83CEC4713A19C39C011EA46DB4", // Amazon Root CA 2
                "18CE6CFE7BF14E60B2E347B8DFE868CB31D02EBB3ADA271569F50343B46DB3A4", // Amazon Root CA 3
                "E35D28419ED02025CFA69038CD623962458DA5C695FBDEA3C22B0BFB25897092", // Amazon Root CA 4
                "568D6905A2C88708A4B3025190EDCFEDB1974A606A13C6E5290FCB2AE63EDAB5", // Starfield Services Root G2
            ]
        );
    }

    #[test]
    fn roots_setting() {
        assert_eq!(TlsRoots::parse("Amazon"), Some(TlsRoots::Amazon));
        assert_eq!(TlsRoots::parse("system"), Some(TlsRoots::System));
        assert_eq!(TlsRoots::parse("none"), None);
        assert_eq!(TlsRoots::default(), TlsRoots::Amazon);
    }
}
