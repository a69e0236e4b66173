#!/usr/bin/env bash
# Runs one rs2p fuzz target (fuzz/, cargo-fuzz + libFuzzer) for a time budget.
#
#   scripts/fuzz.sh TARGET SECONDS        e.g. scripts/fuzz.sh mesh_state 300
#   scripts/fuzz.sh list                  the targets
#
# Targets: frame_decoder, mesh_state, sync_state, chord_state, layer_stack
# (see fuzz/README.md and fuzz/src/lib.rs for what each feeds and checks). The corpus grows in fuzz/corpus/TARGET; a crash is
# saved in fuzz/artifacts/TARGET/ and makes this script exit non-zero; to
# replay or minimise one:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run  -s none TARGET fuzz/artifacts/TARGET/crash-…
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s none TARGET fuzz/artifacts/TARGET/crash-…
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address: rs2p forbids unsafe code, so
#                   the plain build finds panics several times faster; address
#                   also checks the C code underneath (liblzma).
#   FUZZ_JOBS       parallel fuzzing processes (default 1).
#   FUZZ_MAX_LEN    longest input tried (default 8192).
#
# Only a stable toolchain is needed: cargo-fuzz passes -Z flags, which
# RUSTC_BOOTSTRAP=1 allows on stable. cargo-fuzz is installed from crates.io
# when missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS="frame_decoder mesh_state sync_state chord_state layer_stack"

usage() {
    echo "usage: $0 TARGET SECONDS   (targets: $TARGETS)" >&2
    exit 2
}
[ "${1:-}" = list ] && { printf '%s\n' $TARGETS; exit 0; }
[ $# -eq 2 ] || usage
target=$1
secs=$2
case " $TARGETS " in *" $target "*) ;; *) usage ;; esac
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || usage

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
max_len=${FUZZ_MAX_LEN:-8192}

mkdir -p "corpus/$target" "artifacts/$target" logs
log="logs/$target-$(date +%Y%m%d-%H%M%S).log"
echo "fuzz.sh: $target for ${secs}s (sanitizer $sanitizer, $jobs job(s)); log $log" >&2

cargo fuzz build -s "$sanitizer" "$target"
set +e
if [ "$jobs" -gt 1 ]; then
    cargo fuzz run -s "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 \
        -jobs="$jobs" -workers="$jobs" \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1
else
    cargo fuzz run -s "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1
fi
status=$?
set -e

# With -jobs, each worker writes fuzz-N.log in the current directory.
for f in fuzz-*.log; do
    [ -e "$f" ] && { cat "$f" >>"$log"; rm -f "$f"; }
done
execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
echo "fuzz.sh: $target: $execs executions in ${secs}s, corpus $(find "corpus/$target" -type f | wc -l) inputs"
if [ $status -ne 0 ] || grep -q -E '^==[0-9]+== ERROR|panicked at|deadly signal' "$log"; then
    echo "fuzz.sh: $target FOUND A CRASH (exit $status):" >&2
    grep -h -E -A12 'panicked at|==[0-9]+== ERROR|deadly signal' "$log" | head -60 >&2
    ls -1 "artifacts/$target" >&2
    exit 1
fi
echo "fuzz.sh: $target: no crash"
