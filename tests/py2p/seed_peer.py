"""A real py2p 0.7.878 bootstrap seed, and py2p bootstrap clients, on
loopback only, driven over stdin/stdout (one JSON object a line).

Usage: seed_peer.py PORT [--seed HOST:PORT ...] [--encryption Plaintext|SSL]
                    [--compression all|none|0x13,...]
       seed_peer.py --client [--encryption ...] [--compression ...]   (no seed, clients only)

The seed is started the way `python -m py2p seed` starts one
(py2p.bootstrap(ChordSocket, Protocol("bootstrap", ENC), addr, PORT), then
join()), with one difference: py2p reads its list of seeds from the file
py2p/seeders.msgpack inside the installed package (three public hosts) and
writes back to it. Here py2p._datafile, the module variable that names that
file, points at a private temporary file that lists only loopback seeds:
the --seed ones for the seed itself, the seed given in "register" for a
client. `python -m py2p seed` itself has no option for this and must not be
run here (it would dial the public hosts). Any non-loopback dial is refused
anyway (peer_util.loopback_only).

Known py2p trouble (not the harness's): when a py2p client dials nodes that
then also dial it back because of their peer lists, py2p's duplicate-
connection handling (mesh.py __handle_handshake installs the new connection
even when it has just closed it) can leave py2p nodes with no link at all;
so with several py2p clients on one subnet, check client_peers rather than
assume a full mesh.

Commands (stdin), each may carry a "tag" that is echoed in its answers:
  {"op":"register","subnet":S,"kind":"mesh"|"sync"|"chord","port":P,
   "seed_host":"127.0.0.1","seed_port":SP}
      Runs py2p.bootstrap(kind's socket class, Protocol(S, ENC), "127.0.0.1", P)
      as an application would: it creates the node (kind "sync" appends py2p's
      leasing digit, so S="x" registers under "x1"), opens a helper ChordSocket
      on a random port on subnet "bootstrap", dials the seed (default: our own
      seed), stores {node id: [host, port]} under the node's protocol id with
      apply_delta, and dials up to 5 of the nodes listed there.
      P defaults to a free port. -> client at once, bootstrapped when done
      (py2p needs ~10 s when the subnet has no entry yet: its get times out first).
  {"op":"client_peers","n":N}     -> client_peers
  {"op":"fetch","subnet":S,"timeout":T,"seed_host":H,"seed_port":SP}
  {"op":"fetch","protocol_id":PID,...}
      The seed directory entry of a subnet (the key is Protocol(S, ENC).id,
      or PID as given), read with py2p's chord get: through our own seed, or,
      with seed_port, through a temporary leeching ChordSocket connected to
      that seed. -> directory, or error "timeout" (no entry)
  {"op":"connect","host":H,"port":P}   our seed dials another seed
  {"op":"peers"}                       -> peers (our seed's connections)
  {"op":"quit"}
Events (stdout):
  {"event":"ready","seed":true|false,"id":ID,"port":P,"protocol_id":PID,...}
  {"event":"client","n":N,"id":ID,"port":P,"subnet":S,"protocol_id":PID}
  {"event":"bootstrapped","n":N,"peers":[ID,...]}   the node's connections once the
      nodes it dialled have answered (up to 2 s after bootstrap() finished)
  {"event":"client_peers","n":N,"peers":[ID,...],"exceptions":[TRACE,...]}
      (exceptions: py2p's own record of connections it dropped, node.status)
  {"event":"directory","protocol_id":PID,"entries":[{"id":ID,"id_type":"bin"|"str","addr":[H,P]},...]}
  {"event":"peers","peers":[{"id":ID,"leeching":B,"outgoing":B},...]}
  {"event":"error","op":OP,"error":TEXT,...}
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time


def load_util():
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.util.spec_from_file_location("peer_util", os.path.join(here, "peer_util.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


util = load_util()

import umsgpack  # noqa: E402
import py2p  # noqa: E402
from py2p import base, chord, mesh, sync  # noqa: E402

TMP = tempfile.mkdtemp(prefix="seed_peer-")
_db_count = [0]


def use_seed_database(seeds):
    """Point py2p's seed database at a new private file listing only `seeds`
    ([(host, port), ...]); bootstrap() reads it when called and rewrites it
    once connected."""
    for host, _ in seeds:
        if not util._is_loopback(host):
            raise ValueError("only loopback seeds: %r" % (host,))
    _db_count[0] += 1
    path = os.path.join(TMP, "seeders-%d.msgpack" % _db_count[0])
    entries = {"local-%d" % i: [h, p] for i, (h, p) in enumerate(seeds)}
    with open(path, "wb") as f:
        umsgpack.pack({"Plaintext": dict(entries), "SSL": dict(entries)}, f)
    py2p._datafile = path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def directory_event(pid, value):
    entries = []
    for node_id, addr in (value or {}).items():
        entries.append({"id": util.ident(node_id), "id_type": util.wire_type(node_id),
                        "addr": util.to_json(addr)})
    return {"event": "directory", "protocol_id": util.ident(pid), "entries": entries}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int, nargs="?")
    ap.add_argument("--client", action="store_true")
    ap.add_argument("--seed", action="append", default=[])
    ap.add_argument("--encryption", default="Plaintext")
    ap.add_argument("--compression", default="all")
    a = ap.parse_args()
    if a.port is None and not a.client:
        ap.error("give a PORT for the seed, or --client")

    compression = util.set_compression(a.compression)
    util.loopback_only()
    util.serialize_with_network_thread()
    enc = a.encryption
    seed_proto = base.Protocol("bootstrap", enc)

    seed = None
    if not a.client:
        others = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in a.seed)]
        use_seed_database(others)
        with util.LOCK:
            seed = py2p.bootstrap(chord.ChordSocket, seed_proto, "127.0.0.1", a.port)
            seed.join()
    util.emit({"event": "ready", "seed": seed is not None,
               "id": util.ident(seed.id) if seed else None, "port": a.port,
               "protocol_id": util.ident(seed_proto.id), "encryption": enc,
               "compression": compression})

    clients = []
    kinds = {"mesh": mesh.MeshSocket, "sync": sync.SyncSocket, "chord": chord.ChordSocket}

    def op_register(cmd):
        n = len(clients)
        kind = kinds[cmd.get("kind", "mesh")]
        port = cmd.get("port") or free_port()
        seed_addr = (cmd.get("seed_host", "127.0.0.1"), cmd.get("seed_port", a.port))
        if seed_addr[1] is None:
            raise ValueError("no seed: give seed_port")
        holder = {}

        class Helper(chord.ChordSocket):
            """py2p's bootstrap helper, unchanged but for telling us when
            bootstrap() closes it, i.e. when its request is done."""
            def close(self):
                super(Helper, self).close()
                if holder.get("done"):
                    return
                holder["done"] = True
                node = holder.get("node")
                # bootstrap() closes the helper right after dialling the
                # listed nodes; give those handshakes a moment to finish
                deadline = time.time() + 2
                while node is not None and node.awaiting_ids and time.time() < deadline:
                    time.sleep(0.05)
                peers = sorted(util.ident(k) for k in node.routing_table) if node else []
                util.answer(cmd, {"event": "bootstrapped", "n": n, "peers": peers})

        use_seed_database([seed_addr])
        saved = py2p.DHTSocket
        py2p.DHTSocket = Helper
        try:
            node = py2p.bootstrap(kind, base.Protocol(cmd["subnet"], enc), "127.0.0.1", port)
        finally:
            py2p.DHTSocket = saved
        holder["node"] = node
        clients.append(node)
        util.answer(cmd, {"event": "client", "n": n, "id": util.ident(node.id), "port": port,
                          "subnet": node.protocol.subnet, "protocol_id": util.ident(node.protocol.id)})

    def op_client_peers(cmd):
        node = clients[cmd["n"]]
        status = node.status
        util.answer(cmd, {"event": "client_peers", "n": cmd["n"],
                          "peers": sorted(util.ident(k) for k in node.routing_table),
                          "exceptions": [] if status == "Nominal" else list(status)})

    def op_fetch(cmd):
        if "protocol_id" in cmd:
            pid = cmd["protocol_id"].encode()
        else:
            pid = base.Protocol(cmd["subnet"], enc).id
        timeout = cmd.get("timeout", 10)
        seed_port = cmd.get("seed_port")

        def run():
            if seed_port is None or (seed is not None and seed_port == a.port):
                if seed is None:
                    raise ValueError("no seed here: give seed_port")
                node, temp = seed, None
            else:
                host = cmd.get("seed_host", "127.0.0.1")
                if not util._is_loopback(host):
                    raise ValueError("only loopback seeds")
                with util.LOCK:
                    temp = chord.ChordSocket("127.0.0.1", free_port(), prot=seed_proto)
                    temp.connect(host, seed_port)
                deadline = time.time() + 5
                while time.time() < deadline and not list(temp.data_storing):
                    time.sleep(0.05)
                node = temp
            try:
                value = node._ChordSocket__getitem(pid, timeout=timeout)
            except TimeoutError:
                util.answer(cmd, {"event": "error", "op": "fetch", "protocol_id": util.ident(pid),
                                  "error": "timeout"})
                return
            finally:
                if temp is not None:
                    temp.close()  # not under LOCK: close() waits for py2p's thread, which takes LOCK
            util.answer(cmd, directory_event(pid, value))
        util.in_worker(cmd, run)

    def op_connect(cmd):
        if seed is None:
            raise ValueError("no seed here")
        seed.connect(cmd["host"], cmd["port"])

    def op_peers(cmd):
        peers = [{"id": util.ident(i), "leeching": c.leeching, "outgoing": c.outgoing}
                 for i, c in (seed.routing_table.items() if seed else [])]
        util.answer(cmd, {"event": "peers", "peers": sorted(peers, key=lambda p: p["id"])})

    util.run_ops({"register": op_register, "client_peers": op_client_peers, "fetch": op_fetch,
                  "connect": op_connect, "peers": op_peers})
    for node in clients + ([seed] if seed else []):
        try:
            node.close()
        except Exception:
            pass


if __name__ == "__main__":
    main()
