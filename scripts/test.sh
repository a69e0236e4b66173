#!/usr/bin/env bash
# Runs the whole rs2p test suite on a fresh machine: installs what the tests
# need (a Python venv with the real py2p 0.7.878 from PyPI, the real js2p
# 0.7.870 from npm, iproute2, curl), then runs every test (unit, integration,
# interop, doctests, and the fuzz harnesses' replay).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- Python 3.11 venv with py2p (interop tests run the real thing) ---------
find_python() {
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}
if ! PYTHON=$(find_python); then
    echo "test.sh: no Python 3.11 found; installing Debian's" >&2
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
    PYTHON=$(find_python) || { echo "test.sh: Python 3.11 is required (py2p's SSL needs it)" >&2; exit 1; }
fi
VENV=${RS2P_VENV:-$PWD/.venv}
if ! "$VENV/bin/python" -c 'import py2p, snappy, cryptography' 2>/dev/null; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        'py2p==0.7.878' python-snappy cryptography
fi
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md, py2p.messages, snappy, cryptography
assert md.version("py2p") == "0.7.878", md.version("py2p")
assert 0x20 in py2p.messages.compression, "py2p loaded without snappy"
PY
export RS2P_PYTHON="$VENV/bin/python"

# --- Node with js2p 0.7.870 (pinned by tests/js2p/package-lock.json) -------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "test.sh: no node/npm found; installing Debian's" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
JS2P_DIR=$PWD/tests/js2p
if [ ! -d "$JS2P_DIR/node_modules/js2p" ]; then
    (cd "$JS2P_DIR" && npm ci --no-audit --no-fund)
fi
# js2p prints chatter on load; only the exit status matters here.
if ! JS2P_CHECK=$(cd "$JS2P_DIR" && node -e "
    require('js2p');
    const v = require('js2p/package.json').version;
    if (v !== '0.7.870') { console.error('js2p ' + v + ' installed, 0.7.870 wanted'); process.exit(1); }
" 2>&1); then
    echo "$JS2P_CHECK" >&2
    echo "test.sh: js2p 0.7.870 does not load from $JS2P_DIR" \
        "(try: rm -rf tests/js2p/node_modules && (cd tests/js2p && npm ci))" >&2
    exit 1
fi
export RS2P_JS2P_DIR="$JS2P_DIR"

# --- iproute2: the partition and chaos tests build their own network ---------
# namespaces (ip netns, veth, bridges); the chaos test shapes its links with
# `tc netem` (iproute2 too) when the kernel has sch_netem, and with its own
# userspace emulator when it has not (it says which on stderr).
if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
    echo "test.sh: installing iproute2 (ip netns, tc)" >&2
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi
ip netns list >/dev/null || { echo "test.sh: 'ip netns' does not work here (root needed)" >&2; exit 1; }
# sch_netem as a module (Debian's kernels): load it if we can; no matter if not.
if command -v modprobe >/dev/null 2>&1; then
    modprobe -q sch_netem 2>/dev/null || true
fi

# --- curl: tests/metrics.rs scrapes `rs2p node --metrics` with a real client --
if ! command -v curl >/dev/null 2>&1; then
    echo "test.sh: installing curl" >&2
    apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi

# --- the tests ---------------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --lib --bins --tests --examples --no-fail-fast
else
    cargo test --lib --bins --tests --examples --no-fail-fast
fi
cargo test --doc
# The fuzz harnesses (fuzz/, a crate of its own) without libFuzzer: every
# target on a fixed set of generated inputs, and the saved regressions
# (see fuzz/README.md). 10-25 s once built.
(cd fuzz && cargo test)
