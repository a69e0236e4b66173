//! Records the versions of the libp2p crates this binary was built with
//! (from Cargo.lock), so every report names them.
fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            let wanted = [
                "libp2p",
                "libp2p-swarm",
                "libp2p-gossipsub",
                "libp2p-floodsub",
                "libp2p-tcp",
                "libp2p-noise",
                "libp2p-yamux",
                "yamux",
            ];
            if wanted.contains(&n.as_str()) {
                versions.push(format!("{n} {}", v.trim_matches('"')));
            }
        }
    }
    println!(
        "cargo:rustc-env=ANCHORS_LIBP2P_VERSIONS={}",
        versions.join(", ")
    );
}
