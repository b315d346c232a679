#!/usr/bin/env bash
# Archive benchmark: lxcform archive against what the Python module does, on a Debian minbase
# container (made once with `-t debian`, then reused).
#
#   lxcform gzip  vs  rsync -aHAX to a temp dir, then tar czf   (the module's method)
#   lxcform zstd  vs  tar -c | zstd -T0
#
# Prints MB/s (uncompressed tar bytes per second of wall time), compression ratios and the
# ratios against the goals: gzip >= 3x faster than rsync+tar, zstd >= 0.9x of tar|zstd -T0.
# Every run reads from a warm page cache; each figure is the best of $RUNS interleaved runs.
# lxcform's figures include what tar|zstd skips: SHA-256 of the archive and its fsync.
#
# Usage: bench/archive/run.sh   (as root; env: LXCFORM_BENCH_PATH, LXCFORM_BENCH_OUT, RUNS)
set -euo pipefail
cd "$(dirname "$0")/../.."

P=${LXCFORM_BENCH_PATH:-/var/tmp/lxcform-bench}
OUT=${LXCFORM_BENCH_OUT:-/var/tmp/lxcform-bench-out}
RUNS=${RUNS:-5}
NAME=bench-debian
BIN=target/release/lxcform

[ "$(id -u)" = 0 ] || { echo "bench/archive: run as root" >&2; exit 1; }
cargo build --release -q -p lxcform-cli
mkdir -p "$P" "$OUT"

if [ ! -f "$P/$NAME/config" ]; then
    # shellcheck source=bench/lib/debian-template.sh
    . bench/lib/debian-template.sh
    need_debian_template
    echo "creating $NAME (Debian minbase through debootstrap, once) ..." >&2
    "$BIN" ensure "$NAME" -P "$P" -t debian --template-options "-r bookworm" \
        --config-line lxc.net.0.type=empty --state stopped >/dev/null
fi

calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
test_() { awk "BEGIN { exit !($*) }"; }

module_method() {
    local tmp
    tmp=$(mktemp -d /var/tmp/lxcform-bench-rsync.XXXXXX)
    rsync -aHAX "$P/$NAME" "$tmp/"
    tar -C "$tmp" -czf "$OUT/module.tar.tgz" .
    rm -rf "$tmp"
}
tar_zstd() { tar -C "$P/$NAME" -cf - . | zstd -q -T0 -f -o "$OUT/reference.tar.zst"; }
ours() { "$BIN" archive "$NAME" -P "$P" -p "$OUT" -q -c "$1"; }
export -f module_method tar_zstd ours
export P NAME OUT BIN

# The four methods run in turn, $RUNS rounds, so that a burst of load on the machine hits
# them alike; each keeps its best wall time, and the CPU time (user + system) of that run.
METHODS=("ours gzip" "module_method" "ours zstd" "tar_zstd")
declare -A WALL CPU
timing=$(mktemp)
trap 'rm -f "$timing"' EXIT
# Warm the page cache and measure the input once.
input=$(tar -C "$P/$NAME" -cf - . | wc -c)
in_mb=$(calc "$input / 1000000")

for _ in $(seq "$RUNS"); do
    for m in "${METHODS[@]}"; do
        TIMEFORMAT='%R %U %S'
        { time bash -c "$m" >/dev/null 2>&1; } 2>"$timing"
        read -r wall user sys < "$timing"
        if [ -z "${WALL[$m]:-}" ] || test_ "$wall < ${WALL[$m]}"; then
            WALL[$m]=$wall
            CPU[$m]=$(calc "$user + $sys")
        fi
    done
done
t_ours_gz=${WALL["ours gzip"]}
t_module=${WALL["module_method"]}
t_ours_zst=${WALL["ours zstd"]}
t_ref_zst=${WALL["tar_zstd"]}

size() { stat -c %s "$1"; }
row() { # label method file
    printf '%-34s %6.2f s %7.1f MB/s %6.2f s CPU   ratio %5.2f\n' "$1" "${WALL[$2]}" \
        "$(calc "$in_mb / ${WALL[$2]}")" "${CPU[$2]}" "$(calc "$input / $(size "$3")")"
}

echo "input: $NAME, $(printf '%.1f' "$in_mb") MB of tar; $(nproc) cores; best of $RUNS; load $(cut -d' ' -f1-3 /proc/loadavg)"
row "lxcform archive, gzip"            "ours gzip"     "$OUT/$NAME.tar.tgz"
row "module: rsync -aHAX + tar czf"    "module_method" "$OUT/module.tar.tgz"
row "lxcform archive, zstd"            "ours zstd"     "$OUT/$NAME.tar.zst"
row "tar -c | zstd -T0"                "tar_zstd"      "$OUT/reference.tar.zst"
gz_speedup=$(calc "$t_module / $t_ours_gz")
zst_rel=$(calc "$t_ref_zst / $t_ours_zst")
printf 'gzip: lxcform is %.2fx faster than rsync+tar czf (goal >= 3)\n' "$gz_speedup"
printf 'zstd: lxcform runs at %.2fx the speed of tar | zstd -T0 (goal >= 0.9)\n' "$zst_rel"
ok=1
test_ "$gz_speedup >= 3" || ok=0
test_ "$zst_rel >= 0.9" || ok=0
if [ $ok = 1 ]; then echo "goals: met"; else echo "goals: NOT met"; fi
