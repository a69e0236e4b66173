//! Errors of setting up a transport. Errors on a live connection (a failed
//! TLS or WebSocket handshake, a dropped socket) are `std::io::Error`s, as
//! the [`Transport`](super::Transport) trait returns them.

use std::path::PathBuf;

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The protocol's `encryption` names no transport rs2p knows.
    #[error("unknown transport {0:?}: expected Plaintext, SSL, ws or wss")]
    UnknownEncryption(String),
    /// Verified TLS settings were given for a transport without TLS; they
    /// would silently protect nothing.
    #[error("verified TLS settings were given, but the {0} transport does not use TLS")]
    TlsNotUsed(String),
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {path}: {source}")]
    Pem {
        /// What the file should hold ("certificate chain", "private key", …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The reading or parsing error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A PEM input held no item of the expected kind.
    #[error("no {0} found")]
    Missing(&'static str),
    /// Verified mode needs something to verify peers against.
    #[error("verified TLS needs at least one trusted root or pinned certificate")]
    NoTrust,
    /// A certificate given as a trusted root could not be used as one.
    #[error("unusable trusted root certificate: {0}")]
    BadRoot(#[source] rustls::Error),
    /// The private key is not the key of the certificate.
    #[error(
        "the private key does not belong to the certificate: give the key that was made \
         with this certificate (for `rs2p node`, --key must be the key of --cert)"
    )]
    KeyMismatch,
    /// rustls refused the certificate chain and key.
    #[error("unusable certificate or key: {0}")]
    Config(#[source] rustls::Error),
    /// The verifier of peer certificates could not be built.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// The self-signed certificate of compatibility mode could not be made.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[source] rcgen::Error),
}
