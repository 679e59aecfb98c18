#!/usr/bin/env bash
# Benchmarks trace-runner against bpftrace in the same run (issue 7):
#   1. start-up (exec -> attached -> exit) for a one-liner and corpus tools,
#   2. peak RSS of those runs and of a 10 s trace holding a 10,000-key map,
#   3. per-event cost: dd's slowdown under each tracer, in ns per traced syscall,
#   4. sizes: runner binary and image archive vs bpftrace and its shared libraries,
#   5. plugin: `kubectl-trace run --dry-run=client` wall time and binary size.
#
# usage: sudo bench/run.sh [--smoke] [--out FILE]
#   --smoke   every measurement once, small counts (checks the script, not speed)
#   --out     where to write the markdown (default bench/RESULTS.md; --smoke: none)
# env: TRACE_RUNNER, KUBECTL_TRACE, BPFTRACE (binaries; built/found when unset),
#      BENCH_TOOLS (corpus tools for start-up, default "runqlat opensnoop syscount").
# Needs root (eBPF), bash, coreutils, awk; uses hyperfine and /usr/bin/time when
# present (Debian: apt-get install -y hyperfine time bpftrace). A case a tracer
# cannot run is reported as "unsupported" (with its first error line) and skipped.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMOKE=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --out=*) OUT=${1#--out=} ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ $SMOKE = 0 ] && [ -z "$OUT" ] && OUT="$ROOT/bench/RESULTS.md"

if [ "$(id -u)" != 0 ]; then
    echo "bench/run.sh loads eBPF programs: run it as root" >&2
    exit 1
fi

if [ $SMOKE = 1 ]; then
    RUNS=2 WARMUP=0 DD_COUNT=20000 DD_RUNS=1 MAP_SECS=2 SETTLE=0.3
else
    RUNS=10 WARMUP=1 DD_COUNT=2000000 DD_RUNS=3 MAP_SECS=10 SETTLE=1
fi
EVENTS=$((2 * DD_COUNT)) # dd bs=1: one read and one write per byte

TMP=$(mktemp -d /tmp/bench.XXXXXX)
BG_PIDS=()
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

START_S=$SECONDS
log() { echo "bench [$((SECONDS - START_S))s]: $*" >&2; }

# --- environment -----------------------------------------------------------
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null ||
    log "warning: cannot mount tracefs at /sys/kernel/tracing"
ulimit -l unlimited 2>/dev/null || true

HYPERFINE=$(command -v hyperfine || true)
TIME_BIN=""
[ -x /usr/bin/time ] && TIME_BIN=/usr/bin/time
[ -z "$HYPERFINE" ] && log "hyperfine not found: timing with a shell loop (apt-get install -y hyperfine)"
[ -z "$TIME_BIN" ] && log "/usr/bin/time not found: no peak RSS figures (apt-get install -y time)"

