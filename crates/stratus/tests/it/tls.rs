//! HTTPS: the listener presents the configured certificate and picks up a renewed one from
//! its files without a restart — and keeps the old one when the new files are broken.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use stratus::infra::http::tls::{TlsConfig, TlsMode};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::support::TestApp;

struct Authority {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
}

impl Authority {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("CA").der().clone();
        Self { issuer: Issuer::new(params, key), certificate }
    }

    /// Writes a new certificate for 127.0.0.1 and its key into `dir`; returns the certificate.
    fn issue(&self, dir: &Path) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("leaf");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key");
        std::fs::write(dir.join("cert.pem"), leaf.pem()).expect("write certificate");
        leaf.der().clone()
    }
}

/// The certificate the server presents in a handshake, verified against `ca`.
async fn presented(address: std::net::SocketAddr, ca: &CertificateDer<'static>) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let socket = tokio::net::TcpStream::connect(address).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let stream =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, socket).await.expect("handshake");
    stream.get_ref().1.peer_certificates().expect("certificates")[0].clone()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let files = tempfile::TempDir::new().expect("directory");
    let authority = Authority::new();
    let first = authority.issue(files.path());
    let (certificate, private_key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    let app = TestApp::spawn_with(
        |config| {
            config.server.tls = TlsConfig {
                mode: TlsMode::Files,
                certificate: Some(certificate.clone()),
                private_key: Some(private_key.clone()),
                ..TlsConfig::default()
            };
        },
        |_| {},
    )
    .await;
    let address = app.base.trim_start_matches("http://").parse().expect("address");
    assert_eq!(presented(address, &authority.certificate).await, first);

    let renewed = authority.issue(files.path());
    // Files are looked at again at most once a second.
    assert_eq!(presented(address, &authority.certificate).await, first);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(presented(address, &authority.certificate).await, renewed);

    // A renewal caught half-written is not taken: the last good certificate stays.
    std::fs::write(&certificate, "-----BEGIN CERTIFICATE-----\ntruncated").expect("write");
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(presented(address, &authority.certificate).await, renewed);
}
