//! py2p specifics: the Python interpreter with the real py2p 0.7.878
//! (`RS2P_PYTHON`), the scripts in `tests/py2p/`, the start function of a
//! py2p node in its own process (`tests/py2p/mesh_peer.py`, driven as a
//! [`NodeProcess`]), and the mixed py2p/rs2p line the interop tests share.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rs2p::MeshSocket;

use super::mesh::{assert_no_more, rs_node, wait_peer};
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

impl NodeProcess {
    /// A real py2p `SyncSocket` (tests/py2p/sync_peer.py) on subnet
    /// `subnet` (py2p appends "1" or "0" for `leasing`), Plaintext. Its
    /// error events are answers (a write the lease refuses), not failures.
    pub fn py2p_sync(name: &str, subnet: &str, leasing: bool) -> NodeProcess {
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.arg(script("sync_peer.py"))
            .arg(port.to_string())
            .arg(subnet)
            .arg("--leasing")
            .arg(if leasing { "on" } else { "off" });
        let mut node = NodeProcess::start(name, Kind::Py2p, cmd);
        node.fail_on_error = false;
        assert_eq!(node.port, port, "{name}: listens on another port");
        node
    }
}

impl NodeProcess {
    /// A real py2p `ChordSocket` (tests/py2p/chord_peer.py) on subnet
    /// `chord`, Plaintext, storing from the start if `join`. Its error
    /// events are answers (a get that timed out), not failures.
    pub fn py2p_chord(name: &str, join: bool) -> NodeProcess {
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.arg(script("chord_peer.py")).arg(port.to_string());
        if join {
            cmd.arg("--join");
        }
        let mut node = NodeProcess::start(name, Kind::Py2p, cmd);
        node.fail_on_error = false;
        assert_eq!(node.port, port, "{name}: listens on another port");
        node
    }
}

/// The nodes of a mixed line P1 – R1 – P2 – R2 (py2p, rs2p, py2p, rs2p).
pub struct MixedLine {
    pub p1: NodeProcess,
    pub p2: NodeProcess,
    pub r1: MeshSocket,
    pub r2: MeshSocket,
}

/// Builds P1 – R1 – P2 – R2 on subnet `mesh` over `encryption`, every node
/// with `max_outgoing` 0 (peer lists add no links: the line stays a line).
/// Each kind of node dials once and is dialled once: R1 dials P1, P2 dials
/// R1, R2 dials P2. Returns once each rs2p dial reached the expected node
/// and R1 and R2 both list P2.
pub async fn mixed_line(encryption: &str) -> MixedLine {
    let p1 = NodeProcess::py2p_on("P1", "mesh", encryption, None, Some(0));
    let mut p2 = NodeProcess::py2p_on("P2", "mesh", encryption, None, Some(0));
    let r1 = rs_node("mesh", encryption, 0).await;
    let r2 = rs_node("mesh", encryption, 0).await;
    let got = r1.connect("127.0.0.1", p1.port, None).await.expect("R1→P1");
    assert_eq!(got.to_string(), p1.id);
    p2.connect(r1.addr().port());
    wait_peer(&r1, &p2.peer_id(), "P2 at R1").await;
    let got = r2.connect("127.0.0.1", p2.port, None).await.expect("R2→P2");
    assert_eq!(got.to_string(), p2.id);
    wait_peer(&r2, &p2.peer_id(), "P2 at R2").await;
    MixedLine { p1, p2, r1, r2 }
}

/// Asserts that no further message arrives at any of the rs2p nodes `rs`
/// or the process nodes `procs` within `window` each (a bounded check of
/// absence: late duplicates would show here).
pub async fn assert_no_more_anywhere(
    rs: &[&MeshSocket],
    procs: &mut [&mut NodeProcess],
    window: Duration,
) {
    for node in rs {
        assert_no_more(node, window, "duplicate at an rs2p node").await;
    }
    for node in procs {
        node.assert_no_more_messages(window);
    }
}
