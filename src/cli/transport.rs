//! The transport options of `rs2p node`: `--transport` and the verified
//! TLS files (`--cert`, `--key`, `--trust`, `--pin`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rs2p::transport::{TlsOptions, VerifiedTls};

/// A transport, as the protocol's `encryption` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportName {
    /// Frames over TCP (`Plaintext`).
    Plaintext,
    /// Frames over TLS (`SSL`), as py2p.
    Ssl,
    /// Frames over WebSocket (`ws`), as js2p.
    Ws,
    /// Frames over WebSocket over TLS (`wss`), as js2p.
    Wss,
}

impl TransportName {
    /// The protocol's `encryption` field for this transport.
    pub fn encryption(self) -> &'static str {
        match self {
            TransportName::Plaintext => "Plaintext",
            TransportName::Ssl => "SSL",
            TransportName::Ws => "ws",
            TransportName::Wss => "wss",
        }
    }

    fn uses_tls(self) -> bool {
        matches!(self, TransportName::Ssl | TransportName::Wss)
    }
}

/// Transport options.
#[derive(Debug, Args)]
pub struct TransportArgs {
    /// How frames travel; nodes meet only on the same transport (it is part
    /// of the subnet id). ssl and wss without --cert run in compatibility
    /// mode, as py2p: traffic is encrypted against eavesdroppers, but no
    /// peer is authenticated, so anyone can join and an active
    /// man-in-the-middle goes unnoticed.
    #[arg(long, value_enum, value_name = "NAME", default_value = "plaintext")]
    pub transport: TransportName,

    /// Verified TLS (ssl, wss): this node's certificate chain, PEM. Peers
    /// must present a certificate too, and are refused unless it chains to
    /// a --trust root or is a --pin certificate. Verified nodes cannot talk
    /// to py2p or js2p.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Verified TLS: the private key of --cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Verified TLS: trusted root certificates, PEM; repeatable. Peer
    /// certificates must chain to one (names and addresses are not checked).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub trust: Vec<PathBuf>,

    /// Verified TLS: pinned peer certificates, PEM; repeatable. A peer
    /// presenting exactly one of them is accepted.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub pin: Vec<PathBuf>,
}

impl TransportArgs {
    /// The TLS settings these options ask for.
    ///
    /// # Errors
    /// A sentence for the user: verified options on a transport without
    /// TLS, nothing to trust, or unreadable files.
    pub fn tls_options(&self) -> Result<TlsOptions, String> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(TlsOptions::Compatibility);
        };
        if !self.transport.uses_tls() {
            return Err(format!(
                "--cert, --key, --trust and --pin need --transport ssl or wss, not {}",
                self.transport.encryption()
            ));
        }
        if self.trust.is_empty() && self.pin.is_empty() {
            return Err(
                "--cert needs --trust or --pin: verified TLS must know which peers to accept"
                    .into(),
            );
        }
        let mut tls = VerifiedTls::from_pem_files(cert, key).map_err(|e| e.to_string())?;
        for roots in &self.trust {
            tls = tls.trust_roots_pem_file(roots).map_err(|e| e.to_string())?;
        }
        for pins in &self.pin {
            tls = tls.pin_pem_file(pins).map_err(|e| e.to_string())?;
        }
        Ok(TlsOptions::Verified(tls))
    }
}