# find_bin VAR PACKAGE BINARY: $VAR if set, else target/release/BINARY (built with
# cargo when missing; --smoke also accepts target/debug/BINARY).
find_bin() {
    local var=$1 pkg=$2 bin=$3 val=${!1:-}
    if [ -n "$val" ]; then
        [ -x "$val" ] && { echo "$val"; return; }
        log "$var=$val is not executable"; return
    fi
    local rel="${CARGO_TARGET_DIR:-$ROOT/target}/release/$bin" dbg="${CARGO_TARGET_DIR:-$ROOT/target}/debug/$bin"
    [ -x "$rel" ] && { echo "$rel"; return; }
    [ $SMOKE = 1 ] && [ -x "$dbg" ] && { echo "$dbg"; return; }
    if command -v cargo >/dev/null; then
        log "building $pkg (cargo build --release -p $pkg)"
        (cd "$ROOT" && cargo build --release -q -p "$pkg" >&2) && [ -x "$rel" ] && { echo "$rel"; return; }
    fi
    log "no $bin binary: its cases are reported as unsupported"
}
TR=$(find_bin TRACE_RUNNER trace-runner trace-runner)
KT=$(find_bin KUBECTL_TRACE kubectl-trace kubectl-trace)
BT=${BPFTRACE:-$(command -v bpftrace || true)}
[ -z "$BT" ] && log "bpftrace not found (apt-get install -y bpftrace): its cases are reported as n/a"

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# --- helpers ---------------------------------------------------------------
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now_ns() { date +%s%N; }
size_of() { stat -L -c %s "$1" 2>/dev/null; }
mib() { [ -n "${1:-}" ] && calc "%.1f MiB" "$1 / 1048576" || echo "n/a"; }
secs() { [ -n "${1:-}" ] && calc "%.3f s" "$1" || echo "${2:-n/a}"; }
# ratio A B [WORD]: A/B as "12.3× WORD", or "–" when either is missing or <= 0 (noise).
ratio() {
    if [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk "BEGIN { exit !($1 > 0 && $2 > 0) }"; then
        echo "$(calc "%.2f×" "$1 / $2")${3:+ $3}"
    else
        echo "–"
    fi
}
first_err() { grep -v -e '^Attaching' -e '^$' -e 'RLIMIT_MEMLOCK' "$1" 2>/dev/null | head -1 | cut -c1-100; }

NOTES=()
note() { NOTES+=("$1"); }

# mkcmd FILE ARGV...: a script that execs ARGV with output discarded (for hyperfine).
mkcmd() {
    local f=$1; shift
    { printf 'exec'; printf ' %q' "$@"; printf ' >/dev/null 2>&1\n'; } >"$f"
}

# check LABEL ARGV...: run once (120 s limit); 0 when it succeeded.
check() {
    local label=$1; shift
    if timeout -s INT 120 "$@" >/dev/null 2>"$TMP/check.err"; then return 0; fi
    note "$label: unsupported ($(first_err "$TMP/check.err"))"
    return 1
}

# wall ARGV...: median wall seconds over $RUNS runs (after $WARMUP warm-ups).
wall() {
    local cmd="$TMP/cmd.sh"
    mkcmd "$cmd" "$@"
    if [ -n "$HYPERFINE" ]; then
        "$HYPERFINE" -N --runs "$RUNS" --warmup "$WARMUP" --style none --export-csv "$TMP/h.csv" \
            "bash $cmd" >/dev/null 2>&1 || return 1
        awk -F, 'NR == 2 { print $4 }' "$TMP/h.csv"
    else
        local i s
        for ((i = 0; i < WARMUP; i++)); do bash "$cmd"; done
        for ((i = 0; i < RUNS; i++)); do
            s=$(now_ns); bash "$cmd" || return 1; echo "$(( $(now_ns) - s ))"
        done | awk '{ print $1 / 1e9 }' | median
    fi
}

# rss ARGV...: peak RSS in bytes of one run (/usr/bin/time -v).
rss() {
    [ -n "$TIME_BIN" ] || return 1
    "$TIME_BIN" -v -o "$TMP/time.txt" "$@" >"$TMP/rss.out" 2>/dev/null
    awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 * 1024 }' "$TMP/time.txt"
}

# dd under its own name, so the printf script's filter ignores other dd processes.
DD="$TMP/benchdd"
cp "$(command -v dd)" "$DD"
dd_once() {
    local s; s=$(now_ns)
    "$DD" if=/dev/zero of=/dev/null bs=1 count="$DD_COUNT" 2>/dev/null
    echo "$(( $(now_ns) - s ))" | awk '{ print $1 / 1e9 }'
}
dd_median() { local i; for ((i = 0; i < DD_RUNS; i++)); do dd_once; done | median; }

