"""A real py2p 0.7.878 ChordSocket (distributed hash table) driven over
stdin/stdout, one JSON object a line, for rs2p's interop tests.

Usage: chord_peer.py PORT [SUBNET] [--join] [--compression all|none|0x13,...]
                     [--encryption Plaintext|SSL]
  SUBNET defaults to "chord" (py2p adds nothing to it). The node starts
  leeching (not storing), as py2p's does; --join calls join() at once.

Commands (stdin), each may carry a "tag" that is echoed in its answer/error:
  {"op":"connect","host":"127.0.0.1","port":P}
  {"op":"join"}   {"op":"unjoin"}
  {"op":"set","key":K,"value":V}
  {"op":"get","key":K,"timeout":SECONDS}   -> value, or error with "timeout"
                                              (default timeout 10, py2p's own)
  {"op":"delete","key":K}                   py2p's del (needs K in its key list)
  {"op":"delta","key":K,"map":M}            py2p apply_delta -> delta
  {"op":"keys"}                             -> keys (py2p's key list)
  {"op":"data"}                             -> data (this node's own tables)
  {"op":"hashes","key":K}                   -> hashes (py2p's five positions)
  {"op":"peers"}                            -> peers
  {"op":"quit"}
Events (stdout):
  {"event":"ready","id":ID,"port":P,"subnet":S,"protocol_id":PID,"leeching":B,...}
  {"event":"added","key":K}  {"event":"deleted","key":K}   py2p's 'add'/'delete'
      events (a notify received from the network)
  {"event":"value","key":K,"value":V}
  {"event":"error","op":"get","key":K,"error":"timeout"}    no 3 agreeing answers in time
  {"event":"delta","key":K,"value":V}       the merged value py2p's promise yields
  {"event":"keys","keys":[K,...]}
  {"event":"data","tables":{"sha1":{B58:V,...},...}}
  {"event":"hashes","key":K,"hashes":{"sha1":B58,...}}
  {"event":"peers","peers":[{"id":ID,"leeching":B,"outgoing":B},...]}
  {"event":"error","op":OP,"error":TEXT,"trace":TEXT}
Values and keys as in sync_peer.py: JSON string = str, {"$bin": hex} = bytes,
{"$map": [[k, v], ...]}; py2p turns str keys into UTF-8 bytes, converted in
peer_util.api_key.

get runs py2p's own blocking lookup (ChordSocket.__getitem, which takes the
timeout that the public get/getSync hide behind a fallback value) in a
worker thread, so other commands keep flowing while it waits.
"""
import argparse
import os
import sys
import threading


def load_util():
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.util.spec_from_file_location("peer_util", os.path.join(here, "peer_util.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


util = load_util()

from base58 import b58encode_int  # noqa: E402
from py2p import base, chord  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("subnet", nargs="?", default="chord")
    ap.add_argument("--join", action="store_true")
    ap.add_argument("--compression", default="all")
    ap.add_argument("--encryption", default="Plaintext")
    a = ap.parse_args()

    compression = util.set_compression(a.compression)
    util.loopback_only()
    util.serialize_with_network_thread()

    sock = chord.ChordSocket("127.0.0.1", a.port, prot=base.Protocol(a.subnet, a.encryption))

    def on_add(_sock, key):
        util.emit({"event": "added", "key": util.to_json(key)})

    def on_delete(_sock, key):
        util.emit({"event": "deleted", "key": util.to_json(key)})

    sock.on("add", on_add)
    sock.on("delete", on_delete)
    if a.join:
        with util.LOCK:
            sock.join()

    util.emit({"event": "ready", "id": util.ident(sock.id), "port": a.port,
               "subnet": sock.protocol.subnet, "protocol_id": util.ident(sock.protocol.id),
               "leeching": sock.leeching, "compression": compression, "encryption": a.encryption})

    def op_connect(cmd):
        sock.connect(cmd["host"], cmd["port"])

    def op_join(cmd):
        sock.join()

    def op_unjoin(cmd):
        sock.unjoin()

    def op_set(cmd):
        sock.set(util.api_key(cmd["key"]), util.to_py(cmd["value"]))

    def op_get(cmd):
        key = util.api_key(cmd["key"])
        timeout = cmd.get("timeout", 10)

        def run():
            try:
                value = sock._ChordSocket__getitem(key, timeout=timeout)
            except TimeoutError:  # py2p raises socket.timeout, an alias
                err = {"event": "error", "op": "get", "key": util.to_json(key), "error": "timeout"}
                util.answer(cmd, err)
                return
            except KeyError as e:
                err = {"event": "error", "op": "get", "key": util.to_json(key), "error": "KeyError: %s" % e}
                util.answer(cmd, err)
                return
            util.answer(cmd, {"event": "value", "key": util.to_json(key), "value": util.to_json(value)})
        util.in_worker(cmd, run)

    def op_delete(cmd):
        del sock[util.api_key(cmd["key"])]

    def op_delta(cmd):
        key = util.api_key(cmd["key"])
        delta = util.to_py(cmd["map"])
        if isinstance(delta, list):
            delta = {k: v for k, v in delta}
        timeout = cmd.get("timeout", 10)

        def run():
            promise = sock.apply_delta(key, delta)
            value = promise.get(timeout + 5)
            util.answer(cmd, {"event": "delta", "key": util.to_json(key), "value": util.to_json(value)})
        util.in_worker(cmd, run)

    def op_keys(cmd):
        util.answer(cmd, {"event": "keys", "keys": [util.to_json(k) for k in list(sock.keys())]})

    def op_data(cmd):
        tables = {}
        for method, table in sock.data.items():
            tables[util.ident(method)] = {b58encode_int(k).decode(): util.to_json(v) for k, v in table.items()}
        util.answer(cmd, {"event": "data", "tables": tables})

    def op_hashes(cmd):
        key = util.api_key(cmd["key"])
        hashes = {util.ident(m): b58encode_int(h).decode() for m, h in zip(chord.hashes, chord.get_hashes(key))}
        util.answer(cmd, {"event": "hashes", "key": util.to_json(key), "hashes": hashes})

    def op_peers(cmd):
        peers = [{"id": util.ident(i), "leeching": c.leeching, "outgoing": c.outgoing}
                 for i, c in sock.routing_table.items()]
        util.answer(cmd, {"event": "peers", "peers": sorted(peers, key=lambda p: p["id"])})

    util.run_ops({"connect": op_connect, "join": op_join, "unjoin": op_unjoin, "set": op_set,
                  "get": op_get, "delete": op_delete, "delta": op_delta, "keys": op_keys,
                  "data": op_data, "hashes": op_hashes, "peers": op_peers})
    sock.close()


if __name__ == "__main__":
    main()
