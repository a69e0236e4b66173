//! Test certificates made with rcgen: a mesh CA, node certificates it
//! signs (IP SAN 127.0.0.1, serverAuth + clientAuth), and self-signed ones
//! for pinning.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rs2p::transport::{TlsOptions, VerifiedTls};

/// A certificate authority for one test mesh.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A node's certificate and key, as PEM text.
#[derive(Clone)]
pub struct NodeCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A node certificate signed by this CA.
    pub fn issue(&self, name: &str) -> NodeCert {
        let key = KeyPair::generate().unwrap();
        let cert = node_params(name).signed_by(&key, &self.issuer).unwrap();
        NodeCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn node_params(name: &str) -> CertificateParams {
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

/// A self-signed node certificate (for pinning).
pub fn self_signed(name: &str) -> NodeCert {
    let key = KeyPair::generate().unwrap();
    let cert = node_params(name).self_signed(&key).unwrap();
    NodeCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl NodeCert {
    /// Verified-mode settings with this identity, trusting `ca`'s roots.
    pub fn trusting(&self, ca: &TestCa) -> TlsOptions {
        TlsOptions::Verified(
            self.identity()
                .trust_roots_pem(ca.pem().as_bytes())
                .unwrap(),
        )
    }

    /// Verified-mode settings with this identity, pinning `peers`.
    pub fn pinning(&self, peers: &[&NodeCert]) -> TlsOptions {
        let mut tls = self.identity();
        for peer in peers {
            tls = tls.pin_pem(peer.cert_pem.as_bytes()).unwrap();
        }
        TlsOptions::Verified(tls)
    }

    /// This identity with no trust yet.
    pub fn identity(&self) -> VerifiedTls {
        VerifiedTls::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }
}
