//! `rs2p node --transport …` end to end: the binary over wss in
//! compatibility mode and over ssl in verified mode (certificate files made
//! here), and the option errors.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::certs::TestCa;
use support::chat::ChatProcess;
use support::process::{rs2p_run, NodeProcess};

/// A folder of PEM files for one test, removed afterwards.
struct PemDir(PathBuf);

impl PemDir {
    fn new(test: &str) -> PemDir {
        let dir = std::env::temp_dir().join(format!("rs2p-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        PemDir(dir)
    }

    fn write(&self, name: &str, pem: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path.to_string_lossy().into_owned()
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn wss_nodes_meet_and_broadcast() {
    let mut a = NodeProcess::rs2p("A", &["--transport", "wss"]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--transport", "wss", "--connect", &a_addr]);
    let a_id = a.id.clone();
    b.wait_for("connected to A", |v| {
        v["event"] == "connected" && v["id"] == a_id
    });
    assert_eq!(b.lines()[0].value["transport"], "wss");
    b.op(json!({"op": "broadcast", "packets": ["over wss"]}));
    let m = a.wait_for("B's broadcast", |v| v["event"] == "message");
    assert_eq!(m["packets"], json!(["over wss"]));
}

#[test]
fn one_shot_send_over_ssl() {
    let mut a = NodeProcess::rs2p("A", &["--transport", "ssl"]);
    let a_addr = a.addr.clone();
    let out = rs2p_run(&[
        "send",
        "--transport",
        "ssl",
        "--connect",
        &a_addr,
        "hello",
        "tls",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let m = a.wait_for("the one-shot broadcast", |v| v["event"] == "message");
    assert_eq!(m["packets"], json!(["hello", "tls"]));
}

#[test]
fn verified_ssl_admits_members_and_refuses_strangers() {
    let dir = PemDir::new("verified-ssl");
    let ca = TestCa::new("mesh CA");
    let other_ca = TestCa::new("stranger CA");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let mut files = Vec::new();
    for (name, cert) in [
        ("a", ca.issue("a")),
        ("b", ca.issue("b")),
        ("s", other_ca.issue("s")),
    ] {
        files.push((
            dir.write(&format!("{name}.pem"), &cert.cert_pem),
            dir.write(&format!("{name}.key"), &cert.key_pem),
        ));
    }
    let tls = |i: usize| -> Vec<String> {
        vec![
            "--transport".into(),
            "ssl".into(),
            "--cert".into(),
            files[i].0.clone(),
            "--key".into(),
            files[i].1.clone(),
            "--trust".into(),
            ca_file.clone(),
        ]
    };
    let a_tls = tls(0);
    let mut a = NodeProcess::rs2p("A", &refs(&a_tls));
    let a_addr = a.addr.clone();
    let a_id = a.id.clone();

    let mut b_tls = tls(1);
    b_tls.extend(["--connect".to_owned(), a_addr.clone()]);
    let mut b = NodeProcess::rs2p("B", &refs(&b_tls));
    b.wait_for("B joins A", |v| {
        v["event"] == "connected" && v["id"] == a_id
    });

    // The stranger's certificate is signed by another CA: A refuses it.
    let mut s_tls = tls(2);
    s_tls.extend(["--connect".to_owned(), a_addr.clone()]);
    let mut s = NodeProcess::rs2p("S", &refs(&s_tls));
    let error = s.wait_for("the refusal", |v| v["event"] == "error");
    assert!(
        error["error"].as_str().unwrap().contains(&a_addr),
        "{error}"
    );
    // It is told why: A does not trust its certificate.
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("refused this node's certificate"),
        "{error}"
    );

    b.op(json!({"op": "broadcast", "packets": ["members only"]}));
    let m = a.wait_for("B's broadcast", |v| v["event"] == "message");
    assert_eq!(m["packets"], json!(["members only"]));
    a.op(json!({"op": "peers"}));
    let peers = a.wait_for("A's peers", |v| v["event"] == "peers");
    assert_eq!(peers["peers"].as_array().map(Vec::len), Some(1), "{peers}");
    assert!(peers.to_string().contains(&b.id), "{peers}");
    // A reported the refusal as an event, and logged it.
    let rejected = a.wait_for("A's rejected event", |v| v["event"] == "rejected");
    let reason = rejected["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("refused the certificate of the peer at 127.0.0.1:"),
        "{rejected}"
    );
    assert!(
        rejected["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{rejected}"
    );
    let logs = a.stderr();
    assert!(
        logs.contains("refused the certificate of the peer"),
        "{logs}"
    );
    assert!(logs.contains("refused a connection"), "{logs}");

    // A chat node shows its refusals too.
    let mut c = ChatProcess::start("C", &refs(&tls(0)));
    let mut s_tls = tls(2);
    s_tls.extend(["--connect".to_owned(), c.addr.clone()]);
    let mut s2 = NodeProcess::rs2p("S2", &refs(&s_tls));
    s2.wait_for("the refusal", |v| v["event"] == "error");
    c.wait_stderr("the refusal", |l| {
        l.starts_with("-- refused 127.0.0.1:") && l.contains("refused the certificate")
    });
    assert!(dir.path().exists());
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn transport_option_errors() {
    let dir = PemDir::new("option-errors");
    let cert = support::certs::self_signed("n");
    let c = dir.write("n.pem", &cert.cert_pem);
    let k = dir.write("n.key", &cert.key_pem);
    let base = ["node", "--bind", "127.0.0.1:0", "--linger", "0"];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = rs2p_run(&args);
        (out.status, out.stderr)
    };

    let (status, err) = run(&["--transport", "carrier-pigeon"]);
    assert_eq!(status.code(), Some(2), "{err}");
    let (status, err) = run(&["--transport", "ssl", "--cert", &c]);
    assert_eq!(status.code(), Some(2), "--cert without --key: {err}");
    let (status, err) = run(&["--transport", "ssl", "--cert", &c, "--key", &k]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--trust or --pin"), "{err}");
    let (status, err) = run(&["--cert", &c, "--key", &k, "--pin", &c]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("need --transport ssl or wss"), "{err}");
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_string_lossy();
    let (status, err) = run(&[
        "--transport",
        "wss",
        "--cert",
        &missing,
        "--key",
        &k,
        "--pin",
        &c,
    ]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read certificate chain"), "{err}");
    // A key of another certificate is named as such.
    let other = support::certs::self_signed("other");
    let other_key = dir.write("other.key", &other.key_pem);
    let (status, err) = run(&[
        "--transport",
        "ssl",
        "--cert",
        &c,
        "--key",
        &other_key,
        "--pin",
        &c,
    ]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(!err.contains("cannot listen"), "{err}");
    // Well-formed verified options start a node that exits at end of input.
    let (status, err) = run(&["--transport", "ssl", "--cert", &c, "--key", &k, "--pin", &c]);
    assert!(status.success(), "{err}");
}