# under LABEL ARGV...: sets UNDER to dd's median time while ARGV traces (empty when
# the tracer fails). Not run in a subshell, so notes and the cleanup list persist.
# Attached = "Attaching N probes..." seen (bpftrace prints it on stdout, trace-runner
# on stderr). With UNDER_COUNT=1 (printf scripts) stdout goes through a pipe to
# `wc -l` instead (UNDER_LINES = lines printed), so only stderr is visible: after
# 5 s of silence a live tracer counts as attached (both start in under 2 s here).
under() {
    local label=$1; shift
    local limit=600 wcpid=""
    UNDER="" UNDER_LINES=""
    : >"$TMP/under.out"
    : >"$TMP/under.err"
    if [ "${UNDER_COUNT:-0}" = 1 ]; then
        limit=50
        rm -f "$TMP/fifo" && mkfifo "$TMP/fifo"
        wc -l <"$TMP/fifo" >"$TMP/lines" &
        wcpid=$!
        "$@" >"$TMP/fifo" 2>"$TMP/under.err" &
    else
        "$@" >"$TMP/under.out" 2>"$TMP/under.err" &
    fi
    local pid=$! i
    BG_PIDS+=("$pid")
    for ((i = 0; i < limit; i++)); do
        grep -q '^Attaching' "$TMP/under.err" "$TMP/under.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep "$SETTLE"
    if ! kill -0 "$pid" 2>/dev/null; then
        note "$label: unsupported ($(first_err "$TMP/under.err"))"
        wait "$pid" 2>/dev/null
        [ -n "$wcpid" ] && wait "$wcpid" 2>/dev/null
        return 1
    fi
    UNDER=$(dd_median)
    kill -INT "$pid" 2>/dev/null
    for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ -n "$wcpid" ]; then
        wait "$wcpid" 2>/dev/null
        UNDER_LINES=$(tr -d ' ' <"$TMP/lines")
    fi
    return 0
}

# Make a corpus tool exit right after attaching: end its BEGIN block with exit().
add_exit() {
    awk '
        !done && /^BEGIN[ \t]*\{.*\}[ \t]*$/ { sub(/\}[ \t]*$/, " exit(); }"); print; done = 1; next }
        !done && /^BEGIN([ \t]*\{)?[ \t]*$/ { inbegin = 1; print; next }
        inbegin && /^\}/ { print "\texit();"; print; inbegin = 0; done = 1; next }
        { print }
        END { if (!done) print "BEGIN { exit(); }" }' "$1"
}

# --- 1 + 2: start-up and peak RSS ------------------------------------------
SMALL='tracepoint:syscalls:sys_enter_openat { @[comm] = count(); } BEGIN { exit(); }'
START_ROWS=()
RSS_ROWS=()
# startup_case LABEL -- TR_ARGV... -- BT_ARGV...
startup_case() {
    local label=$1; shift 2
    local -a tr_argv=() bt_argv=()
    while [ "$1" != -- ]; do tr_argv+=("$1"); shift; done
    shift
    bt_argv=("$@")
    local tw="" bw="" tm="" bm=""
    log "start-up: $label"
    if [ -n "$TR" ] && check "trace-runner $label" "${tr_argv[@]}"; then
        tw=$(wall "${tr_argv[@]}"); tm=$(rss "${tr_argv[@]}")
    fi
    if [ -n "$BT" ] && check "bpftrace $label" "${bt_argv[@]}"; then
        bw=$(wall "${bt_argv[@]}"); bm=$(rss "${bt_argv[@]}")
    fi
    local tr_na="unsupported" bt_na="unsupported"
    [ -z "$TR" ] && tr_na="n/a"
    [ -z "$BT" ] && bt_na="n/a"
    START_ROWS+=("| $label | $(secs "$tw" "$tr_na") | $(secs "$bw" "$bt_na") | $(ratio "$bw" "$tw" faster) |")
    RSS_ROWS+=("| start-up: $label | $( [ -n "$tm" ] && mib "$tm" || echo "$tr_na") | $( [ -n "$bm" ] && mib "$bm" || echo "$bt_na") | $(ratio "$bm" "$tm" smaller) |")
}

startup_case "one-liner (openat count + exit)" -- "${TR:-true}" run -e "$SMALL" -- "${BT:-true}" -e "$SMALL"
for tool in ${BENCH_TOOLS:-runqlat opensnoop syscount}; do
    src=/usr/sbin/$tool.bt
    if [ ! -f "$src" ]; then note "$tool.bt: not found in /usr/sbin (bpftrace package)"; continue; fi
    add_exit "$src" >"$TMP/$tool.bt"
    startup_case "$tool.bt ($(grep -c . "$src") lines)" -- "${TR:-true}" run "$TMP/$tool.bt" -- "${BT:-true}" "$TMP/$tool.bt"
