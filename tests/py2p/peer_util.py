"""Shared plumbing for the py2p test peers (sync_peer.py, chord_peer.py,
seed_peer.py): JSON lines in and out, value conversion, a loopback-only
guard, and one lock that keeps the harness's own calls from racing py2p's
network thread.

Load it by path (the folder is called py2p and is kept off sys.path):

    util = load_util()   # see the copy of this function in each script

JSON <-> Python values:
    JSON string            <-> str
    {"$bin": HEX}          <-> bytes
    {"$map": [[K, V], ..]} <-> dict whose keys are not all str
    JSON object            <-> dict with str keys
    numbers, true/false, null, arrays as themselves (tuples become arrays).
"""
import ipaddress
import json
import os
import queue
import socket
import sys
import threading
import traceback

# py2p prints diagnostics with print() (some unconditionally, e.g. sync's
# "Applying a delta" and the "unhandled exception" notice). Keep the real
# stdout for our JSON lines only and send everything else to stderr.
OUT = sys.stdout
sys.stdout = sys.stderr

_out_lock = threading.Lock()


def emit(obj):
    line = json.dumps(obj)
    with _out_lock:
        OUT.write(line + "\n")
        OUT.flush()


def to_py(v):
    if isinstance(v, dict):
        if set(v) == {"$bin"}:
            return bytes.fromhex(v["$bin"])
        if set(v) == {"$map"}:
            return {to_py(k): to_py(x) for k, x in v["$map"]}
        return {k: to_py(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_py(x) for x in v]
    return v


def to_json(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$bin": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: to_json(x) for k, x in v.items()}
        return {"$map": [[to_json(k), to_json(x)] for k, x in v.items()]}
    return v


def ident(v):
    """A node id as text (py2p keeps ids as base58 bytes)."""
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode("ascii")
        except UnicodeDecodeError:
            return bytes(v).hex()
    return str(v)


def wire_type(v):
    return "bin" if isinstance(v, (bytes, bytearray)) else "str" if isinstance(v, str) else type(v).__name__


def api_key(k):
    """The one place where a JSON key becomes a py2p key.

    py2p's dictionary APIs (SyncSocket and ChordSocket set/get/del/
    apply_delta) pass every key through py2p.utils.sanitize_packet, which
    turns a str into its UTF-8 bytes; so whatever we hand over, py2p keys
    are bytes and travel as msgpack bin. We convert here, explicitly:
    a JSON string -> its UTF-8 bytes, {"$bin": hex} -> those bytes."""
    k = to_py(k)
    if isinstance(k, str):
        return k.encode("utf-8")
    if isinstance(k, bytes):
        return k
    raise TypeError("a key must be a JSON string or {\"$bin\": hex}, not %r" % (k,))


def _is_loopback(host):
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_only():
    """Make py2p unable to resolve or dial anything but loopback.

    py2p's MeshSocket.connect calls getaddrinfo on the target before it
    dials, and its bootstrap dials the hosts of its seed database (which
    ships with public hosts). Refuse every non-loopback name or address
    there, and in socket.create_connection for good measure."""
    from py2p import mesh
    real_gai = socket.getaddrinfo
    real_cc = socket.create_connection

    def gai(host, *args, **kwargs):
        h = host.decode() if isinstance(host, bytes) else host
        if not _is_loopback(h):
            raise OSError("test peer: refusing non-loopback host %r" % (host,))
        return real_gai(host, *args, **kwargs)

    def cc(address, *args, **kwargs):
        if not _is_loopback(address[0]):
            raise OSError("test peer: refusing non-loopback host %r" % (address[0],))
        return real_cc(address, *args, **kwargs)

    mesh.getaddrinfo = gai
    socket.create_connection = cc


LOCK = threading.RLock()


def serialize_with_network_thread():
    """py2p runs its network in a daemon thread and lets the caller's thread
    touch the same dicts and sockets (a set() in the caller while the daemon
    iterates the data for a catch-up raises "dictionary changed size"; TLS
    objects are not thread-safe). The harness runs each op under LOCK and
    makes py2p's daemon take LOCK for each unit of work, so the two never
    interleave. Nothing on the wire changes."""
    from py2p import base, mesh, chord

    def locked(method):
        def call(*args, **kwargs):
            with LOCK:
                return method(*args, **kwargs)
        call.__name__ = method.__name__
        return call

    base.BaseConnection.send_InternalMessage = locked(base.BaseConnection.send_InternalMessage)
    base.BaseDaemon.process_data = locked(base.BaseDaemon.process_data)
    base.BaseDaemon.kill_old_nodes = locked(base.BaseDaemon.kill_old_nodes)
    mesh.MeshDaemon.handle_accept = locked(mesh.MeshDaemon.handle_accept)
    chord.ChordDaemon.handle_accept = locked(chord.ChordDaemon.handle_accept)


def set_compression(spec):
    """spec: "all" (py2p's default list) or comma-separated flags, e.g. 0x13,0x11
    ("none" for no compression)."""
    from py2p import messages
    if spec and spec != "all":
        messages.compression[:] = [] if spec == "none" else [int(x, 0) for x in spec.split(",")]
    return list(messages.compression)


def stdin_lines():
    """A queue fed with stdin lines by a daemon thread; None marks EOF."""
    q = queue.Queue()

    def read():
        for line in sys.stdin:
            q.put(line)
        q.put(None)

    threading.Thread(target=read, daemon=True).start()
    return q


def run_ops(handlers, idle=None):
    """Read JSON commands until EOF or {"op":"quit"}; call handlers[op](cmd)
    under LOCK. A failing op becomes an error event (with the op and its
    "tag", if the command had one); nothing here ever kills the peer."""
    q = stdin_lines()
    while True:
        try:
            line = q.get(timeout=0.05)
        except queue.Empty:
            if idle:
                idle()
            continue
        if line is None:
            return
        if not line.strip():
            continue
        cmd = {}
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                return
            handler = handlers.get(op)
            if handler is None:
                raise ValueError("unknown op %r" % (op,))
            with LOCK:
                handler(cmd)
        except Exception as e:
            err = {"event": "error", "op": cmd.get("op") if isinstance(cmd, dict) else None,
                   "error": "%s: %s" % (type(e).__name__, e), "trace": traceback.format_exc()}
            if isinstance(cmd, dict) and "tag" in cmd:
                err["tag"] = cmd["tag"]
            emit(err)


def answer(cmd, obj):
    """Emit an answer event, echoing the command's "tag" if it had one."""
    if "tag" in cmd:
        obj["tag"] = cmd["tag"]
    emit(obj)


def in_worker(cmd, fn):
    """Run fn() in its own thread (for calls that wait on the network, which
    must not hold LOCK); its exceptions become error events."""
    def run():
        try:
            fn()
        except Exception as e:
            err = {"event": "error", "op": cmd.get("op"), "error": "%s: %s" % (type(e).__name__, e),
                   "trace": traceback.format_exc()}
            if "tag" in cmd:
                err["tag"] = cmd["tag"]
            emit(err)
    threading.Thread(target=run, daemon=True).start()


def strip_script_dir(path_of_script):
    here = os.path.dirname(os.path.abspath(path_of_script))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
