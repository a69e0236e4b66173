#!/usr/bin/env node
/*
 * A real js2p 0.7.870 node driven over stdin/stdout, one JSON object a line,
 * for rs2p's interop tests. The twin of tests/py2p/mesh_peer.py: same ops,
 * same events, same packet mapping, so a test can drive either.
 *
 * Commands (stdin):  {"op":"connect","host":H,"port":P}            (or "addr":"H:P")
 *                      "force":true skips js2p's own early return, which refuses
 *                      a connect when any peer shares the host *or* the port
 *                      (on 127.0.0.1 that is every second connect)
 *                    {"op":"send","packets":[...]}                  broadcast
 *                    {"op":"whisper","to":ID,"packets":[...]}
 *                    {"op":"reply","to_msg":N,"packets":[...]}      reply to the N-th message received
 *                    {"op":"peers"}  {"op":"request_peers"}  {"op":"quit"}
 * Events (stdout):   {"event":"ready","id":ID,"port":P,...}
 *                    {"event":"message","n":N,"kind":"broadcast"|"whisper","sender":ID,
 *                     "sender_type":"str"|"bin","packets":[...]}
 *                    {"event":"peers","peers":[ID,...],"table":[{"id","type","addr","outgoing"},...]}
 *                    {"event":"error","error":TEXT,"source":"op"|"js2p"|"connection"|"uncaught"|...}
 *                    {"event":"connect_skipped","host":H,"port":P}  js2p's connect returned early
 *                    {"event":"reply","n":N,"path":"direct"|"route_request"}
 *                    {"event":"closed","peer":ID|null,"addr":[H,P]|null,"outgoing":B}  a connection ended
 * Packets in JSON: str <-> str, {"$bin": hex} <-> Buffer, numbers, bool, null, lists, objects.
 * Any command may carry a "tag": answers and the error event of a failed op echo it
 * ({"event":"error","source":"op","op":OP,"error":TEXT,"trace":TEXT,"tag":T}).
 *
 * --module=sync (js2p.sync.SyncSocket, a replicated dictionary) adds the ops and
 * events of tests/py2p/sync_peer.py, with the same JSON conventions:
 *   {"op":"set","key":K,"value":V}
 *   {"op":"get","key":K}                -> {"event":"value","key":K,"found":B,"value":V,
 *                                           "get":V,"get_found":B}
 *       found/value: what js2p's data object holds (as sync_peer.py); get/get_found:
 *       what js2p's own get() returns (it gives the fallback for falsy values)
 *   {"op":"delete","key":K}             js2p's del() always throws (TypeError,
 *                                        sync.js:118): an error event with "op":"delete"
 *   {"op":"update","items":[[K,V],...]}  or {"op":"update","map":{"k":V,...}}
 *   {"op":"delta","key":K,"map":M}      js2p's apply_delta
 *   {"op":"keys"}                       -> {"event":"keys","entries":[{"key":K,"value":V,
 *                                           "owner":ID,"owner_type":..,"time":T,"listed":B},...]}
 *       every entry of js2p's data object; keys are the object's property names, so
 *       always JSON strings (js2p unifies bin and str keys); "listed": js2p's own
 *       keys() yields it (it skips falsy values)
 *   {"event":"updated","key":K,"key_type":"bin"|"str","value":V,"owner":ID,
 *    "owner_type":"bin"|"str","time":T,"local":B}
 *   {"event":"deleted","key":K,"key_type":..,"local":B}
 *       straight from js2p's 'update' / 'delete' events, the key as js2p passed it
 *       (a Buffer from set and from a remote set, a string from a catch-up entry);
 *       "local" is true when one of our commands caused it. js2p never emits 'delete'
 *       (its delete path throws first).
 *   Keys in commands: a JSON string is its UTF-8 bytes, {"$bin": hex} those bytes
 *   (js2p's API makes a Buffer of every key anyway). Values: as packets, plus
 *   {"$map": [[k, v], ...]} with str keys for a map.
 *   --leasing on|off|default: js2p's leasing argument true, false, or left undefined
 *   (the default, as a user who does not pass it: js2p then joins NAME1 but its
 *   lease rule acts as if leasing were off).
 *
 * Usage: node peer.js PORT [SUBNET [COMPRESSION [MAX_OUTGOING]]]
 *                     [--encryption=Plaintext|SSL|ws|wss] [--module=mesh|sync|chord]
 *   PORT         0 picks a free port (js2p itself needs a real one: its id and
 *                the address it advertises are made from it)
 *   SUBNET       default: the module's name (mesh, sync, chord); js2p's sync
 *                appends "1" (leasing) or "0" to it
 *   COMPRESSION  "all" (default: whatever js2p loaded, zlib and gzip here),
 *                "none", or a comma list such as 0x13 or 0x11,0x13
 *   MAX_OUTGOING js2p.mesh.max_outgoing (default 4)
 *   --transport is accepted as a synonym of --encryption; --leasing for sync (above);
 *   --host=H to bind elsewhere than 127.0.0.1.
 *
 * What js2p's transports do under Node 20 (checked with this driver):
 *   Plaintext, ws: work both ways. Over ws js2p (nodejs-websocket) drops a
 *     connection on which a single frame larger than 2 MiB arrives.
 *   SSL: js2p listens with a fresh self-signed 1024-bit RSA certificate and
 *     dials without verifying; TLS stacks that refuse RSA keys under 2048 bits
 *     (ring, so rustls) cannot dial it.
 *   wss: accepted here, but js2p cannot do it: its listener has no certificate
 *     (every TLS handshake fails) and its dialler rejects self-signed ones.
 *
 * js2p chatters on stdout with console.log: everything but this driver's own
 * events is sent to stderr. Exceptions that js2p catches itself (it then drops
 * the connection) and uncaught ones are reported as error events; the driver
 * keeps running.
 */
