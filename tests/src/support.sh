# The kernel support table: which probe types and features trace-runner attaches on the
# running kernel, and which of Debian's bpftrace tools bpftrace 0.17 itself attaches.
# Sourced after guest.sh inside a matrix guest (the ignored `support_table` test of
# tests/kernels.rs) or run on a host with TRACE_RUNNER, WORKLOAD, CALLS and BPFTRACE set.
# Defines `support ROW`, `support_all` and `support_bpftrace TOOL...`; each prints one
# `row NAME: yes|no (DETAIL)` line per probe type, feature or tool.

row() { echo "row $1: $2"; }

# probe NAME EXPECTED-LINE-REGEX WORKLOAD-ARGS -- PROGRAM: run PROGRAM around the
# workload and say whether its output has a line matching the regex.
probe() {
    local name=$1 want=$2 args=$3 prog=$4 out
    out=$(trace_while "$TRACE_RUNNER" run -e "$prog" -- "$WORKLOAD" $args 2>&1)
    if grep -qE "$want" <<<"$out"; then
        row "$name" yes
    else
        row "$name" "no ($(grep -m1 -iE 'error|cannot|warning' <<<"$out" | cut -c1-160))"
    fi
}

F='/comm == "km-workload"/'
# The name of the file a vfs_read reads (the dynamic loader reads libraries too).
NAME='str(args->file->f_path.dentry->d_name.name)'

# support ROW: measure one row (one trace-runner run each, to fit a case's time limit).
support() {
    case $1 in
    kprobe) probe kprobe "^@: $CALLS\$" "$CALLS" "kprobe:__x64_sys_getppid $F { @ = count(); }" ;;
    kretprobe) probe kretprobe "^@: $CALLS\$" "$CALLS" "kretprobe:__x64_sys_getppid $F { @ = count(); }" ;;
    kfunc) probe kfunc "^@\\[zero\\]: $((CALLS * 100))\$" "$CALLS read" "kfunc:vfs_read $F { @[$NAME] = sum(args->count); }" ;;
    kretfunc) probe kretfunc "^@\\[zero, 100\\]: $CALLS\$" "$CALLS read" "kretfunc:vfs_read $F { @[$NAME, retval] = count(); }" ;;
    kprobe_multi)
        # A wildcard attaches with one link unless the runner falls back.
        out=$(TRACE_RUNNER_DEBUG=1 "$TRACE_RUNNER" run --deadline 1s -e 'kprobe:vfs_read* { @ = count(); }' 2>&1)
        rc=$?
        if [ $rc = 0 ] && ! grep -q 'kprobe_multi link for' <<<"$out"; then
            row kprobe_multi yes
        else
            row kprobe_multi "no ($(grep -m1 -E 'kprobe_multi link for|error' <<<"$out" | cut -c1-160))"
        fi
        ;;
    tracepoint) probe tracepoint "^@: $CALLS\$" "$CALLS" "tracepoint:syscalls:sys_enter_getppid $F { @ = count(); }" ;;
    rawtracepoint) probe rawtracepoint "^@: [1-9]" "$CALLS" "rawtracepoint:sys_enter $F { @ = count(); }" ;;
    uprobe) probe uprobe "^@: 1\$" "$CALLS" "uprobe:$WORKLOAD:main { @ = count(); }" ;;
    profile) probe profile "^@: [1-9]" "$CALLS" "profile:hz:999 { @ = count(); }" ;;
    interval) probe interval "^@: [1-9]" "$CALLS" "interval:ms:10 { @ = count(); }" ;;
    btf) probe "BTF types" "^@\\[1\\]: $CALLS\$" "$CALLS" "tracepoint:syscalls:sys_enter_getppid $F { @[((struct task_struct *)curtask)->tgid == pid] = count(); }" ;;
    ringbuf) probe "ring buffer (printf)" "^x\$" "$CALLS" "tracepoint:syscalls:sys_enter_getppid $F { printf(\"x\\n\"); exit(); }" ;;
    *) echo "support: unknown row $1"; return 1 ;;
    esac
}

# Every row (on a host: no time limit).
support_all() {
    local r
    for r in kprobe kretprobe kfunc kretfunc kprobe_multi tracepoint rawtracepoint uprobe profile interval btf ringbuf; do
        support $r
    done
}

# support_bpftrace TOOL...: Debian's bpftrace tools (/usr/sbin/TOOL.bt) with bpftrace.
support_bpftrace() {
    require_program "$BPFTRACE"
    if [ -x "$BPFTRACE" ]; then
        for t in "$@"; do
            # bpftrace says "Attaching N probes" before attaching, and a kprobe wildcard it
            # cannot expand attaches nothing: the row gives the exit status, N, and the
            # first error or warning, to be read against the tool's probes.
            out=$(timeout -s INT 200 "$BPFTRACE" -e "$(grep -v "^#!" /usr/sbin/$t.bt) interval:s:1 { exit(); }" 2>&1)
            rc=$?
            row "bpftrace $t" "exit $rc, $(grep -m1 '^Attaching' <<<"$out") $(grep -c 'could not attach probe' <<<"$out") skipped: $(grep -o 'could not attach probe [^,]*' <<<"$out" | cut -d' ' -f5 | tr '\n' ' ')$(grep -v RLIMIT_MEMLOCK <<<"$out" | grep -m1 ERROR | cut -c1-140)"
        done
    fi
}
