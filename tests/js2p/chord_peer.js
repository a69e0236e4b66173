#!/usr/bin/env node
/*
 * A real js2p 0.7.870 ChordSocket driven over stdin/stdout, one JSON object
 * a line, for rs2p's survival tests: js2p's chord module is largely broken
 * (its meta handling iterates a Set with for...in, uses undefined variables,
 * miscounts majorities), so this driver only makes it do things — connect,
 * join, unjoin, set, get, delete — and reports whatever it throws. The test
 * checks that the rs2p node next to it neither crashes nor stalls.
 *
 * Usage: node chord_peer.js PORT        (0 picks a free port)
 * Commands: {"op":"connect","host":H,"port":P}  {"op":"join"}  {"op":"unjoin"}
 *           {"op":"set","key":K,"value":V}  {"op":"get","key":K,"timeout":S}
 *           {"op":"delete","key":K}  {"op":"quit"}
 * Events:   {"event":"ready","id":ID,"port":P}
 *           {"event":"done","op":OP}   the op returned (or its promise settled)
 *           {"event":"value","key":K,"value":V}
 *           {"event":"error","op":OP,"error":TEXT}   (also "uncaught")
 */
'use strict';

const writeStdout = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => process.stderr.write(chunk, ...rest);
console.log = console.error;
console.info = console.error;

function emit(obj) { writeStdout(JSON.stringify(obj) + '\n'); }
function describe(e) { return (e && e.stack) || String(e); }
process.on('uncaughtException', (e) => emit({ event: 'error', op: 'uncaught', error: describe(e) }));
process.on('unhandledRejection', (e) => emit({ event: 'error', op: 'uncaught', error: describe(e) }));

const net = require('net');
const readline = require('readline');
const js2p = require('js2p');

function freePort() {
    return new Promise((resolve) => {
        const probe = net.createServer();
        probe.listen(0, '127.0.0.1', () => {
            const { port } = probe.address();
            probe.close(() => resolve(port));
        });
    });
}

async function main() {
    let port = Number(process.argv[2] || 0);
    if (port === 0) port = await freePort();
    const protocol = new js2p.base.Protocol('chord', 'Plaintext');
    const sock = new js2p.chord.ChordSocket('127.0.0.1', port, protocol);
    const ops = {
        connect: (c) => sock.connect(c.host, c.port),
        join: () => sock.join(),
        unjoin: () => sock.unjoin(),
        set: (c) => sock.set(c.key, c.value),
        delete: (c) => sock.del(c.key),
        get: (c) => sock.get_no_fallback(c.key, c.timeout || 2).then(
            (v) => emit({ event: 'value', key: c.key, value: v })),
    };
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => {
        let cmd;
        try { cmd = JSON.parse(line); } catch (e) { emit({ event: 'error', op: 'parse', error: describe(e) }); return; }
        if (cmd.op === 'quit') { rl.close(); return; }
        const op = ops[cmd.op];
        if (!op) { emit({ event: 'error', op: cmd.op, error: 'unknown op' }); return; }
        try {
            Promise.resolve(op(cmd)).then(
                () => emit({ event: 'done', op: cmd.op }),
                (e) => emit({ event: 'error', op: cmd.op, error: describe(e) }));
        } catch (e) {
            emit({ event: 'error', op: cmd.op, error: describe(e) });
        }
    });
    rl.on('close', () => { try { sock.close(); } catch (_) {} process.exit(0); });
    setTimeout(() => emit({ event: 'ready', id: String(sock.id), port }), 200);
}

main();