'use strict';

// --- keep stdout for JSON lines only (before js2p is loaded) -----------------
const writeStdout = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => process.stderr.write(chunk, ...rest);
console.log = console.error;
console.info = console.error;
console.debug = console.error;

function emit(obj) {
    writeStdout(JSON.stringify(obj) + '\n');
}

function describe(err) {
    if (err instanceof Error) return err.stack || String(err);
    if (typeof err === 'string') return err;
    try { return JSON.stringify(err); } catch (_) { return String(err); }
}

process.on('uncaughtException', (err) => emit({ event: 'error', source: 'uncaught', error: describe(err) }));
process.on('unhandledRejection', (err) => emit({ event: 'error', source: 'uncaught', error: describe(err) }));

const net = require('net');
const readline = require('readline');
const js2p = require('js2p');
const { base } = js2p;

// --- packets: JSON <-> js2p values -------------------------------------------
function toJs(v) {
    if (Array.isArray(v)) return v.map(toJs);
    if (v !== null && typeof v === 'object') {
        const keys = Object.keys(v);
        if (keys.length === 1 && keys[0] === '$bin') return Buffer.from(v.$bin, 'hex');
        if (keys.length === 1 && keys[0] === '$map') {
            const out = {};
            for (const [k, x] of v.$map) {
                if (typeof k !== 'string') throw new Error(`a map key must be a string in js2p, not ${JSON.stringify(k)}`);
                out[k] = toJs(x);
            }
            return out;
        }
        const out = {};
        for (const k of keys) out[k] = toJs(v[k]);
        return out;
    }
    return v;
}

function toJson(v) {
    if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString('hex') };
    if (Array.isArray(v)) return v.map(toJson);
    if (v !== null && typeof v === 'object') {
        const out = {};
        for (const k of Object.keys(v)) out[k] = toJson(v[k]);
        return out;
    }
    if (typeof v === 'bigint') return Number(v);
    if (v === undefined) return null;
    return v;
}

/** An id as text, whichever msgpack type it arrived as (js2p keeps it raw). */
function ident(v) {
    if (v === null || v === undefined) return null;
    return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

function idType(v) {
    return Buffer.isBuffer(v) ? 'bin' : typeof v === 'string' ? 'str' : typeof v;
}

// --- command line --------------------------------------------------------------
function parseArgs(argv) {
    const positional = [];
    const options = {};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith('--')) { positional.push(a); continue; }
        const eq = a.indexOf('=');
        if (eq > 0) options[a.slice(2, eq)] = a.slice(eq + 1);
        else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) options[a.slice(2)] = argv[++i];
        else options[a.slice(2)] = 'true';
    }
    return { positional, options };
}

function usage(message) {
    process.stderr.write(`peer.js: ${message}\n` +
        'usage: node peer.js PORT [SUBNET [COMPRESSION [MAX_OUTGOING]]] ' +
        '[--encryption=Plaintext|SSL|ws|wss] [--module=mesh|sync|chord]\n');
    process.exit(2);
}

