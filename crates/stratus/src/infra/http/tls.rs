//! HTTPS for the listeners (rustls, ring): a configured certificate chain and key, re-read when
//! their files change (a renewal needs no restart), or a local CA that `serve --tls` creates
//! under the stage's directory, with a certificate for localhost it signs afresh at each start.
//! A TLS listener still answers plain HTTP on the same port — with a redirect to `https://`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::infra::clock::Clock;
use crate::infra::settings::{Invalid, invalid};

/// How often, at most, a handshake looks at whether the certificate files changed.
const RECHECK: Duration = Duration::from_secs(1);
/// The local certificate's lifetime: what browsers accept from any CA.
const LOCAL_VALIDITY_DAYS: i64 = 397;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain HTTP.
    #[default]
    Off,
    /// `certificate` and `private_key`, PEM files.
    Files,
    /// A local CA and a localhost certificate under `<stage>/tls/` (`serve --tls`).
    Local,
}

/// `[server.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// The certificate chain, leaf first (PEM).
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<PathBuf>,
    /// `Strict-Transport-Security: max-age` sent with every response over TLS.
    #[serde(with = "humantime_serde")]
    pub hsts_max_age: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            mode: TlsMode::Off,
            certificate: None,
            private_key: None,
            hsts_max_age: Duration::from_secs(365 * 86400),
        }
    }
}

impl TlsConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.mode == TlsMode::Files && (self.certificate.is_none() || self.private_key.is_none()) {
            return invalid("server.tls.certificate", "mode `files` needs `certificate` and `private_key`");
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.mode != TlsMode::Off
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no usable private key (PEM PKCS#8, PKCS#1 or SEC1)", path.display())]
    Key { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the local certificates")]
    Generate(#[from] rcgen::Error),
    #[error("cannot set up TLS")]
    Rustls(#[from] rustls::Error),
}

/// The files a TLS listener serves from, and, for a local CA, the CA to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub ca: Option<PathBuf>,
}

/// The files `config` names, creating the local CA's when asked; `None` without TLS.
pub fn prepare(config: &TlsConfig, stage_dir: &Path, stage: &str) -> Result<Option<TlsFiles>, TlsError> {
    match config.mode {
        TlsMode::Off => Ok(None),
        TlsMode::Files => Ok(Some(TlsFiles {
            certificate: config.certificate.clone().unwrap_or_default(),
            private_key: config.private_key.clone().unwrap_or_default(),
            ca: None,
        })),
        TlsMode::Local => local_ca(&stage_dir.join("tls"), stage).map(Some),
    }
}

/// The rustls configuration of a listener serving `files` (HTTP/1.1 over ALPN); `clock` paces
/// the checks for changed files.
pub(crate) fn server_config(
    files: &TlsFiles,
    clock: Arc<dyn Clock>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certificates = Certificates::load(files.certificate.clone(), files.private_key.clone(), clock)?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(certificates));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate a handshake presents, re-read when its files' modification times change.
#[derive(Debug)]
struct Certificates {
    certificate: PathBuf,
    private_key: PathBuf,
    current: RwLock<Loaded>,
    clock: Arc<dyn Clock>,
    checked: Mutex<SystemTime>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    modified: (Option<SystemTime>, Option<SystemTime>),
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok()
}

impl Certificates {
    fn load(certificate: PathBuf, private_key: PathBuf, clock: Arc<dyn Clock>) -> Result<Self, TlsError> {
        let loaded = Self::read(&certificate, &private_key)?;
        let checked = Mutex::new(clock.now());
        Ok(Self { certificate, private_key, current: RwLock::new(loaded), clock, checked })
    }

    fn read(certificate: &Path, private_key: &Path) -> Result<Loaded, TlsError> {
        let modified = (modified(certificate), modified(private_key));
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(certificate)?)
            .collect::<Result<_, _>>()
            .map_err(|_| TlsError::NoCertificate { path: certificate.to_owned() })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { path: certificate.to_owned() });
        }
        let key = PrivateKeyDer::from_pem_slice(&read(private_key)?)
            .map_err(|_| TlsError::Key { path: private_key.to_owned() })?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|_| TlsError::Key { path: private_key.to_owned() })?;
        let key = Arc::new(CertifiedKey::new(chain, signing));
        key.keys_match().map_err(|_| TlsError::Key { path: private_key.to_owned() })?;
        Ok(Loaded { key, modified })
    }

    /// Re-reads the files if they changed since they were read; a broken new pair is logged and
    /// the old one kept, so a half-written renewal never takes the site down.
    fn refresh(&self) {
        {
            let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
            let now = self.clock.now();
            if now.duration_since(*checked).unwrap_or_default() < RECHECK {
                return;
            }
            *checked = now;
        }
        let now = (modified(&self.certificate), modified(&self.private_key));
        if now == self.current.read().unwrap_or_else(PoisonError::into_inner).modified {
            return;
        }
        match Self::read(&self.certificate, &self.private_key) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                tracing::info!(certificate = %self.certificate.display(), "TLS certificate reloaded");
            }
            Err(error) => tracing::warn!(
                error = %crate::infra::telemetry::error_chain(&error),
                "the TLS certificate changed but cannot be used; keeping the previous one"
            ),
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner).key))
    }
}

/// The local CA in `dir` (created on first use) and a fresh certificate it signs for
/// localhost, 127.0.0.1 and ::1.
fn local_ca(dir: &Path, stage: &str) -> Result<TlsFiles, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
    let (ca_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, format!("Stratus local CA ({stage})"));
    ca.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = match std::fs::read_to_string(&ca_key_path) {
        Ok(pem) if ca_path.is_file() => KeyPair::from_pem(&pem)?,
        _ => {
            let key = KeyPair::generate()?;
            let now = time::OffsetDateTime::now_utc();
            ca.not_before = now - time::Duration::days(1);
            ca.not_after = now + time::Duration::days(3650);
            let certificate = ca.self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_public(&ca_path, &certificate.pem())?;
            tracing::info!(ca = %ca_path.display(), "local certificate authority created");
            key
        }
    };
    let ca_pem = std::fs::read_to_string(&ca_path)
        .map_err(|source| TlsError::Read { path: ca_path.clone(), source })?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])?;
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let now = time::OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(LOCAL_VALIDITY_DAYS);
    let key = KeyPair::generate()?;
    let certificate = leaf.signed_by(&key, &issuer)?;
    let (certificate_path, private_key_path) = (dir.join("server.pem"), dir.join("server-key.pem"));
    write_private(&private_key_path, &key.serialize_pem())?;
    write_public(&certificate_path, &format!("{}{ca_pem}", certificate.pem()))?;
    Ok(TlsFiles { certificate: certificate_path, private_key: private_key_path, ca: Some(ca_path) })
}

fn write_public(path: &Path, text: &str) -> Result<(), TlsError> {
    crate::infra::files::write_atomically(path, text.as_bytes())
        .map_err(|source| TlsError::Write { path: path.to_owned(), source })
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    crate::infra::files::write_private(path, text.as_bytes())
        .map_err(|source| TlsError::Write { path: path.to_owned(), source })
}
