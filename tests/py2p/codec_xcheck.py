#!/usr/bin/env python3
"""Live codec cross-check between rs2p and the real py2p 0.7.878.

Driven by tests/py2p_codec.rs as a subprocess; one JSON object per line.

Modes
-----
``encode SEED COUNT``
    For each compression method (None, snappy 0x20, zlib 0x13, gzip 0x11,
    bz2 0x10, lzma 0x12) build COUNT random messages with py2p's
    ``InternalMessage`` and print, per message::

        {"method": M, "frame": HEX, "id": HEX, "packed": HEX}

    ``frame`` is ``InternalMessage.string`` (length prefix included),
    ``packed`` is ``umsgpack.packb(msg.packets)`` (the reference msgpack of
    the whole packets tuple), ``id`` is ``msg.id``. ``method`` is null for
    uncompressed frames.

``decode``
    Read lines ``{"method": M, "frame": HEX}`` from stdin until EOF and decode
    each with ``InternalMessage.feed_string(frame, compressions=[M] or [])``.
    Print, per input line, in order::

        {"ok": true, "id": HEX, "packed": HEX, "compression_fail": BOOL}
        {"ok": false, "error": "..."}

Any failure to import py2p is fatal (non-zero exit), never a skip.
"""

import json
import os
import random
import struct
import sys
import traceback

from hashlib import sha256

# This script lives in a directory called "py2p": keep that directory off the
# import path so `import py2p` can only find the installed package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _HERE]

from py2p.messages import InternalMessage, compression  # noqa: E402 (fail loudly)
import umsgpack

METHODS = [None, 0x20, 0x13, 0x11, 0x10, 0x12]

# Integer boundaries of every msgpack int encoding.
INT_EDGES = [
    0, 1, 31, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1,
    2**32, 2**63 - 1, 2**63, 2**64 - 1,
    -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769,
    -2**31 + 1, -2**31, -2**31 - 1, -2**63 + 1, -2**63,
]

# Lengths around every str/bin/array/map header boundary.
STR_EDGES = [0, 1, 31, 32, 255, 256, 301, 1000, 65535, 65536]
BIN_EDGES = [0, 1, 255, 256, 1000, 65535, 65536]
CONTAINER_EDGES = [0, 1, 15, 16, 17]

# Code points of 1, 2, 3 and 4 UTF-8 bytes (no surrogates).
ALPHABETS = [
    [chr(c) for c in range(0x20, 0x7f)],
    [chr(c) for c in range(0xa0, 0x800, 7)],
    [chr(c) for c in list(range(0x800, 0xd800, 97)) + list(range(0xe000, 0x10000, 89))]
    + ['\ufffd', '\uffff', '\u20ac', '\u00e9'],
    [chr(c) for c in range(0x10000, 0x110000, 4099)] + ['\U0001f600', '\U0010ffff'],
]


def rand_int(rng):
    r = rng.random()
    if r < 0.35:
        return rng.choice(INT_EDGES)
    if r < 0.5:
        return rng.randint(-32, 127)
    if r < 0.75:
        bits = rng.choice([8, 16, 32, 64])
        return rng.randint(-2**(bits - 1), 2**(bits - 1) - 1)
    return rng.randint(0, 2**64 - 1) if rng.random() < 0.5 else rng.randint(-2**63, -1)


def rand_float(rng):
    r = rng.random()
    if r < 0.2:
        return rng.choice([0.0, -0.0, 1.5, -2.25, float('inf'), float('-inf'),
                           float('nan'), 1e308, -1e-308, 5e-324, 3.141592653589793])
    if r < 0.6:
        return rng.uniform(-1e6, 1e6)
    # Any double from random bits; NaNs included (their bits must survive).
    return struct.unpack('>d', rng.getrandbits(64).to_bytes(8, 'big'))[0]


def rand_len(rng, edges, small_max):
    if rng.random() < 0.25:
        return rng.choice(edges)
    return rng.randint(0, small_max)


