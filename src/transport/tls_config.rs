//! TLS settings shared by the `SSL` and `wss` transports: which mode, which
//! certificates, and the rustls configurations built from them.
//!
//! # What each mode protects against
//!
//! **Compatibility mode** ([`TlsOptions::Compatibility`], the default) does
//! what py2p and js2p do: the listener presents a self-signed certificate
//! generated at start-up and the dialler accepts any certificate.
//! - It *does* encrypt the traffic, so a **passive eavesdropper** who only
//!   records packets cannot read or undetectably alter them.
//! - It does **not** authenticate anyone. An **active man-in-the-middle**
//!   can present its own certificate to both ends and read and change
//!   everything; and **any stranger** who can reach a node can join the
//!   mesh, receive every broadcast and send its own. The subnet id is not
//!   a secret.
//!
//! **Verified mode** ([`TlsOptions::Verified`]) is rs2p's own, beyond the
//! references: mutual TLS. Each node has a certificate and key (PEM files);
//! the listener demands the dialler's certificate and the dialler checks the
//! listener's, both against the same trust settings: trusted roots (a
//! certificate must chain to one) and/or pinned certificates (a peer's
//! certificate must be exactly one of them). A peer that fails is refused
//! during the TLS handshake, before it sends a single mesh message, so it
//! never enters the routing table. This keeps strangers and
//! men-in-the-middle out; it does not protect against a member that holds a
//! valid certificate (members can still forge a message's `sender` field).
//!
//! Addresses are not checked against certificates: the certificate, not
//! the IP address a peer list announced, is what proves membership. If a
//! certificate carries an extended key usage extension it must list both
//! `serverAuth` and `clientAuth`, since every node both listens and dials.
//! Pinned certificates are matched byte for byte; their validity period is
//! not checked. Verified nodes cannot talk to py2p or js2p, which offer no
//! client certificate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ServerConfig};

use super::verify::{AcceptAnyCertificate, MeshPeerVerifier};
use super::TransportError;

/// How the TLS transports (`SSL`, `wss`) authenticate peers. See the
/// [module docs](self) for what each mode does and does not protect
/// against.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum TlsOptions {
    /// As py2p and js2p: a fresh self-signed certificate on the listener,
    /// no verification by the dialler. Encrypts against passive
    /// eavesdroppers; authenticates no one.
    #[default]
    Compatibility,
    /// Mutual TLS: both ends show a certificate and verify the other's
    /// against trusted roots or pinned certificates.
    Verified(VerifiedTls),
}

impl TlsOptions {
    /// Whether this is verified mode.
    pub fn is_verified(&self) -> bool {
        matches!(self, TlsOptions::Verified(_))
    }
}

/// This node's certificate and key, and whom it trusts, for verified mode.
///
/// # Examples
/// ```no_run
/// use rs2p::transport::{TlsOptions, VerifiedTls};
/// let tls = VerifiedTls::from_pem_files("node.pem", "node.key")?
///     .trust_roots_pem_file("mesh-ca.pem")?;
/// let options = TlsOptions::Verified(tls);
/// # Ok::<(), rs2p::transport::TransportError>(())
/// ```
#[derive(Clone)]
pub struct VerifiedTls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Vec<CertificateDer<'static>>,
    pinned: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for VerifiedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedTls")
            .field("chain", &self.chain.len())
            .field("roots", &self.roots.len())
            .field("pinned", &self.pinned.len())
            .finish_non_exhaustive()
    }
}