done

# 10 s trace holding a 10,000-key map, with dd making syscalls meanwhile.
MAPPROG='tracepoint:raw_syscalls:sys_enter { @[nsecs % 10000] = count(); }'
map_run() { # map_run ARGV...: sets MAP to "rss keys" (empty on failure)
    MAP=""
    [ -n "$TIME_BIN" ] || return 1
    "$TIME_BIN" -v -o "$TMP/time.txt" "$@" >"$TMP/map.out" 2>"$TMP/map.err" &
    local pid=$!
    BG_PIDS+=("$pid")
    sleep 1
    "$DD" if=/dev/zero of=/dev/null bs=1 count=$((DD_COUNT / 4)) 2>/dev/null
    wait "$pid"
    local m k
    m=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 * 1024 }' "$TMP/time.txt")
    k=$(grep -c '^@\[' "$TMP/map.out")
    [ -n "$m" ] && [ "$k" -gt 0 ] && MAP="$m $k"
}
log "peak RSS: ${MAP_SECS} s trace with a 10,000-key map"
tmap="" bmap=""
if [ -n "$TR" ]; then
    BPFTRACE_MAP_KEYS_MAX=10000 map_run "$TR" run --deadline "${MAP_SECS}s" -e "$MAPPROG" && tmap=$MAP ||
        note "trace-runner 10k-key map: unsupported ($(first_err "$TMP/map.err"))"
fi
if [ -n "$BT" ]; then
    BPFTRACE_MAP_KEYS_MAX=10000 map_run timeout -s INT "$MAP_SECS" "$BT" -e "$MAPPROG" && bmap=$MAP ||
        note "bpftrace 10k-key map: unsupported ($(first_err "$TMP/map.err"))"
