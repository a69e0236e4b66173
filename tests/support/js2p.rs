//! js2p specifics: where the real js2p 0.7.870 lives (`RS2P_JS2P_DIR`, the
//! folder `tests/js2p` after `npm ci`, which `scripts/test.sh` exports),
//! the Node.js binary, and the start function of a js2p node in its own
//! process (`tests/js2p/peer.js`, driven as a [`NodeProcess`]).
//!
//! A test that needs js2p fails, not skips, when either is missing: the
//! interop claims in README.md rest on these tests having run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::process::{Kind, NodeProcess};
use super::py2p::free_port;
use super::wait::WAIT;

/// The folder holding `peer.js` and `node_modules/js2p` (`RS2P_JS2P_DIR`).
/// Panics with what to do when it is unset or incomplete.
pub fn js2p_dir() -> PathBuf {
    let Ok(dir) = std::env::var("RS2P_JS2P_DIR") else {
        panic!(
            "RS2P_JS2P_DIR is not set: the js2p interop tests need the real js2p 0.7.870. \
             Run `(cd tests/js2p && npm ci)` and set RS2P_JS2P_DIR=$PWD/tests/js2p \
             (scripts/test.sh does both)"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("peer.js").is_file(),
        "RS2P_JS2P_DIR={} has no peer.js (it should be the checkout's tests/js2p)",
        dir.display()
    );
    assert!(
        dir.join("node_modules/js2p/package.json").is_file(),
        "RS2P_JS2P_DIR={} has no node_modules/js2p: run `npm ci` there",
        dir.display()
    );
    dir
}

/// The Node.js binary (`RS2P_NODE`, or `node` on the path). Checked once
/// per test binary: panics with a clear message when it does not run.
pub fn node_binary() -> String {
    static CHECKED: OnceLock<String> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let node = std::env::var("RS2P_NODE").unwrap_or_else(|_| "node".into());
            let mut child = Command::new(&node)
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run `{node} --version` ({e}): the js2p interop tests need \
                         Node.js (set RS2P_NODE or put node on the PATH; scripts/test.sh \
                         installs it)"
                    )
                });
            let deadline = Instant::now() + WAIT;
            let status = loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("`{node} --version` did not finish within {WAIT:?}");
                }
                thread::sleep(Duration::from_millis(10));
            };
            assert!(status.success(), "`{node} --version` failed: {status}");
            node
        })
        .clone()
}

/// A compression list for `peer.js`: `"all"` or a comma list of methods.
fn compression_arg(compression: Option<&[u8]>) -> String {
    match compression {
        None => "all".into(),
        Some([]) => "none".into(),
        Some(methods) => methods
            .iter()
            .map(|m| format!("0x{m:02x}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

impl NodeProcess {
    /// Starts a js2p mesh node on 127.0.0.1 (a free port), on `subnet`
    /// over `transport` (`"Plaintext"`, `"SSL"`, `"ws"` or `"wss"`);
    /// `compression` restricts js2p's methods (e.g. `Some(&[0x13])`; js2p
    /// here offers zlib and gzip). Waits for its `ready` event.
    pub fn js2p(
        name: &str,
        subnet: &str,
        transport: &str,
        compression: Option<&[u8]>,
    ) -> NodeProcess {
        let dir = js2p_dir();
        let port = free_port();
        let mut cmd = Command::new(node_binary());
        cmd.current_dir(&dir)
            .arg(dir.join("peer.js"))
            .arg(port.to_string())
            .arg(subnet)
            .arg(compression_arg(compression))
            .arg(format!("--encryption={transport}"));
        let node = NodeProcess::start(name, Kind::Js2p, cmd);
        assert_eq!(node.port, port, "{name}: listens on another port");
        node
    }

    /// Starts a js2p sync node (`js2p.sync.SyncSocket`, the replicated
    /// dictionary) on 127.0.0.1 (a free port), Plaintext, on `subnet`
    /// (js2p appends `"1"` or `"0"`). `leasing`: `Some(on)` passes js2p's
    /// `leasing` argument, `None` leaves it undefined as a user who does
    /// not pass it (js2p then joins `subnet1` but its lease rule acts as if
    /// leasing were off). Its `error` events of refused ops are answers
    /// (a lease, js2p's `del` that always throws), not failures. Waits for
    /// its `ready` event. Ops and events: `tests/js2p/peer.js`.
    pub fn js2p_sync(name: &str, subnet: &str, leasing: Option<bool>) -> NodeProcess {
        let dir = js2p_dir();
        let port = free_port();
        let mut cmd = Command::new(node_binary());
        cmd.current_dir(&dir)
            .arg(dir.join("peer.js"))
            .arg(port.to_string())
            .arg(subnet)
            .arg("--module=sync")
            .arg(match leasing {
                None => "--leasing=default",
                Some(true) => "--leasing=on",
                Some(false) => "--leasing=off",
            });
        let mut node = NodeProcess::start(name, Kind::Js2p, cmd);
        node.fail_on_error = false;
        assert_eq!(node.port, port, "{name}: listens on another port");
        node
    }

    /// Connects to `port` on loopback, past js2p's own refusal to dial a
    /// node that shares the host or the port of a current peer (on
    /// loopback: every dial after its first). Other kinds just connect.
    pub fn connect_force(&mut self, port: u16) {
        if self.kind() == Kind::Js2p {
            self.op(json!({"op": "connect", "host": "127.0.0.1", "port": port, "force": true}));
        } else {
            self.connect(port);
        }
    }

    /// js2p's routing table as its driver prints it: one entry per key,
    /// `{"id","type":"str"|"bin","addr","outgoing"}` (a js2p node can hold
    /// two entries for one peer when ids arrive as bin).
    pub fn js2p_table(&mut self) -> Vec<Value> {
        assert_eq!(self.kind(), Kind::Js2p, "{}: not a js2p node", self.name);
        self.ask_peers();
        let v = self.wait_for("peers event", |v| v["event"] == "peers");
        v["table"].as_array().cloned().unwrap_or_default()
    }

    /// The error events js2p reported so far (exceptions it swallowed
    /// before dropping a connection, and uncaught ones).
    pub fn js2p_errors(&mut self) -> Vec<Value> {
        self.pump();
        self.errors().into_iter().cloned().collect()
    }
}
