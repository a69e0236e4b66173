"""A real py2p 0.7.878 mesh node driven over stdin/stdout, one JSON object a
line, for rs2p's interop tests.

Commands (stdin):  {"op":"connect","host":H,"port":P}
                   {"op":"send","packets":[...]}            broadcast
                   {"op":"whisper","to":ID,"packets":[...]}
                   {"op":"reply","to_msg":N,"packets":[...]}  reply to the N-th message received
                   {"op":"peers"}  {"op":"request_peers"}  {"op":"quit"}
Events (stdout):   {"event":"ready","id":ID,"port":P}
                   {"event":"message","n":N,"kind":"broadcast"|"whisper","sender":ID,"packets":[...]}
                   {"event":"peers","peers":[ID,...]}  {"event":"error","error":TEXT}
Packets in JSON: str <-> str, {"$bin": hex} <-> bytes, numbers, bool, null, lists, dicts.

Usage: mesh_peer.py PORT [SUBNET [COMPRESSION [MAX_OUTGOING]]] [--encryption=NAME]
(NAME: Plaintext, the default, or SSL, which needs the cryptography package).
"""
import json
import os
import queue
import sys
import threading
import time
import traceback

# The folder of this script is named py2p: keep it off the import path.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from py2p import base, flags, mesh, messages  # noqa: E402


def to_py(v):
    if isinstance(v, dict):
        if set(v) == {"$bin"}:
            return bytes.fromhex(v["$bin"])
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
        return {str(to_json(k)) if not isinstance(k, str) else k: to_json(x) for k, x in v.items()}
    return v


def ident(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serialize_ssl_use():
    """py2p's SSL transport shares one OpenSSL object between the caller's
    thread (send) and its daemon thread (read); OpenSSL objects are not
    thread-safe, and an overlapping send and read corrupt the TLS stream
    (bad record MAC, bad length), between two py2p nodes as well. Like any
    careful py2p user, this harness serializes the two with a lock. The
    bytes on the wire are py2p's own."""
    lock = threading.RLock()

    def locked(method):
        def call(*args, **kwargs):
            with lock:
                return method(*args, **kwargs)
        return call

    base.BaseConnection.send_InternalMessage = locked(base.BaseConnection.send_InternalMessage)
    base.BaseDaemon.process_data = locked(base.BaseDaemon.process_data)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    encryption = options.get("encryption", "Plaintext")
    port = int(args[0])
    subnet = args[1] if len(args) > 1 else "mesh"
    if len(args) > 2 and args[2] != "all":
        messages.compression[:] = [int(x, 0) for x in args[2].split(",")]
    if len(args) > 3:
        mesh.max_outgoing = int(args[3])
    if encryption == "SSL":
        serialize_ssl_use()
    sock = mesh.MeshSocket("127.0.0.1", port, prot=base.Protocol(subnet, encryption))
    emit({"event": "ready", "id": ident(sock.id), "port": port,
          "compression": list(messages.compression), "encryption": encryption})
    commands = queue.Queue()

    def read_stdin():
        for line in sys.stdin:
            commands.put(line)
        commands.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    received = []
    while True:
        while True:
            m = sock.recv()
            if m is None:
                break
            received.append(m)
            packets = list(m.packets)
            kind = "whisper" if packets[0] == flags.whisper else "broadcast"
            emit({"event": "message", "n": len(received) - 1, "kind": kind,
                  "sender": ident(m.sender), "packets": to_json(packets[1:])})
        try:
            line = commands.get(timeout=0.02)
        except queue.Empty:
            continue
        if line is None:
            break
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                break
            elif op == "connect":
                sock.connect(cmd["host"], cmd["port"])
            elif op == "send":
                sock.send(*to_py(cmd["packets"]))
            elif op == "whisper":
                target = cmd["to"].encode()
                conn = sock.routing_table.get(target) or sock.routing_table.get(cmd["to"])
                conn.send(flags.whisper, flags.whisper, *to_py(cmd["packets"]))
            elif op == "reply":
                received[cmd["to_msg"]].reply(*to_py(cmd["packets"]))
            elif op == "peers":
                emit({"event": "peers", "peers": sorted(ident(k) for k in sock.routing_table)})
            elif op == "request_peers":
                sock.request_peers()
            else:
                emit({"event": "error", "error": "unknown op " + op})
        except Exception:
            emit({"event": "error", "error": traceback.format_exc()})
    sock.close()


if __name__ == "__main__":
    main()