fi
RSS_ROWS+=("| ${MAP_SECS} s trace, \`@[nsecs % 10000] = count()\` | $( [ -n "$tmap" ] && echo "$(mib "${tmap% *}") (${tmap#* } keys)" || echo unsupported) | $( [ -n "$bmap" ] && echo "$(mib "${bmap% *}") (${bmap#* } keys)" || echo unsupported) | $(ratio "${bmap% *}" "${tmap% *}" smaller) |")

# --- 3: per-event cost -----------------------------------------------------
BASES=()
EVENT_ROWS=()
# cell TIME BASE LINES: "1.666 s (alone 1.591 s): +19 ns[, 2.1M/4.0M lines]"
cell() {
    [ -n "${1:-}" ] || { echo unsupported; return; }
    local c
    c="$(secs "$1") (alone $(secs "$2")): +$(calc "%.0f" "($1 - $2) * 1e9 / $EVENTS") ns"
    [ -n "${3:-}" ] && c="$c; printed $3 of $((EVENTS * DD_RUNS)) events"
    echo "$c"
}
for prog in \
    'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }' \
    'tracepoint:raw_syscalls:sys_enter { @ = count(); }' \
    'tracepoint:raw_syscalls:sys_enter { @ = hist(args->id); }' \
    'tracepoint:raw_syscalls:sys_enter /comm == "benchdd"/ { printf("%d\n", args->id); }'; do
    log "per-event cost: $prog"
    UNDER_COUNT=0
    case "$prog" in *printf*) UNDER_COUNT=1 ;; esac
    tt="" tb="" tl="" bt="" bb="" bl="" tn="" bn=""
    if [ -n "$TR" ]; then
        tb=$(dd_median); BASES+=("$tb")
        under "trace-runner \`$prog\`" "$TR" run -e "$prog" && tt=$UNDER tl=$UNDER_LINES
    fi
    if [ -n "$BT" ]; then
        bb=$(dd_median); BASES+=("$bb")
        under "bpftrace \`$prog\`" "$BT" -e "$prog" && bt=$UNDER bl=$UNDER_LINES
    fi
    [ -n "$tt" ] && tn=$(calc "%.1f" "($tt - $tb) * 1e9 / $EVENTS")
    [ -n "$bt" ] && bn=$(calc "%.1f" "($bt - $bb) * 1e9 / $EVENTS")
    for who in trace-runner bpftrace; do
        lines=$tl; [ $who = bpftrace ] && lines=$bl
        [ -n "$lines" ] && awk "BEGIN { exit !($lines < 0.99 * $EVENTS * $DD_RUNS) }" &&
            note "$who printed $lines of $((EVENTS * DD_RUNS)) printf events: it dropped $(calc "%.0f" "100 - 100 * $lines / ($EVENTS * $DD_RUNS)")% (buffer full), so its printf figure is not comparable with a tracer that delivered them all"
    done
    EVENT_ROWS+=("| \`$prog\` | $(cell "$tt" "$tb" "$tl") | $(cell "$bt" "$bb" "$bl") | $(ratio "$tn" "$bn") |")
done
BASE=$(printf '%s\n' "${BASES[@]}" | median)

# --- 4: sizes --------------------------------------------------------------
IMAGE="${CARGO_TARGET_DIR:-$ROOT/target}/trace-runner-image.tar"
if [ ! -f "$IMAGE" ] && [ $SMOKE = 0 ] && command -v cargo >/dev/null; then
    log "building the image archive (cargo xtask image)"
    (cd "$ROOT" && cargo xtask image --out "$IMAGE" >&2) || log "cargo xtask image failed"
fi
bt_libs=0 bt_nlibs=0
if [ -n "$BT" ]; then
    while read -r lib; do
        s=$(size_of "$lib") && bt_libs=$((bt_libs + s)) && bt_nlibs=$((bt_nlibs + 1))
    done < <(ldd "$BT" 2>/dev/null | awk '/=>/ && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
fi
TR_SIZE=$( [ -n "$TR" ] && size_of "$TR")
BT_SIZE=$( [ -n "$BT" ] && size_of "$BT")
IMG_SIZE=$( [ -f "$IMAGE" ] && size_of "$IMAGE")
SIZE_ROWS=(
    "| trace-runner binary ($( [ -n "$TR" ] && (ldd "$TR" >/dev/null 2>&1 && echo dynamic || echo static))) | $(mib "$TR_SIZE") |"
    "| trace-runner image archive (\`cargo xtask image\`) | $( [ -n "$IMG_SIZE" ] && mib "$IMG_SIZE" || echo "not built") |"
    "| bpftrace binary | $(mib "$BT_SIZE") |"
    "| bpftrace + its $bt_nlibs shared libraries (LLVM, clang, bcc, ...) | $( [ -n "$BT_SIZE" ] && mib $((BT_SIZE + bt_libs)) || echo n/a) |"
)

# --- 5: plugin -------------------------------------------------------------
PLUGIN_ROWS=()
if [ -n "$KT" ]; then
    log "plugin: kubectl-trace run --dry-run=client"
    # A kubeconfig naming an unreachable server: --dry-run=client must not need one.
    cat >"$TMP/kubeconfig" <<'EOF'
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
EOF
    kw=""
    if check "kubectl-trace --dry-run=client" env KUBECONFIG="$TMP/kubeconfig" "$KT" run node/x --dry-run=client -o yaml -e "$SMALL"; then
        kw=$(wall env KUBECONFIG="$TMP/kubeconfig" "$KT" run node/x --dry-run=client -o yaml -e "$SMALL")
    fi
    PLUGIN_ROWS+=("| \`kubectl-trace run node/x --dry-run=client -o yaml -e ...\` | $(secs "$kw" unsupported) | $(mib "$(size_of "$KT")") |")
else
    PLUGIN_ROWS+=("| \`kubectl-trace run node/x --dry-run=client -o yaml -e ...\` | n/a | n/a |")
fi

# --- report ----------------------------------------------------------------
{
    echo "# trace-runner vs bpftrace"
    echo
    echo "Generated by \`bench/run.sh$( [ $SMOKE = 1 ] && echo ' --smoke')\`$( [ $SMOKE = 1 ] && echo ' (smoke mode: single runs, tiny counts; not a measurement)')."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- kernel: $(uname -r) ($(uname -m)), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, load average at start: $LOAD0 (other work on the machine skews every figure)"
    echo "- trace-runner: $( [ -n "$TR" ] && "$TR" --version 2>/dev/null | head -1) (\`${TR:-missing}\`)"
    echo "- bpftrace: $( [ -n "$BT" ] && "$BT" --version 2>/dev/null | head -1) (\`${BT:-missing}\`)"
    echo "- timing: $( [ -n "$HYPERFINE" ] && "$HYPERFINE" --version | head -1 || echo 'shell loop'), median of $RUNS runs after $WARMUP warm-up; peak RSS: \`/usr/bin/time -v\` \"Maximum resident set size\""
    echo
    echo "## 1. Start-up: exec → attached → exit (median wall time)"
    echo
    echo "| script | trace-runner | bpftrace | ratio |"
    echo "|---|---|---|---|"
    printf '%s\n' "${START_ROWS[@]}"
    echo
    echo "Corpus tools from \`/usr/sbin\` with \`exit();\` appended to their BEGIN block."
    echo
    echo "## 2. Peak RSS"
    echo
    echo "| run | trace-runner | bpftrace | ratio |"
    echo "|---|---|---|---|"
    printf '%s\n' "${RSS_ROWS[@]}"
    echo
    echo "The map run: \`BPFTRACE_MAP_KEYS_MAX=10000\` (bpftrace's map size defaults to 4096 keys), trace-runner \`--deadline ${MAP_SECS}s\`, bpftrace under \`timeout -s INT ${MAP_SECS}\`; a \`dd\` of $((DD_COUNT / 4)) bytes runs meanwhile to fill the keys; keys = \`@[...]\` lines printed at exit."
    echo
    echo "## 3. Per-event cost"
    echo
    echo "\`dd if=/dev/zero of=/dev/null bs=1 count=$DD_COUNT\` alone: **$(secs "$BASE")** (median over the cases). Each cell: dd's median time ($DD_RUNS runs) under the tracer, dd alone measured just before (paired, to follow the machine's load), and the time added per \`sys_enter\` event (events = 2 × count = $EVENTS: one read and one write per byte). dd runs as \`benchdd\` (a copy) so the printf filter matches only it; the printf scripts' output goes through a pipe to \`wc -l\` to count what was delivered (the count includes the \"Attaching\" line and dd's start-up syscalls)."
    echo
    echo "| script | trace-runner | bpftrace | trace-runner / bpftrace |"
    echo "|---|---|---|---|"
    printf '%s\n' "${EVENT_ROWS[@]}"
    echo
    echo "## 4. Size"
    echo
    echo "| artifact | size |"
    echo "|---|---|"
    printf '%s\n' "${SIZE_ROWS[@]}"
    echo
    echo "A bpftrace-based runner image carries at least bpftrace and its libraries (the row above) plus a distribution base; the reference kubectl-trace runner image is hundreds of MB (not pulled here: no registry access)."
    echo
    echo "## 5. Plugin"
    echo
    echo "| command | wall (median) | binary size |"
    echo "|---|---|---|"
    printf '%s\n' "${PLUGIN_ROWS[@]}"
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo
        echo "## Notes"
        echo
        printf -- '- %s\n' "${NOTES[@]}"
    fi
    echo
    echo "## Commands"
    echo
    echo '```'
    echo "trace-runner run -e '$SMALL'          # and: trace-runner run TOOL.bt"
    echo "bpftrace -e '$SMALL'                  # and: bpftrace TOOL.bt"
    echo "trace-runner run --deadline ${MAP_SECS}s -e '$MAPPROG'"
    echo "timeout -s INT $MAP_SECS bpftrace -e '$MAPPROG'"
    echo "dd if=/dev/zero of=/dev/null bs=1 count=$DD_COUNT   # alone, then while each tracer runs each script"
    echo "kubectl-trace run node/x --dry-run=client -o yaml -e '$SMALL'"
    echo '```'
} >"$TMP/report.md"

cat "$TMP/report.md"
if [ -n "$OUT" ]; then
    cp "$TMP/report.md" "$OUT" && log "wrote $OUT"
fi
