//! Error messages a person can act on: what failed, in words, and what to
//! try next. Shared by every subcommand.

use std::io::ErrorKind;

use rs2p::{Error, Protocol};

/// A `--FLAG VALUE` that is not `HOST:PORT`.
pub fn bad_address(flag: &str, value: &str) -> String {
    format!(
        "--{flag} {value:?} is not an address of the form HOST:PORT \
         (for example 127.0.0.1:4444, or [::1]:4444 for IPv6)"
    )
}

/// Why listening on `addr` failed.
pub fn bind_error(flag: &str, addr: &str, e: &Error) -> String {
    let Error::Io { source, .. } = e else {
        return match e {
            Error::BadAddress(_) => bad_address(flag, addr),
            // Certificates and keys: their own words, not the address's.
            Error::Transport(t) => t.to_string(),
            other => format!("cannot listen on {addr}: {other}"),
        };
    };
    let why = match source.kind() {
        ErrorKind::AddrInUse => "address already in use (is another node running there? \
             pick another --bind port, or port 0 for any free one)"
            .to_owned(),
        ErrorKind::AddrNotAvailable => "that address does not belong to this machine \
             (use 127.0.0.1, 0.0.0.0 or one of this host's addresses)"
            .to_owned(),
        ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges; \
             pick a port above 1024, or port 0 for any free one)"
            .to_owned(),
        _ if is_lookup_failure(source) => {
            "unknown host (use an IP address such as 127.0.0.1 or 0.0.0.0)".to_owned()
        }
        _ => source.to_string(),
    };
    format!("cannot listen on {addr}: {why}")
}

/// Why joining the node at `addr` failed; `ours` is this node's subnet.
pub fn connect_error(addr: &str, e: &Error, ours: &Protocol) -> String {
    let why = match e {
        Error::BadAddress(_) => return bad_address("connect", addr),
        Error::Io { source, .. } => match source.kind() {
            ErrorKind::ConnectionRefused => {
                "connection refused (is a node running there? check the host and port)".to_owned()
            }
            ErrorKind::TimedOut => {
                "no answer (is the host reachable? a firewall may drop the connection)".to_owned()
            }
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                "host unreachable (check the address and this machine's network)".to_owned()
            }
            _ if is_lookup_failure(source) => {
                "unknown host (check the spelling, or use an IP address)".to_owned()
            }
            _ => source.to_string(),
        },
        Error::Timeout(t) => format!(
            "no handshake within {} s (is it a p2p-today 0.7 mesh node, rs2p or py2p? \
             is the host reachable?)",
            t.as_secs_f64()
        ),
        Error::SubnetMismatch { theirs, .. } => match known_subnet(theirs, ours.encryption()) {
            Some((name, whose)) => format!(
                "it is on another subnet: this node's subnet {:?} has id {}, the peer's id is \
                 {theirs}, which is subnet {name:?} ({whose}); start this node with --subnet {}",
                ours.subnet(),
                ours.id(),
                shell_quote(name)
            ),
            None => format!(
                "it is on another subnet: this node's subnet {:?} has id {}, the peer's id is \
                 {theirs} (start this node with the mesh's --subnet)",
                ours.subnet(),
                ours.id()
            ),
        },
        Error::Closed(reason) => format!(
            "{reason} (if it is on another subnet, it drops us: this node's subnet is {:?}, id {})",
            ours.subnet(),
            ours.id()
        ),
        Error::SelfConnection => "that is this node itself".to_owned(),
        Error::AlreadyConnected(_) => "already connected to it".to_owned(),
        other => other.to_string(),
    };
    format!("cannot join {addr}: {why}")
}