const TRANSPORTS = { plaintext: 'Plaintext', ssl: 'SSL', ws: 'ws', wss: 'wss' };

function restrictCompression(spec) {
    if (spec === undefined || spec === 'all') return;
    const wanted = spec === 'none' || spec === '' ? [] : spec.split(',').map((x) => Number(x.trim()));
    for (const method of wanted) {
        if (!Number.isInteger(method) || base.compression.indexOf(method) < 0) {
            usage(`compression method ${method} is not one js2p loaded here (${JSON.stringify(base.compression)})`);
        }
    }
    // js2p reads this module-level list when it advertises (handshake), picks
    // a method to send with, and tries methods on receipt: restrict it in place.
    base.compression.splice(0, base.compression.length, ...wanted);
}

function freePort(host) {
    return new Promise((resolve, reject) => {
        const probe = net.createServer();
        probe.once('error', reject);
        probe.listen(0, host, () => {
            const { port } = probe.address();
            probe.close(() => resolve(port));
        });
    });
}

// --- the modules -------------------------------------------------------------
// Each module makes its socket and may add ops of its own; the mesh ops below
// work on all three (SyncSocket and ChordSocket extend MeshSocket).
const MODULES = {
    mesh: {
        create: (host, port, protocol) => new js2p.mesh.MeshSocket(host, port, protocol),
        ops: {},
    },
    sync: {
        // SyncSocket(addr, port, protocol, leasing): js2p appends '1' or '0' to the subnet.
        create: (host, port, protocol, options) =>
            new js2p.sync.SyncSocket(host, port, protocol, leasingArg(options.leasing)),
        ready: (sock, options) => ({ leasing: leasingArg(options.leasing) === undefined ? null : leasingArg(options.leasing) }),
        setup: setupSync,
        ops: {}, // filled in below (SYNC_OPS)
    },
    chord: {
        create: (host, port, protocol) => new js2p.chord.ChordSocket(host, port, protocol),
        ops: {}, // to add: join, unjoin, set, get, delete, apply_delta
    },
};

// --- the sync module ------------------------------------------------------------
/** js2p's `leasing` argument from --leasing on|off|default (true|false also accepted). */
function leasingArg(value) {
    if (value === undefined || value === 'default') return undefined;
    if (value === 'on' || value === 'true') return true;
    if (value === 'off' || value === 'false') return false;
    return usage(`--leasing takes on, off or default, not ${value}`);
}

/** The one place where a JSON key becomes a js2p key: a Buffer of its bytes. */
function apiKey(k) {
    const key = toJs(k);
    if (typeof key === 'string') return Buffer.from(key, 'utf8');
    if (Buffer.isBuffer(key)) return key;
    throw new TypeError(`a key must be a JSON string or {"$bin": hex}, not ${JSON.stringify(k)}`);
}

function answer(cmd, obj) {
    if (cmd.tag !== undefined) obj.tag = cmd.tag;
    emit(obj);
}

function setupSync(ctx) {
    const { sock } = ctx;
    // js2p calls these inside its message handler: an exception here would
    // make js2p drop the connection, so none may escape.
    sock.on('update', (_sock, key, value, meta) => {
        try {
            emit({
                event: 'updated', key: toJson(key), key_type: idType(key), value: toJson(value),
                owner: meta ? ident(meta.owner) : null, owner_type: meta ? idType(meta.owner) : null,
                time: meta ? toJson(meta.timestamp) : null, local: ctx.inOp,
            });
        } catch (err) {
            emit({ event: 'error', source: 'driver', error: `update event: ${describe(err)}` });
        }
    });
    sock.on('delete', (_sock, key) => {
        try {
            emit({ event: 'deleted', key: toJson(key), key_type: idType(key), local: ctx.inOp });
        } catch (err) {
            emit({ event: 'error', source: 'driver', error: `delete event: ${describe(err)}` });
        }
    });
}

const NOT_FOUND = Symbol('not found');