def rand_str(rng, long_ok):
    n = rand_len(rng, STR_EDGES if long_ok else STR_EDGES[:7], 40)
    alphabet = rng.choice(ALPHABETS)
    if rng.random() < 0.3:
        # Mixed UTF-8 widths in one string.
        chars = [rng.choice(rng.choice(ALPHABETS)) for _ in range(n)]
    else:
        chars = [rng.choice(alphabet) for _ in range(n)]
    s = ''.join(chars)
    # Keep frames bounded: cap the encoded size at ~70 kB.
    while len(s.encode('utf-8')) > 70000:
        s = s[: len(s) // 2]
    return s


def rand_bin(rng, long_ok):
    n = rand_len(rng, BIN_EDGES if long_ok else BIN_EDGES[:5], 40)
    if rng.random() < 0.5:
        # Compressible.
        pattern = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
        return (pattern * (n // len(pattern) + 1))[:n]
    return bytes(rng.getrandbits(8) for _ in range(n))


def rand_value(rng, depth, budget):
    """A random msgpack-able value. ``budget`` is a one-element list that
    caps how many large strings/bins one message may hold."""
    kinds = ['int', 'int', 'float', 'bool', 'nil', 'str', 'str', 'bin']
    if depth < 4:
        kinds += ['array', 'map']
    kind = 'ext' if rng.random() < 0.04 else rng.choice(kinds)
    if kind == 'ext':
        # Any ext type but -1 (the timestamp, which u-msgpack turns into a
        # datetime and may re-pack in a shorter form).
        ext_type = rng.choice([rng.randint(0, 127), rng.randint(-128, -2)])
        n = rng.choice([0, 1, 2, 3, 4, 8, 16, 17, 255, 256, 300])
        return umsgpack.Ext(ext_type, bytes(rng.getrandbits(8) for _ in range(n)))
    if kind == 'int':
        return rand_int(rng)
    if kind == 'float':
        return rand_float(rng)
    if kind == 'bool':
        return rng.random() < 0.5
    if kind == 'nil':
        return None
    long_ok = budget[0] > 0
    if kind == 'str':
        s = rand_str(rng, long_ok)
        if len(s) > 255:
            budget[0] -= 1
        return s
    if kind == 'bin':
        b = rand_bin(rng, long_ok)
        if len(b) > 255:
            budget[0] -= 1
        return b
    n = rand_len(rng, CONTAINER_EDGES, 5 if depth < 2 else 3)
    if kind == 'array':
        return [rand_value(rng, depth + 1, budget) for _ in range(n)]
    result = {}
    for _ in range(n):
        key = rand_str(rng, False)
        while key in result:
            key += rng.choice('abcxyz')
        result[key] = rand_value(rng, depth + 1, budget)
    return result


def rand_message(rng, method):
    msg_type = rng.randint(0, 4)
    sender = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 20, 32, 48, 64, 70])))
    # py2p replaces a falsy timestamp (0) with the current time: avoid it.
    timestamp = rng.choice([1, 127, 128, 1700000000, 2**32 - 1, 2**32, 2**64 - 1,
                            rng.randint(1, 2**64 - 1), rng.randint(1600000000, 1900000000)])
    sub_flag = rng.randint(0, 0x11)
    payload = [sub_flag]
    budget = [2]
    if rng.random() < 0.4:
        # Something long and compressible so compressed frames really shrink.
        payload.append('long text \u00e9\u20ac\U0001f600 ' * rng.randint(20, 60))
    for _ in range(rng.randint(0, 6)):
        payload.append(rand_value(rng, 0, budget))
    return InternalMessage(msg_type, sender, payload,
                           compression=[method] if method is not None else [],
                           timestamp=timestamp)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')


def mode_encode(seed, count):
    for method in METHODS:
        if method is not None and method not in compression:
            raise SystemExit('py2p lacks compression method 0x%02x (has %r)' % (method, compression))
    rng = random.Random(seed)
    for method in METHODS:
        for _ in range(count):
            msg = rand_message(rng, method)
            if msg.compression_used != method:
                raise SystemExit('py2p chose %r instead of %r' % (msg.compression_used, method))
            frame = msg.string
            packed = umsgpack.packb(msg.packets)
            if sha256(packed).digest() != msg.id:
                raise SystemExit('py2p id is not sha256(packb(packets))')
            emit({'method': method, 'frame': frame.hex(), 'id': msg.id.hex(),
                  'packed': packed.hex()})
    sys.stdout.flush()


def mode_decode():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            method = req['method']
            frame = bytes.fromhex(req['frame'])
            msg = InternalMessage.feed_string(
                frame, compressions=[method] if method is not None else [])
            emit({'ok': True, 'id': msg.id.hex(),
                  'packed': umsgpack.packb(msg.packets).hex(),
                  'compression_fail': bool(msg.compression_fail)})
        except Exception as exc:  # report, keep going
            emit({'ok': False, 'error': '%s: %s' % (type(exc).__name__, exc),
                  'trace': traceback.format_exc()[-2000:]})
        sys.stdout.flush()


def main(argv):
    if len(argv) >= 2 and argv[1] == 'encode' and len(argv) == 4:
        mode_encode(int(argv[2]), int(argv[3]))
    elif len(argv) == 2 and argv[1] == 'decode':
        mode_decode()
    else:
        raise SystemExit('usage: codec_xcheck.py encode SEED COUNT | decode')


if __name__ == '__main__':
    main(sys.argv)