/// Why a sync node could not join `addr`, as [`connect_error`] says it,
/// except that a peer on another network is named by the options that
/// reach it: a sync network is `subnet` plus "1" (leasing) or "0".
pub fn sync_connect_error(
    addr: &str,
    e: &Error,
    ours: &Protocol,
    subnet: &str,
    leasing: bool,
) -> String {
    let Error::SubnetMismatch { theirs, .. } = e else {
        return connect_error(addr, e, ours);
    };
    let encryption = ours.encryption();
    let network = |name: &str, leasing: bool| {
        let suffix = if leasing { "1" } else { "0" };
        Protocol::new(format!("{name}{suffix}"), encryption)
    };
    let why = match [subnet, "sync"]
        .into_iter()
        .flat_map(|name| [(name, true), (name, false)])
        .find(|(name, l)| network(name, *l).id() == theirs)
    {
        Some((name, theirs_leasing)) if name == subnet => format!(
            "it is on the same subnet with leasing {} (network {:?}), this node has it {} \
             (network {:?}): every node must agree; start this node {} --no-leasing",
            on_off(theirs_leasing),
            network(name, theirs_leasing).subnet(),
            on_off(leasing),
            ours.subnet(),
            if theirs_leasing { "without" } else { "with" }
        ),
        Some((name, theirs_leasing)) => format!(
            "it is on sync network {:?} (subnet {name:?}, leasing {}), this node on {:?}; \
             start this node with --subnet {}{}",
            network(name, theirs_leasing).subnet(),
            on_off(theirs_leasing),
            ours.subnet(),
            shell_quote(name),
            if theirs_leasing { "" } else { " --no-leasing" }
        ),
        None => match known_subnet(theirs, encryption) {
            Some((name, whose)) => format!(
                "it is on subnet {name:?} ({whose}), this node on sync network {:?} \
                 (subnet {subnet:?} plus \"1\" for leasing on, \"0\" for off); \
                 rs2p node --subnet {} would join it",
                ours.subnet(),
                shell_quote(name)
            ),
            None => format!(
                "it is on another network: this node's is {:?} (subnet {subnet:?}, leasing {}) \
                 with id {}, the peer's id is {theirs} (start this node with the network's \
                 --subnet, and --no-leasing if it has leasing off)",
                ours.subnet(),
                on_off(leasing),
                ours.id()
            ),
        },
    };
    format!("cannot join {addr}: {why}")
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The name of a well-known subnet with this id on this transport, and
/// whose default it is.
fn known_subnet(id: &str, encryption: &str) -> Option<(&'static str, &'static str)> {
    [
        ("mesh", "the default of rs2p and of py2p's MeshSocket"),
        (
            "sync1",
            "the default network of py2p's and rs2p's SyncSocket",
        ),
        (
            "sync0",
            "the network of py2p's and rs2p's SyncSocket with leasing off",
        ),
        ("", "the subnet of py2p's base Protocol default"),
        ("rs2p-demo", "the subnet of rs2p demo"),
    ]
    .into_iter()
    .find(|(name, _)| Protocol::new(*name, encryption).id() == id)
}

fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Name resolution failures carry no distinct `ErrorKind` everywhere.
fn is_lookup_failure(e: &std::io::Error) -> bool {
    let text = e.to_string();
    text.contains("lookup") || text.contains("Name or service not known")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: ErrorKind) -> Error {
        Error::Io {
            context: "ctx".into(),
            source: std::io::Error::from(kind),
        }
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let text = bind_error("bind", "127.0.0.1:4444", &io(ErrorKind::AddrInUse));
        assert_eq!(
            text,
            "cannot listen on 127.0.0.1:4444: address already in use (is another node \
             running there? pick another --bind port, or port 0 for any free one)"
        );
        let text = bind_error("bind", "x", &Error::BadAddress("x".into()));
        assert!(text.starts_with("--bind \"x\" is not an address"), "{text}");
    }

    #[test]
    fn sync_connect_errors_name_the_options() {
        let mismatch = |theirs: &str| Error::SubnetMismatch {
            ours: "x".into(),
            theirs: Protocol::new(theirs, "Plaintext").id().into(),
        };
        let ours = Protocol::new("inv1", "Plaintext");
        let text = sync_connect_error("h:1", &mismatch("inv0"), &ours, "inv", true);
        assert!(
            text.contains("same subnet with leasing off")
                && text.ends_with("start this node with --no-leasing"),
            "{text}"
        );
        let text = sync_connect_error("h:1", &mismatch("sync0"), &ours, "inv", true);
        assert!(
            text.ends_with("start this node with --subnet sync --no-leasing"),
            "{text}"
        );
        let text = sync_connect_error("h:1", &mismatch("mesh"), &ours, "inv", true);
        assert!(
            text.contains("on subnet \"mesh\"")
                && text.ends_with("rs2p node --subnet mesh would join it"),
            "{text}"
        );
        let text = sync_connect_error("h:1", &mismatch("other"), &ours, "inv", true);
        assert!(text.contains("another network"), "{text}");
        let refused = io(ErrorKind::ConnectionRefused);
        assert_eq!(
            sync_connect_error("h:1", &refused, &ours, "inv", true),
            connect_error("h:1", &refused, &ours)
        );
    }

    #[test]
    fn connect_errors_say_what_to_do() {
        let ours = Protocol::new("chat", "Plaintext");
        let text = connect_error("h:1", &io(ErrorKind::ConnectionRefused), &ours);
        assert!(text.starts_with("cannot join h:1: connection refused (is a node"));
        let text = connect_error(
            "h:1",
            &Error::SubnetMismatch {
                ours: ours.id().into(),
                theirs: "THEIRS".into(),
            },
            &ours,
        );
        assert!(text.contains("subnet \"chat\" has id"), "{text}");
        assert!(text.contains(ours.id()), "{text}");
        assert!(text.contains("the peer's id is THEIRS ("), "{text}");
        let py2p = Protocol::new("sync1", "Plaintext");
        let text = connect_error(
            "h:1",
            &Error::SubnetMismatch {
                ours: ours.id().into(),
                theirs: py2p.id().into(),
            },
            &ours,
        );
        assert!(
            text.ends_with(
                "which is subnet \"sync1\" (the default network of py2p's and rs2p's \
                 SyncSocket); start this node with --subnet sync1"
            ),
            "{text}"
        );
    }
}
