# Attach speed of many kprobes: trace-runner against bpftrace 0.17 in the same kernel.
# A guest script of the kernel matrix, run by its ignored `support_table` test
# (`cargo test -p kernel-matrix --test kernels support_table -- --ignored --nocapture`,
# which boots Debian's 6.1 and 6.12 under QEMU/TCG); it also runs on a host with
# TRACE_RUNNER and BPFTRACE set. Each run starts the tracer, attaches every function of
# the wildcard, stops after 100 ms and detaches: wall time, start-up included.
# Prints `bench WILDCARD TOOL: MS ms, Attaching N probes...` per run.

bench() {
    local pattern=$1 tool=$2 start ms out
    local prog="kprobe:$pattern { @ = count(); } interval:ms:100 { exit(); }"
    start=$(date +%s%N)
    if [ "$tool" = trace-runner ]; then
        out=$("$TRACE_RUNNER" run -e "$prog" 2>&1)
    else
        out=$("$BPFTRACE" -e "$prog" 2>&1)
    fi
    ms=$((($(date +%s%N) - start) / 1000000))
    echo "bench $pattern $tool: $ms ms, $(grep -m1 '^Attaching' <<<"$out")"
}

# ATTACH_PATTERN: one wildcard only (the matrix runs each in its own case).
patterns=('vfs_*' '__x64_sys_*')
if [ -n "${ATTACH_PATTERN:-}" ]; then
    patterns=("$ATTACH_PATTERN")
fi
for pattern in "${patterns[@]}"; do
    bench "$pattern" trace-runner
    if [ -x "$BPFTRACE" ]; then
        bench "$pattern" bpftrace
    fi
done
