#!/usr/bin/env python3
"""One real py2p 0.7.878 mesh node for rs2p's benchmarks (`rs2p bench --py2p`),
driven over stdin/stdout, one JSON object per line. The same protocol is
spoken by rs2p's own benchmark node processes, so one Rust coordinator runs
both side by side.

    python py2p_line.py PORT [COMPRESSION]   COMPRESSION: "none" (default),
                                             "all", or e.g. "0x20,0x13"

stdin ops                                   stdout events
  {"op":"connect","port":P}                   {"event":"ready","port":P,"id":ID}
  {"op":"peers"}                              {"event":"connected","port":P}
  {"op":"expect","count":N,"step":S}          {"event":"peers","count":C}
  {"op":"send","count":N,"len":L}             {"event":"progress","got":G}
  {"op":"credit","upto":K}                    {"event":"done","got":G,"dups":D,
  {"op":"report"}                                "foreign":F,"last_ns":T,"hist":[[b,c],...]}
  {"op":"stats"}                              {"event":"sent","count":N}
  {"op":"quit"}                               {"event":"stats"[,"wire_bytes":B]}

A payload is seq (u64 BE) + send time (u64 BE, unix ns) + padding, sent as one
bytes packet (msgpack bin). The sender sends seq < credit only: the
coordinator keeps the number of broadcasts in flight bounded, because py2p
loses messages when bursts fill its socket buffers (it ignores partial writes).
Latencies go into the same histogram buckets as rs2p's (1 us below 10 ms,
100 us up to ~1 s, one overflow bucket).
"""
import json
import os
import queue
import struct
import sys
import threading
import time

# The folder of this script is not a package; keep it off the import path.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from py2p import base, flags, mesh, messages  # noqa: E402

FINE, COARSE = 10_000, 10_000
OUT = threading.Lock()


def emit(obj):
    line = json.dumps(obj) + "\n"
    with OUT:
        sys.stdout.write(line)
        sys.stdout.flush()


def bucket(us):
    return us if us < FINE else FINE + min((us - FINE) // 100, COARSE)


class Tracker:
    def __init__(self, expected, step):
        self.expected = expected
        self.step = max(1, step)
        self.seen = bytearray(expected)
        self.got = self.dups = self.foreign = 0
        self.last_ns = 0
        self.hist = {}
        self.done = False
        self.lock = threading.Lock()

    def record(self, payload):
        now = time.time_ns()
        if len(payload) < 16:
            self.foreign += 1
            return
        seq, sent = struct.unpack_from(">QQ", payload)
        with self.lock:
            if seq >= self.expected:
                self.foreign += 1
                return
            if self.seen[seq]:
                self.dups += 1
                return
            self.seen[seq] = 1
            self.got += 1
            self.last_ns = now
            b = bucket(max(0, now - sent) // 1000)
            self.hist[b] = self.hist.get(b, 0) + 1
            if self.got == self.expected:
                self.report()
            elif self.got % self.step == 0:
                emit({"event": "progress", "got": self.got})

    def report(self):
        if self.done:
            return
        self.done = True
        emit({"event": "done", "got": self.got, "dups": self.dups, "foreign": self.foreign,
              "last_ns": self.last_ns, "hist": sorted([b, c] for b, c in self.hist.items())})


def main():
    port = int(sys.argv[1])
    comp = sys.argv[2] if len(sys.argv) > 2 else "none"
    if comp == "none":
        messages.compression[:] = []
    elif comp != "all":
        messages.compression[:] = [int(x, 0) for x in comp.split(",")]
    mesh.max_outgoing = 0  # a line stays a line: peer lists dial nobody
    sock = mesh.MeshSocket("127.0.0.1", port, prot=base.Protocol("mesh", "Plaintext"))
    tracker = [None]

    def on_message(msg, conn):
        packets = msg.packets
        t = tracker[0]
        if t is None or packets[0] != flags.broadcast or len(packets) < 2:
            return None
        payload = packets[1]
        if isinstance(payload, (bytes, bytearray)):
            t.record(payload)
            return True
        return None

    sock.register_handler(on_message)
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
    length = 16
    seq = 0
    while True:
        # Send what the credit allows, then take the next command.
        while seq < to_send and seq < credit:
            payload = struct.pack(">QQ", seq, time.time_ns()) + b"\x5a" * (length - 16)
            sock.send(payload)
            seq += 1
            if seq == to_send:
                emit({"event": "sent", "count": seq})
        try:
            cmd = commands.get(timeout=0.5)
        except queue.Empty:
            continue
        op = cmd.get("op")
        if op == "quit":
            break
        elif op == "connect":
            sock.connect("127.0.0.1", int(cmd["port"]))
            emit({"event": "connected", "port": cmd["port"]})
        elif op == "peers":
            emit({"event": "peers", "count": len(sock.routing_table)})
        elif op == "stats":
            emit({"event": "stats"})  # py2p's bytes on the wire are not counted
        elif op == "expect":
            tracker[0] = Tracker(int(cmd["count"]), int(cmd.get("step", 100)))
        elif op == "send":
            to_send = int(cmd["count"])
            length = max(16, int(cmd.get("len", 16)))
        elif op == "credit":
            credit = max(credit, int(cmd["upto"]))
        elif op == "report":
            if tracker[0] is not None:
                with tracker[0].lock:
                    tracker[0].report()
    sock.close()


if __name__ == "__main__":
    main()
