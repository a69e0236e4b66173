"""A real py2p 0.7.878 SyncSocket (replicated dictionary) driven over
stdin/stdout, one JSON object a line, for rs2p's interop tests.

Usage: sync_peer.py PORT [SUBNET] [--leasing on|off] [--compression all|none|0x13,...]
                    [--encryption Plaintext|SSL]
  SUBNET is the name the user gives (default "sync"); py2p itself appends
  "1" (leasing on, the default) or "0", so the default network is "sync1".

Commands (stdin), each may carry a "tag" that is echoed in its answer/error:
  {"op":"connect","host":"127.0.0.1","port":P}
  {"op":"set","key":K,"value":V}
  {"op":"get","key":K}                 -> value
  {"op":"delete","key":K}
  {"op":"update","items":[[K,V],...]}  or {"op":"update","map":{"k":V,...}}
  {"op":"delta","key":K,"map":M}       py2p apply_delta (M: JSON object or {"$map":[[k,v],..]})
  {"op":"keys"}                        -> keys
  {"op":"peers"}                       -> peers
  {"op":"quit"}
Events (stdout):
  {"event":"ready","id":ID,"port":P,"subnet":"sync1","protocol_id":PID,"leasing":true,...}
  {"event":"updated","key":K,"value":V,"owner":ID,"owner_type":"bin"|"str","time":T,"local":B}
  {"event":"deleted","key":K,"local":B}
      both straight from py2p's own 'update' / 'delete' events; "local" is
      true when the change came from one of our commands, false when it
      arrived from the network (broadcast or catch-up).
  {"event":"value","key":K,"found":B,"value":V}
  {"event":"keys","entries":[{"key":K,"value":V,"owner":ID,"owner_type":..,"time":T},...]}
      every entry of py2p's data dict, in its order, keys with their exact
      Python type (a key that arrived as msgpack str shows as a JSON string).
  {"event":"peers","peers":[ID,...]}
  {"event":"error","op":OP,"error":TEXT,"trace":TEXT}

Values: JSON string = str, {"$bin": hex} = bytes, {"$map": [[k, v], ...]} = a
map with non-str keys; numbers, bools, null, arrays as such.

Keys: py2p's SyncSocket API turns every str key into its UTF-8 bytes
(py2p.utils.sanitize_packet), so keys always go out as msgpack bin and a
key "k" you set is reported back as {"$bin": "6b"}. peer_util.api_key is
the single place where a JSON key becomes that bytes key. Entries a remote
sent with a str key are kept by py2p under the str (get/delete cannot reach
them, and py2p then fails every later catch-up); "keys" shows them as
JSON strings.
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

from py2p import base, sync  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("subnet", nargs="?", default="sync")
    ap.add_argument("--leasing", choices=("on", "off"), default="on")
    ap.add_argument("--compression", default="all")
    ap.add_argument("--encryption", default="Plaintext")
    a = ap.parse_args()

    compression = util.set_compression(a.compression)
    util.loopback_only()
    util.serialize_with_network_thread()
    main_thread = threading.main_thread()

    sock = sync.SyncSocket("127.0.0.1", a.port, prot=base.Protocol(a.subnet, a.encryption),
                           leasing=(a.leasing == "on"))

    def local():
        return threading.current_thread() is main_thread

    def on_update(_sock, key, value, meta):
        try:
            util.emit({"event": "updated", "key": util.to_json(key), "value": util.to_json(value),
                       "owner": util.ident(meta.owner), "owner_type": util.wire_type(meta.owner),
                       "time": util.to_json(meta.timestamp), "local": local()})
        except Exception as e:  # never let a harness bug reach py2p's handler chain
            util.emit({"event": "error", "op": None, "error": "update event: %r" % (e,)})

    def on_delete(_sock, key):
        try:
            util.emit({"event": "deleted", "key": util.to_json(key), "local": local()})
        except Exception as e:
            util.emit({"event": "error", "op": None, "error": "delete event: %r" % (e,)})

    sock.on("update", on_update)
    sock.on("delete", on_delete)

    util.emit({"event": "ready", "id": util.ident(sock.id), "port": a.port,
               "subnet": sock.protocol.subnet, "protocol_id": util.ident(sock.protocol.id),
               "leasing": a.leasing == "on", "compression": compression,
               "encryption": a.encryption})

    def op_connect(cmd):
        sock.connect(cmd["host"], cmd["port"])

    def op_set(cmd):
        sock.set(util.api_key(cmd["key"]), util.to_py(cmd["value"]))

    def op_get(cmd):
        key = util.api_key(cmd["key"])
        found = key in sock.data
        util.answer(cmd, {"event": "value", "key": util.to_json(key), "found": found,
                          "value": util.to_json(sock.data.get(key))})

    def op_delete(cmd):
        del sock[util.api_key(cmd["key"])]

    def op_update(cmd):
        if "items" in cmd:
            pairs = [(util.api_key(k), util.to_py(v)) for k, v in cmd["items"]]
        else:
            pairs = [(util.api_key(k), util.to_py(v)) for k, v in cmd["map"].items()]
        sock.update(dict(pairs))

    def op_delta(cmd):
        delta = util.to_py(cmd["map"])
        if isinstance(delta, list):  # [[k, v], ...] also accepted
            delta = {k: v for k, v in delta}
        sock.apply_delta(util.api_key(cmd["key"]), delta)

    def op_keys(cmd):
        entries = []
        for key, value in list(sock.data.items()):
            meta = sock.metadata.get(key)
            entries.append({"key": util.to_json(key), "value": util.to_json(value),
                            "owner": util.ident(meta.owner) if meta else None,
                            "owner_type": util.wire_type(meta.owner) if meta else None,
                            "time": util.to_json(meta.timestamp) if meta else None})
        util.answer(cmd, {"event": "keys", "entries": entries})

    def op_peers(cmd):
        util.answer(cmd, {"event": "peers", "peers": sorted(util.ident(k) for k in sock.routing_table)})

    util.run_ops({"connect": op_connect, "set": op_set, "get": op_get, "delete": op_delete,
                  "update": op_update, "delta": op_delta, "keys": op_keys, "peers": op_peers})
    sock.close()


if __name__ == "__main__":
    main()
