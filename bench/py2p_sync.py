#!/usr/bin/env python3
"""One real py2p 0.7.878 SyncSocket node for rs2p's sync benchmarks
(`rs2p bench --sync --py2p`), driven over stdin/stdout, one JSON object per
line, by the coordinator in src/cli/bench/sync.rs.

    python py2p_sync.py PORT [--patch-framing]

stdin ops                                        stdout events
  {"op":"connect","port":P}                        {"event":"ready","port":P,"id":ID}
  {"op":"peers"}                                   {"event":"connected","port":P,"start_ns":T}
  {"op":"expect","count":N,"prefix":S,"step":K}    {"event":"peers","count":C}
  {"op":"fill","count":N,"prefix":S,"len":L}       {"event":"filled","count":N}
  {"op":"send","count":N,"prefix":S,"len":L}       {"event":"sent","count":N,"first_ns":T,"last_ns":T}
  {"op":"credit","upto":K}                         {"event":"progress","got":G}
  {"op":"report"}                                  {"event":"done","got":G,"last_ns":T}
  {"op":"quit"}

--patch-framing works around py2p's two framing bugs, which break bursts
such as the catch-up of a few hundred keys or more (PROTOCOL.md section 12):
its send path ignores partial writes (here every socket send becomes
sendall), and its frame splitter takes a lone 4-byte length prefix left at
the end of a read for a whole frame (here, after each frame, such a prefix
starts the next frame as it should). Nothing else changes.

Keys are PREFIX + a six-digit index (py2p turns str keys into bytes, so
they go out as msgpack bin, as rs2p's do); values are L bytes (bin).
"expect" counts the distinct keys with PREFIX that py2p's own 'update'
event reports; at N it prints "done" with the time the last one arrived.
"fill" sets keys at once, before any peer is there (setting up a catch-up);
"send" sets them as the credit allows: the coordinator keeps the number in
flight bounded, because py2p loses messages when bursts fill its socket
buffers (it ignores partial writes). "connected" carries the time just
before py2p's connect call, the start of a catch-up.
"""
import json
import os
import queue
import socket
import struct
import sys
import threading
import time

# The folder of this script is not a package; keep it off the import path.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from py2p import base, mesh, messages, sync  # noqa: E402

OUT = threading.Lock()


def emit(obj):
    line = json.dumps(obj) + "\n"
    with OUT:
        sys.stdout.write(line)
        sys.stdout.flush()


class Expect:
    """Counts the distinct keys with a prefix as py2p reports them."""

    def __init__(self, count, prefix, step):
        self.count = count
        self.prefix = prefix.encode()
        self.step = max(1, step)
        self.seen = set()
        self.last_ns = 0
        self.done = False
        self.lock = threading.Lock()

    def update(self, key):
        if not isinstance(key, (bytes, bytearray)) or not key.startswith(self.prefix):
            return
        now = time.time_ns()
        with self.lock:
            if self.done or key in self.seen:
                return
            self.seen.add(bytes(key))
            self.last_ns = now
            got = len(self.seen)
            if got == self.count:
                self.report()
            elif got % self.step == 0:
                emit({"event": "progress", "got": got})

    def report(self):
        self.done = True
        emit({"event": "done", "got": len(self.seen), "last_ns": self.last_ns})


def patch_framing():
    """The two work-arounds described above, applied to py2p's classes."""
    socket.socket.send = socket.socket.sendall
    original = base.BaseConnection.found_terminator

    def found_terminator(conn):
        msg = original(conn)
        if len(conn.buffer) == 4:
            conn.active = True
            conn.expected = struct.unpack(">L", bytes(conn.buffer))[0] + 4
        return msg

    base.BaseConnection.found_terminator = found_terminator


def key(prefix, i):
    return "%s%06d" % (prefix, i)


def main():
    port = int(sys.argv[1])
    if "--patch-framing" in sys.argv[2:]:
        patch_framing()
    messages.compression[:] = []  # uncompressed, as rs2p's benchmark nodes
    mesh.max_outgoing = 0  # a line stays a line: peer lists dial nobody
    sock = sync.SyncSocket("127.0.0.1", port, prot=base.Protocol("sync", "Plaintext"))
    expect = [None]

    def on_update(_sock, k, _value, _meta):
        e = expect[0]
        if e is not None:
            e.update(k)

    sock.on("update", on_update)
    ident = sock.id.decode() if isinstance(sock.id, bytes) else str(sock.id)
    emit({"event": "ready", "port": port, "id": ident})

    commands = queue.Queue()

    def read_stdin():
        for line in sys.stdin:
            commands.put(json.loads(line))
        commands.put({"op": "quit"})

    threading.Thread(target=read_stdin, daemon=True).start()
    credit = 0
    to_send = 0
    prefix = ""
    value = b""
    seq = 0
    first_ns = 0
    while True:
        # Set what the credit allows, then take the next command.
        while seq < to_send and seq < credit:
            if seq == 0:
                first_ns = time.time_ns()
            sock.set(key(prefix, seq), value)
            seq += 1
            if seq == to_send:
                emit({"event": "sent", "count": seq, "first_ns": first_ns,
                      "last_ns": time.time_ns()})
        try:
            cmd = commands.get(timeout=0.5)
        except queue.Empty:
            continue
        op = cmd.get("op")
        if op == "quit":
            break
        elif op == "connect":
            start_ns = time.time_ns()
            sock.connect("127.0.0.1", int(cmd["port"]))
            emit({"event": "connected", "port": cmd["port"], "start_ns": start_ns})
        elif op == "peers":
            emit({"event": "peers", "count": len(sock.routing_table)})
        elif op == "expect":
            expect[0] = Expect(int(cmd["count"]), cmd["prefix"], int(cmd.get("step", 100)))
        elif op == "fill":
            fill_value = b"\x5a" * int(cmd.get("len", 16))
            for i in range(int(cmd["count"])):
                sock.set(key(cmd["prefix"], i), fill_value)
            emit({"event": "filled", "count": int(cmd["count"])})
        elif op == "send":
            to_send = int(cmd["count"])
            prefix = cmd["prefix"]
            value = b"\x5a" * int(cmd.get("len", 16))
            seq = 0
        elif op == "credit":
            credit = max(credit, int(cmd["upto"]))
        elif op == "report":
            e = expect[0]
            if e is not None:
                with e.lock:
                    e.report()
    sock.close()


if __name__ == "__main__":
    main()
