//! py2p specifics: the Python interpreter with the real py2p 0.7.878
//! (`RS2P_PYTHON`), the scripts in `tests/py2p/`, and the start function
//! of a py2p node in its own process (`tests/py2p/mesh_peer.py`, driven as
//! a [`NodeProcess`]).

use std::path::PathBuf;
use std::process::Command;

use super::process::{Kind, NodeProcess};

/// The Python interpreter with py2p installed (`RS2P_PYTHON`, falling back
/// to `python3`).
pub fn python() -> String {
    std::env::var("RS2P_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A script in `tests/py2p/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py2p")
        .join(name)
}

/// A free loopback port (py2p needs a real port number up front).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl NodeProcess {
    /// Starts a py2p node on subnet `subnet` over Plaintext; `compression`
    /// restricts py2p's methods (e.g. `Some(&[0x13])`); `max_outgoing`
    /// overrides py2p's 4.
    pub fn py2p(
        name: &str,
        subnet: &str,
        compression: Option<&[u8]>,
        max_outgoing: Option<usize>,
    ) -> NodeProcess {
        Self::py2p_on(name, subnet, "Plaintext", compression, max_outgoing)
    }

    /// As [`py2p`](Self::py2p), on the transport `encryption`
    /// (`"Plaintext"` or `"SSL"`).
    pub fn py2p_on(
        name: &str,
        subnet: &str,
        encryption: &str,
        compression: Option<&[u8]>,
        max_outgoing: Option<usize>,
    ) -> NodeProcess {
        let port = free_port();
        let comp = compression.map_or("all".to_string(), |m| {
            m.iter()
                .map(|x| format!("0x{x:02x}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        let mut cmd = Command::new(python());
        cmd.arg(script("mesh_peer.py"))
            .arg(port.to_string())
            .arg(subnet)
            .arg(comp);
        if let Some(n) = max_outgoing {
            cmd.arg(n.to_string());
        }
        cmd.arg(format!("--encryption={encryption}"));
        let node = NodeProcess::start(name, Kind::Py2p, cmd);
        assert_eq!(node.port, port, "{name}: listens on another port");
        node
    }
}