const SYNC_OPS = {
    set(ctx, cmd) {
        ctx.sock.set(apiKey(cmd.key), toJs(cmd.value));
    },
    get(ctx, cmd) {
        const key = apiKey(cmd.key);
        const prop = key.toString();
        const found = Object.prototype.hasOwnProperty.call(ctx.sock.data, prop);
        const got = ctx.sock.get(key, NOT_FOUND);
        answer(cmd, {
            event: 'value', key: toJson(key), found, value: found ? toJson(ctx.sock.data[prop]) : null,
            get_found: got !== NOT_FOUND, get: got === NOT_FOUND ? null : toJson(got),
        });
    },
    delete(ctx, cmd) {
        ctx.sock.del(apiKey(cmd.key));
    },
    update(ctx, cmd) {
        // js2p's update(dict) calls set(name, value) for each property name.
        const dict = {};
        const pairs = cmd.items !== undefined ? cmd.items : Object.entries(cmd.map || {});
        for (const [k, v] of pairs) dict[apiKey(k).toString()] = toJs(v);
        ctx.sock.update(dict);
    },
    delta(ctx, cmd) {
        let delta = toJs(cmd.map);
        if (Array.isArray(delta)) delta = Object.fromEntries(delta);
        ctx.sock.apply_delta(apiKey(cmd.key), delta);
    },
    keys(ctx, cmd) {
        const { sock } = ctx;
        const listed = new Set(sock.keys());
        const entries = Object.keys(sock.data).map((key) => {
            const meta = sock.metadata[key];
            return {
                key, value: toJson(sock.data[key]),
                owner: meta ? ident(meta.owner) : null, owner_type: meta ? idType(meta.owner) : null,
                time: meta ? toJson(meta.timestamp) : null, listed: listed.has(key),
            };
        });
        answer(cmd, { event: 'keys', entries });
    },
};
MODULES.sync.ops = SYNC_OPS;

// --- the mesh ops (common to every module) ------------------------------------
function connectionTo(sock, id) {
    for (const [key, conn] of sock.routing_table) {
        if (ident(key) === id) return conn;
    }
    return undefined;
}

const MESH_OPS = {
    connect(ctx, cmd) {
        let { host, port } = cmd;
        if (cmd.addr !== undefined) {
            const colon = cmd.addr.lastIndexOf(':');
            host = cmd.addr.slice(0, colon);
            port = Number(cmd.addr.slice(colon + 1));
        }
        const { sock } = ctx;
        let result;
        if (cmd.force) {
            // js2p's connect skips a new peer when a routing-table entry shares
            // its host or its port; hide the table from that check only.
            const table = sock.routing_table;
            sock.routing_table = new Map();
            try { result = sock.connect(host, port); } finally {
                for (const [k, v] of sock.routing_table) table.set(k, v);
                sock.routing_table = table;
            }
        } else {
            result = sock.connect(host, port);
        }
        // js2p returns undefined when it dials, true/false when it does not.
        if (result !== undefined) emit({ event: 'connect_skipped', host, port });
    },
    send(ctx, cmd) {
        ctx.sock.send(toJs(cmd.packets || []));
    },
    whisper(ctx, cmd) {
        const conn = connectionTo(ctx.sock, cmd.to);
        if (!conn) throw new Error(`no peer ${cmd.to} in the routing table`);
        conn.send(base.flags.whisper, [base.flags.whisper, ...toJs(cmd.packets || [])]);
    },
    reply(ctx, cmd) {
        const m = ctx.received[cmd.to_msg];
        if (!m) throw new Error(`no message ${cmd.to_msg} received`);
        // Message.reply whispers when the sender object is a routing-table key,
        // otherwise it broadcasts a route request: say which path js2p takes.
        const direct = ctx.sock.routing_table.get(m.sender) !== undefined;
        emit({ event: 'reply', n: cmd.to_msg, path: direct ? 'direct' : 'route_request' });
        m.reply(toJs(cmd.packets || []));
    },
    peers(ctx) {
        const table = [];
        for (const [key, conn] of ctx.sock.routing_table) {
            table.push({ id: ident(key), type: idType(key), addr: toJson(conn.addr), outgoing: conn.outgoing });
        }
        const peers = Array.from(new Set(table.map((e) => e.id))).sort();
        emit({ event: 'peers', peers, table });
    },
    request_peers(ctx) {
        // What py2p's request_peers does (js2p has none): ask every peer for its list.
        for (const conn of ctx.sock.routing_table.values()) {
            conn.send(base.flags.whisper, [base.flags.request, '*']);
        }
    },
};

/**
 * js2p handles a socket error by closing the connection, and a close by
 * dropping the routing-table entry, both without a word: report them. Wraps
 * the socket's connection class (MeshConnection, or ChordConnection for chord).
 */
