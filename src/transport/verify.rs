//! The two ways rs2p judges a peer's TLS certificate.
//!
//! - [`AcceptAnyCertificate`] (compatibility mode): any server certificate
//!   is taken, as py2p and js2p do, and so is the handshake signature made
//!   with its key. Checking that signature would prove only that the server
//!   holds the key of a certificate nobody vouches for — which anyone,
//!   a man in the middle included, can do — and it would refuse js2p, whose
//!   1024-bit RSA key is below what the `ring` verifier accepts (2048 bits).
//!   Compatibility mode authenticates no one either way; it encrypts.
//! - [`MeshPeerVerifier`] (verified mode): a peer's end-entity certificate
//!   must either be byte-for-byte one of the pinned certificates, or chain
//!   to one of the trusted roots (validity period, signatures and key usage
//!   checked by webpki). It judges both sides of a connection: the server
//!   certificate the dialler sees and the client certificate the listener
//!   demands. Host names and IP addresses in the certificate are *not*
//!   compared with the address dialled: in a mesh, addresses come from peer
//!   lists that any member can fill, so the certificate, not the address, is
//!   what proves membership (and a listener cannot check a dialler's name
//!   anyway).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};

use super::TransportError;

/// Compatibility mode's dialler: takes any server certificate and any
/// handshake signature (see the module documentation for why).
#[derive(Debug)]
pub(crate) struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyCertificate {
    pub(crate) fn new(provider: &CryptoProvider) -> Self {
        AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Verified mode: a peer is accepted if its certificate is pinned or chains
/// to a trusted root; used on both ends of a connection.
#[derive(Debug)]
pub(crate) struct MeshPeerVerifier {
    pinned: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    /// webpki's client verifier over `roots`, when there are roots.
    clients: Option<Arc<dyn ClientCertVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MeshPeerVerifier {
    pub(crate) fn new(
        roots: &[CertificateDer<'static>],
        pinned: &[CertificateDer<'static>],
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TransportError> {
        if roots.is_empty() && pinned.is_empty() {
            return Err(TransportError::NoTrust);
        }
        let mut store = RootCertStore::empty();
        for root in roots {
            store.add(root.clone()).map_err(TransportError::BadRoot)?;
        }
        let store = Arc::new(store);
        let clients = if store.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(store.clone(), provider.clone())
                    .build()
                    .map_err(TransportError::Verifier)?,
            )
        };
        Ok(MeshPeerVerifier {
            pinned: pinned.to_vec(),
            roots: store,
            clients,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    fn is_pinned(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
    }
}

impl ServerCertVerifier for MeshPeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.is_pinned(end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        if self.roots.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for MeshPeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.clients {
            Some(webpki) => webpki.root_hint_subjects(),
            None => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if self.is_pinned(end_entity) {
            return Ok(ClientCertVerified::assertion());
        }
        match &self.clients {
            Some(webpki) => webpki.verify_client_cert(end_entity, intermediates, now),
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