impl VerifiedTls {
    /// This node's certificate chain (end-entity first) and private key,
    /// trusting no one yet: add roots or pins before use.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        VerifiedTls {
            chain,
            key: Arc::new(key),
            roots: Vec::new(),
            pinned: Vec::new(),
        }
    }

    /// Reads the certificate chain and the private key (PKCS#8, PKCS#1 or
    /// SEC1) from PEM files.
    ///
    /// # Errors
    /// [`TransportError::Pem`] if a file cannot be read or parsed.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TransportError> {
        let chain = certs_from_file(cert.as_ref(), "certificate chain")?;
        let key =
            PrivateKeyDer::from_pem_file(key.as_ref()).map_err(|source| TransportError::Pem {
                what: "private key",
                path: key.as_ref().to_owned(),
                source,
            })?;
        Ok(Self::new(chain, key))
    }

    /// As [`from_pem_files`](Self::from_pem_files), from PEM text.
    ///
    /// # Errors
    /// [`TransportError::Missing`] if there is no certificate or no key.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Self, TransportError> {
        let chain = certs_from_pem(cert, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|_| TransportError::Missing("private key"))?;
        Ok(Self::new(chain, key))
    }

    /// Adds trusted roots: a peer whose certificate chains to one of them
    /// is accepted.
    pub fn trust_roots(mut self, roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.roots.extend(roots);
        self
    }

    /// Adds pinned certificates: a peer whose end-entity certificate is
    /// exactly one of them is accepted.
    pub fn pin(mut self, certs: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.pinned.extend(certs);
        self
    }

    /// Adds every certificate of a PEM file as a trusted root.
    ///
    /// # Errors
    /// [`TransportError::Pem`] if the file cannot be read or has no
    /// certificate.
    pub fn trust_roots_pem_file(self, path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let roots = certs_from_file(path.as_ref(), "trusted roots")?;
        Ok(self.trust_roots(roots))
    }

    /// Pins every certificate of a PEM file.
    ///
    /// # Errors
    /// [`TransportError::Pem`] if the file cannot be read or has no
    /// certificate.
    pub fn pin_pem_file(self, path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let pins = certs_from_file(path.as_ref(), "pinned certificates")?;
        Ok(self.pin(pins))
    }

    /// Adds every certificate of PEM text as a trusted root.
    ///
    /// # Errors
    /// [`TransportError::Missing`] if it holds no certificate.
    pub fn trust_roots_pem(self, pem: &[u8]) -> Result<Self, TransportError> {
        let roots = certs_from_pem(pem, "trusted root")?;
        Ok(self.trust_roots(roots))
    }

    /// Pins every certificate of PEM text.
    ///
    /// # Errors
    /// [`TransportError::Missing`] if it holds no certificate.
    pub fn pin_pem(self, pem: &[u8]) -> Result<Self, TransportError> {
        let pins = certs_from_pem(pem, "pinned certificate")?;
        Ok(self.pin(pins))
    }
}

fn certs_from_file(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let pem_error = |source| TransportError::Pem {
        what,
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(pem_error(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn certs_from_pem(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TransportError::Missing(what))?;
    if certs.is_empty() {
        return Err(TransportError::Missing(what));
    }
    Ok(certs)
}

/// The rustls configurations of one node: as a dialler and as a listener.
#[derive(Clone)]
pub(crate) struct TlsConfigs {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) verified: bool,
}

impl fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigs")
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

impl TlsConfigs {
    /// Builds both configurations. Compatibility mode generates its
    /// self-signed certificate here.
    pub(crate) fn new(options: &TlsOptions) -> Result<Self, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        match options {
            TlsOptions::Compatibility => {
                let generated = rcgen::generate_simple_self_signed(vec!["rs2p.invalid".into()])
                    .map_err(TransportError::Generate)?;
                let chain = vec![generated.cert.der().clone()];
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    generated.signing_key.serialize_der(),
                ));
                let server = server_builder(&provider)?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(TransportError::Config)?;
                let verifier: Arc<dyn ServerCertVerifier> =
                    Arc::new(AcceptAnyCertificate::new(&provider));
                let client = client_builder(&provider)?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth();
                Ok(Self::finish(client, server, false))
            }
            TlsOptions::Verified(v) => {
                if v.chain.is_empty() {
                    return Err(TransportError::Missing("certificate"));
                }
                let verifier = Arc::new(MeshPeerVerifier::new(&v.roots, &v.pinned, &provider)?);
                let clients: Arc<dyn ClientCertVerifier> = verifier.clone();
                let servers: Arc<dyn ServerCertVerifier> = verifier;
                let server = server_builder(&provider)?
                    .with_client_cert_verifier(clients)
                    .with_single_cert(v.chain.clone(), v.key.clone_key())
                    .map_err(key_error)?;
                let client = client_builder(&provider)?
                    .dangerous()
                    .with_custom_certificate_verifier(servers)
                    .with_client_auth_cert(v.chain.clone(), v.key.clone_key())
                    .map_err(key_error)?;
                Ok(Self::finish(client, server, true))
            }
        }
    }

    fn finish(client: ClientConfig, mut server: ServerConfig, verified: bool) -> Self {
        // No session resumption: connections are long-lived, and tickets
        // would only add records a py2p client must read past.
        server.send_tls13_tickets = 0;
        TlsConfigs {
            client: Arc::new(client),
            server: Arc::new(server),
            verified,
        }
    }
}

/// A certificate and key refused by rustls: a key of another certificate
/// is named as such.
fn key_error(e: rustls::Error) -> TransportError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TransportError::KeyMismatch
        }
        other => TransportError::Config(other),
    }
}

fn server_builder(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, TransportError> {
    ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TransportError::Config)
}

fn client_builder(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TransportError> {
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TransportError::Config)
}