function traceConnections(sock) {
    const Base = sock.conn_type;
    sock.conn_type = class TracedConnection extends Base {
        onError(err) {
            if (err) emit({ event: 'error', source: 'connection', peer: ident(this.id), error: describe(err) });
            return super.onError(err);
        }

        onClose() {
            if (!this.traceClosed) {
                this.traceClosed = true;
                emit({ event: 'closed', peer: ident(this.id), addr: toJson(this.addr), outgoing: this.outgoing });
            }
            return super.onClose();
        }
    };
}

// --- main --------------------------------------------------------------------
async function main() {
    const { positional, options } = parseArgs(process.argv.slice(2));
    const moduleName = options.module || 'mesh';
    const mod = MODULES[moduleName];
    if (!mod) usage(`unknown module ${moduleName}`);
    if (!js2p[moduleName]) usage(`js2p.${moduleName} did not load`);
    const transportArg = options.encryption || options.transport || 'Plaintext';
    const encryption = TRANSPORTS[transportArg.toLowerCase()];
    if (!encryption) usage(`unknown transport ${transportArg}`);
    if (positional.length < 1) usage('PORT is required');
    const host = options.host || '127.0.0.1';
    let port = Number(positional[0]);
    if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad port ${positional[0]}`);
    const subnet = positional.length > 1 ? positional[1] : moduleName;
    restrictCompression(positional[2]);
    if (positional.length > 3) js2p.mesh.max_outgoing = Number(positional[3]);
    if (port === 0) port = await freePort(host);

    const sock = mod.create(host, port, new base.Protocol(subnet, encryption), options);
    // js2p catches exceptions in its message and send paths, drops the
    // connection, and only keeps them in sock.exceptions: report each one.
    sock.exceptions.push = function push(...errors) {
        for (const err of errors) emit({ event: 'error', source: 'js2p', error: describe(err) });
        return Array.prototype.push.apply(this, errors);
    };
    traceConnections(sock);
    const ctx = { sock, received: [], inOp: false };
    if (mod.setup) mod.setup(ctx);
    sock.on('message', () => {
        for (let m = sock.recv(); m !== undefined; m = sock.recv()) {
            ctx.received.push(m);
            const packets = m.packets;
            emit({
                event: 'message', n: ctx.received.length - 1,
                kind: packets[0] === base.flags.whisper ? 'whisper' : 'broadcast',
                sender: ident(m.sender), sender_type: idType(m.sender),
                packets: toJson(packets.slice(1)),
            });
        }
    });

    const ops = Object.assign({}, MESH_OPS, mod.ops);
    let quitting = false;
    const quit = (code) => {
        if (quitting) return;
        quitting = true;
        try { sock.close(); } catch (err) { emit({ event: 'error', source: 'op', error: describe(err) }); }
        setTimeout(() => process.exit(code), 100);
    };
    const handle = (line) => {
        if (quitting || !line.trim()) return;
        let cmd = {};
        try {
            cmd = JSON.parse(line);
            if (cmd.op === 'quit') return quit(0);
            const op = ops[cmd.op];
            if (!op) throw new Error(`unknown op ${cmd.op}`);
            ctx.inOp = true;
            try { op(ctx, cmd); } finally { ctx.inOp = false; }
        } catch (err) {
            const event = {
                event: 'error', source: 'op', op: cmd && cmd.op !== undefined ? cmd.op : null,
                error: err instanceof Error ? `${err.name}: ${err.message}` : describe(err),
            };
            if (err instanceof Error) event.trace = err.stack;
            if (cmd && cmd.tag !== undefined) event.tag = cmd.tag;
            emit(event);
        }
    };

    // 'ready' once the listener is up (or its failure reported).
    const listener = sock.incoming;
    const started = new Promise((resolve, reject) => {
        if (!listener) return resolve();
        listener.once('listening', resolve);
        listener.once('error', reject);
    });
    try {
        await started;
    } catch (err) {
        emit({ event: 'error', source: 'listen', error: describe(err) });
        process.exit(1);
    }
    if (listener) listener.on('error', (err) => emit({ event: 'error', source: 'listen', error: describe(err) }));
    emit({
        event: 'ready', id: ident(sock.id), port, module: moduleName, encryption,
        subnet: sock.protocol.subnet, protocol_id: sock.protocol.id,
        compression: Array.from(base.compression),
        ...(mod.ready ? mod.ready(sock, options) : {}),
    });

    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', handle);
    rl.on('close', () => quit(0));
}

main().catch((err) => {
    emit({ event: 'error', source: 'startup', error: describe(err) });
    process.exit(1);
});
