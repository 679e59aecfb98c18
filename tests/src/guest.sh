# Shell helpers sourced by every case of the kernel matrix, inside the guest (bash, in
# the chroot of the host's root). Set by the job: TRACE_RUNNER, WORKLOAD (the
# km-workload binary, whose comm is "km-workload"), CALLS (how many getppid calls it
# makes), BPFTRACE.

# trace_while TRACER ARGS... -- COMMAND ARGS...
# Start TRACER in the background, wait until it prints "Attaching N probes" (every
# probe attached), run COMMAND, then stop TRACER with SIGINT so it prints its maps.
# Prints COMMAND's output, then TRACER's; returns TRACER's exit status (or 124 when it
# never attached, 125 when COMMAND failed). A TRACER still running $STOP_GRACE seconds
# (default 60) after SIGINT is killed (status 137).
trace_while() {
    local tracer=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do tracer+=("$1"); shift; done
    shift
    local log
    log=$(mktemp)
    "${tracer[@]}" >"$log" 2>&1 &
    local pid=$! i
    for i in $(seq 1200); do
        grep -q '^Attaching' "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^Attaching' "$log"; then
        echo "trace_while: ${tracer[0]} did not attach in 120 s"
        kill -KILL "$pid" 2>/dev/null
        cat "$log"
        return 124
    fi
    "$@" || { echo "trace_while: $* failed"; kill -KILL "$pid"; cat "$log"; return 125; }
    kill -INT "$pid"
    for i in $(seq $((${STOP_GRACE:-60} * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "trace_while: ${tracer[0]} did not stop on SIGINT in ${STOP_GRACE:-60} s"
        kill -KILL "$pid"
    fi
    wait "$pid"
    local rc=$?
    cat "$log"
    return $rc
}

# require_program PATH: skip this case (exit 77, which fails it under CI=true) when
# PATH is not an executable.
require_program() {
    if [ ! -x "$1" ]; then
        echo "SKIP: $1 is not installed"
        exit 77
    fi
}
