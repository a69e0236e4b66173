#!/usr/bin/env python3
"""py2p 0.7.878 ChordSocket side of `rs2p bench --chord`: NODES real py2p
chord nodes in this one process (each with py2p's own threads), every pair
connected, all joined; then set and get latency (one at a time, round robin
over the nodes) and throughput (one thread per node, each doing its
operations one after another: py2p's get blocks its caller). Prints one JSON
line:

  {"set_p50_us":..,"set_p99_us":..,"set_ops":..,"get_p50_us":..,
   "get_p99_us":..,"get_ops":..,"get_failed":N}

    python py2p_chord.py [NODES] [OPS]      defaults 8 and 100

Loopback only: the nodes listen on 127.0.0.1 and dial each other.
"""
import json
import os
import socket
import sys
import threading
import time

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from py2p import base, chord, mesh, messages  # noqa: E402

# Uncompressed, as the other benchmarks (and py2p's compressed frames fail
# their checksums between py2p nodes of one process here).
messages.compression[:] = []

# Every pair is connected by hand: peer lists must not dial more (py2p's
# duplicate-connection handling then drops links), and chord must not cut
# outgoing links past four (its disconnect_least_efficient).
mesh.max_outgoing = 0
chord.max_outgoing = 1000
# py2p prints on stdout: keep it for our one JSON line.
OUT = sys.stdout
sys.stdout = sys.stderr


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(samples, q):
    samples = sorted(samples)
    if not samples:
        return 0
    return samples[min(len(samples) - 1, int(round((len(samples) - 1) * q)))]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    ops = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    prot = base.Protocol("chord", "Plaintext")
    nodes = [chord.ChordSocket("127.0.0.1", free_port(), prot=prot) for _ in range(n)]
    time.sleep(0.5)
    for i, a in enumerate(nodes):
        for b in nodes[:i]:
            for attempt in range(5):
                try:
                    a.connect("127.0.0.1", b.addr[1])
                    break
                except OSError:
                    time.sleep(0.2)
    for node in nodes:
        node.join()
    deadline = time.time() + 30
    while time.time() < deadline:
        if all(sum(1 for c in x.routing_table.values() if not c.leeching) == n - 1 for x in nodes):
            break
        time.sleep(0.1)
    # Keys to read: written first, given time to land.
    for k in range(ops):
        nodes[k % n].set("pre-%d" % k, "value %d" % k)
    time.sleep(1.0)

    set_lat = []
    for k in range(ops):
        t = time.perf_counter()
        nodes[k % n].set("lat-%d" % k, k)
        set_lat.append((time.perf_counter() - t) * 1e6)

    def run_threads(work):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return time.perf_counter() - t

    per = max(1, ops // n)
    elapsed = run_threads(lambda i: [nodes[i].set("tp-%d-%d" % (i, k), k) for k in range(per)])
    set_ops = per * n / elapsed
    time.sleep(1.0)

    get_lat, failed = [], [0]
    for k in range(ops):
        t = time.perf_counter()
        v = nodes[(k + 1) % n].getSync("pre-%d" % k, timeout=5)
        get_lat.append((time.perf_counter() - t) * 1e6)
        if v != "value %d" % k:
            failed[0] += 1

    def reader(i):
        for k in range(per):
            key = (i * per + k) % ops
            if nodes[i].getSync("pre-%d" % key, timeout=5) != "value %d" % key:
                failed[0] += 1

    elapsed = run_threads(reader)
    get_ops = per * n / elapsed
    OUT.write(json.dumps({
        "set_p50_us": pct(set_lat, 0.5), "set_p99_us": pct(set_lat, 0.99), "set_ops": set_ops,
        "get_p50_us": pct(get_lat, 0.5), "get_p99_us": pct(get_lat, 0.99), "get_ops": get_ops,
        "get_failed": failed[0],
    }) + "\n")
    OUT.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
