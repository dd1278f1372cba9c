#!/bin/sh
# bench.sh: the benchmark behind `make bench` (bench/README.md says how it
# measures and why).
#
# Runs the fp32 FMA peak probe, then each trainer's `bench` subcommand
# BENCH_REPS times and keeps the repetition with the median time; the seed
# network also on 1 thread. Where a Python with torch and numpy is found,
# bench/torch_bench.py times the same training step in PyTorch (NCHW and
# channels_last, the faster kept), once its network's parameter count is
# the trainer's (its summary). Prints one table, and writes it as
# Markdown to BENCH_RESULTS (atomically; left alone when a run failed).
#
# Environment (make bench sets it):
#   BENCH_BIN      directory holding the built trainers and peak
#   BENCH_NETS     the .net files, in table order
#   BENCH_THREADS  threads (2)
#   BENCH_STEPS    timed steps per repetition; empty: enough for about
#                  BENCH_SECONDS per repetition, at least 5, at most 200
#   BENCH_SECONDS  (3)
#   BENCH_REPS     repetitions (3)
#   BENCH_SCALING  the network also run on 1 thread (seed)
#   BENCH_RESULTS  the Markdown file (bench/results.md); empty: none
#   BENCH_TORCH    torch_bench.py
#   BENCH_COMMAND  the command to show in the header
#   CC, BENCH_CFLAGS  shown in the header (the trainers are built by make)
#   PYTHON         a Python with torch and numpy; else /usr/bin/python3,
#                  python3, python are tried; PYTHON=none skips PyTorch
#   BENCH_BLAS_DIR a directory with an optimised libblas.so.3 for PyTorch's
#                  Linear layers (put first in LD_LIBRARY_PATH for its runs)
set -u
: "${BENCH_BIN:?}" "${BENCH_NETS:?}" "${BENCH_TORCH:?}"
THREADS=${BENCH_THREADS:-2}
STEPS=${BENCH_STEPS:-}
SECONDS_PER_REP=${BENCH_SECONDS:-3}
REPS=${BENCH_REPS:-3}
SCALING=${BENCH_SCALING:-seed}
RESULTS=${BENCH_RESULTS:-}
COMMAND=${BENCH_COMMAND:-bench/bench.sh}

work=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-bench.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
failed=0

note() { printf '%s\n' "$*" >&2; }

# field "key" LINE: the number after "key" in a bench line, e.g.
# field ms/step "median 14.354 ms/step ..." -> 14.354
after() { printf '%s\n' "$2" | awk -v k="$1" '{ for (i = 2; i <= NF; i++) if ($i == k) print $(i - 1) }'; }

# ---- the machine ------------------------------------------------------------
date_now=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
grep -q '^flags.* hypervisor' /proc/cpuinfo 2>/dev/null && cpu="$cpu (a virtual machine)"
cores=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null || echo '?')
isa=$(grep -o -w 'avx512f\|avx2\|fma' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ' | sed 's/ $//')
cc_version=$(${CC:-cc} --version 2>/dev/null | head -n 1)

# busy_percent: the share of all CPUs that other processes used over one
# second, before we start (from /proc/stat).
busy_percent() {
    a=$(head -n 1 /proc/stat 2>/dev/null) || { echo 0; return; }
    sleep 1
    b=$(head -n 1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ idle[NR] = $5 + $6; t = 0; for (i = 2; i <= NF; i++) t += $i; tot[NR] = t }
        END { d = tot[2] - tot[1]; printf "%d\n", (d > 0 ? 100 * (1 - (idle[2] - idle[1]) / d) + 0.5 : 0) }'
}
busy=$(busy_percent)

# The CPU time all processes used (jiffies, from /proc/stat) and the wall
# clock at the start: at the end, what the benchmark's own processes did not
# use of it is what others used while it ran.
cpu_jiffies() { head -n 1 /proc/stat 2>/dev/null | awk '{ print $2 + $3 + $4 + $7 + $8 + $9 }'; }
jiffies0=$(cpu_jiffies)
wall0=$(date +%s)

# others_percent: the share of all CPUs used by other processes since the
# start; run `times >"$work/times"` first, in this shell (not in the $(...)
# subshell, which has no children yet), for our children's CPU time.
others_percent() {
    ours=$(sed -n 2p "$work/times" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } print t }')
    printf '%s\n' "$jiffies0 $(cpu_jiffies) $wall0 $(date +%s) $ours $(getconf CLK_TCK) $cores" |
        awk '{ used = ($2 - $1) / $6 - $5; wall = ($4 - $3) * $7
               p = wall > 0 ? 100 * used / wall : 0; printf "%d\n", (p < 0 ? 0 : p + 0.5) }'
}

# ---- PyTorch ---------------------------------------------------------------
py=
torch_version=
torch_blas=
blas_dir=${BENCH_BLAS_DIR:-}
torch_ld=${blas_dir}${blas_dir:+${LD_LIBRARY_PATH:+:}}${LD_LIBRARY_PATH:-}
if [ "${PYTHON:-}" != none ]; then
    for p in ${PYTHON:-} /usr/bin/python3 python3 python; do
        if "$p" -c 'import torch, numpy' >/dev/null 2>&1; then
            py=$p
            torch_version=$("$py" -c 'import torch; print(torch.__version__)')
            break
        fi
    done
fi

echo "== cnnc benchmark, $date_now"
echo "== CPU: $cpu, $cores logical CPUs ($isa)"
echo "== compiler: $cc_version"
if [ -n "$py" ]; then
    echo "== PyTorch $torch_version ($py)"
elif [ "${PYTHON:-}" = none ]; then
    echo "== PyTorch: skipped (PYTHON=none); its columns are '-'"
else
    echo "== PyTorch: no Python with torch and numpy found (tried ${PYTHON:+$PYTHON, }/usr/bin/python3, python3, python); its columns are '-'"
fi
echo "== command: $COMMAND"
if [ "$busy" -gt 10 ]; then
    note "bench.sh: warning: other processes used ${busy}% of the CPUs just before the run;"
    note "bench.sh: warning: the figures below will be low and noisy"
fi

# ---- the FMA peak ----------------------------------------------------------
if peak_out=$("$BENCH_BIN/peak" --threads "$THREADS" 2>&1); then
    peak1=$(printf '%s\n' "$peak_out" | sed -n 's/^peak threads=1 gflops=\([0-9.]*\).*/\1/p')
    peakn=$(printf '%s\n' "$peak_out" | sed -n "s/^peak threads=$THREADS gflops=\\([0-9.]*\\).*/\\1/p")
    peak_line=$(printf '%s\n' "$peak_out" | tail -n 1)
else
    note "bench.sh: the peak probe failed: $peak_out"
    peak1='' peakn='' peak_line="fp32 FMA peak: not measured"
    failed=1
fi
echo "== $peak_line"

# ---- one trainer -------------------------------------------------------------
# run_ours NAME THREADS STEPS WARMUP: BENCH_REPS runs; sets ms, ips, gflops
# (of the run with the median time; the lower middle one for even counts),
# rss (the largest) and batch; returns 1 when a run failed.
run_ours() {
    : >"$work/$1.$2.runs"
    r=0
    while [ "$r" -lt "$REPS" ]; do
        if ! out=$("$BENCH_BIN/$1" bench --threads "$2" --steps "$3" --warmup "$4" 2>&1); then
            note "bench.sh: $1 bench failed: $out"
            return 1
        fi
        line=$(printf '%s\n' "$out" | grep '^median ')
        batch=$(printf '%s\n' "$out" | sed -n 's/^bench .*: batch \([0-9]*\)[, ].*/\1/p')
        printf '%s %s %s %s\n' "$(after ms/step "$line")" "$(after images/s "$line")" \
            "$(after GFLOP/s "$line")" "$(after MiB "$line")" >>"$work/$1.$2.runs"
        r=$((r + 1))
    done
    runs=$work/$1.$2.runs
    rss=$(awk '$4 > m { m = $4 } END { print m }' "$runs")
    # shellcheck disable=SC2046
    set -- $(sort -n "$runs" | sed -n "$(((REPS + 1) / 2))p")
    ms=$1 ips=$2 gflops=$3
    [ -n "$ms" ]
}

# run_torch NET THREADS STEPS WARMUP LAYOUT...: each layout in its own process;
# sets tms, tlayout, trss of the fastest, or "-". A run whose network has
# another parameter count than the trainer's (params, when known) is not the
# same network: its time is left out and the benchmark counts as failed.
run_torch() {
    tms=- tlayout=- trss=-
    [ -n "$py" ] || return 0
    net=$1 th=$2 st=$3 wu=$4
    shift 4
    for layout in "$@"; do
        if ! out=$(LD_LIBRARY_PATH=$torch_ld "$py" "$BENCH_TORCH" "$net" --threads "$th" --steps "$st" --warmup "$wu" \
            --reps "$REPS" --layout "$layout" 2>&1); then
            note "bench.sh: torch_bench.py $net --layout $layout failed: $(printf '%s\n' "$out" | tail -n 3)"
            continue
        fi
        tparams=$(printf '%s\n' "$out" | sed -n 's/^params //p')
        if [ -n "$params" ] && [ "$tparams" != "$params" ]; then
            note "bench.sh: torch_bench.py built $net with ${tparams:-no} parameters, the trainer has $params;"
            note "bench.sh: not the same network, so its PyTorch time is left out"
            failed=1
            continue
        fi
        line=$(printf '%s\n' "$out" | grep '^median ')
        [ -n "$torch_blas" ] || torch_blas=$(printf '%s\n' "$out" | sed -n 's/^blas //p')
        m=$(after ms/step "$line")
        if [ "$tms" = - ] || awk -v a="$m" -v b="$tms" 'BEGIN { exit !(a < b) }'; then
            tms=$m tlayout=$layout trss=$(after MiB "$line")
        fi
    done
}

# ---- the networks --------------------------------------------------------------
# rows: name|threads|batch|ms|ips|gflops|peak|rss|tms|tlayout|trss|scaling
: >"$work/rows"
for net in $BENCH_NETS; do
    name=$(basename "$net" .net)
    if [ ! -x "$BENCH_BIN/$name" ]; then
        note "bench.sh: no trainer $BENCH_BIN/$name"
        failed=1
        continue
    fi
    # The trainer's parameter count (its summary's total), for run_torch.
    params=$("$BENCH_BIN/$name" summary 2>/dev/null |
        awk '$1 == "total" { gsub(",", "", $2); print $2; exit }')
    # Steps per repetition: BENCH_STEPS, or from one probe step.
    st=$STEPS
    if [ -z "$st" ]; then
        probe=$("$BENCH_BIN/$name" bench --threads "$THREADS" --steps 1 --warmup 1 2>/dev/null |
            grep '^median ')
        pms=$(after ms/step "$probe")
        st=$(awk -v ms="${pms:-1000}" -v s="$SECONDS_PER_REP" \
            'BEGIN { n = ms > 0 ? int(s * 1000 / ms + 0.5) : 200; print (n < 5 ? 5 : (n > 200 ? 200 : n)) }')
    fi
    wu=$(awk -v n="$st" 'BEGIN { w = int(n / 5); print (w < 1 ? 1 : (w > 3 ? 3 : w)) }')
    # layouts: one word or two, split on purpose where it is passed on
    layouts=nchw
    grep -q '^[^#]*Conv' "$net" && layouts="nchw channels_last"

    counts=$THREADS
    [ "$name" = "$SCALING" ] && [ "$THREADS" -ne 1 ] && counts="$THREADS 1"
    ms_n='' best_layout=-
    for th in $counts; do
        echo "-- $name: $th thread(s), $REPS x $st steps after $wu warm-up" >&2
        if ! run_ours "$name" "$th" "$st" "$wu"; then
            failed=1
            echo "$name|$th|-|failed|-|-|-|-|-|-|-|-" >>"$work/rows"
            continue
        fi
        if [ "$th" = "$THREADS" ]; then
            # shellcheck disable=SC2086
            run_torch "$net" "$th" "$st" "$wu" $layouts
            ms_n=$ms
            best_layout=$tlayout
            pk=$peakn
        else
            # PyTorch on 1 thread in the layout that won on THREADS only.
            if [ "$best_layout" != - ]; then
                run_torch "$net" "$th" "$st" "$wu" "$best_layout"
            else
                # shellcheck disable=SC2086
                run_torch "$net" "$th" "$st" "$wu" $layouts
            fi
            pk=$peak1
        fi
        pct=-
        [ -n "$pk" ] && pct=$(awk -v g="$gflops" -v p="$pk" 'BEGIN { printf "%.1f", 100 * g / p }')
        scale=-
        [ "$th" != "$THREADS" ] && [ -n "$ms_n" ] &&
            scale=$(awk -v a="$ms" -v b="$ms_n" 'BEGIN { printf "%.2f", a / b }')
        echo "$name|$th|$batch|$ms|$ips|$gflops|$pct|$rss|$tms|$tlayout|$trss|$scale" >>"$work/rows"
    done
done

# ---- the table -------------------------------------------------------------------
# Columns: one row per network and thread count; ratio = PyTorch ms / ours
# (above 1: ours is faster); 1T/NT = 1-thread time over THREADS-thread time.
table() { # $1 = text or md
    awk -F'|' -v fmt="$1" -v T="$THREADS" '
    function ratio(t, o) { return (t == "-" || o == "-" || o == "failed") ? "-" : sprintf("%.2f", t / o) }
    BEGIN {
        h[1] = "network"; h[2] = "threads"; h[3] = "batch"; h[4] = "ms/step"; h[5] = "images/s"
        h[6] = "GFLOP/s"; h[7] = "% FMA peak"; h[8] = "peak RSS MiB"; h[9] = "PyTorch ms/step"
        h[10] = "PyTorch layout"; h[11] = "PyTorch RSS MiB"; h[12] = "PyTorch/ours"
        h[13] = "1T/" T "T time"; n = 13
    }
    { for (i = 1; i <= 11; i++) c[NR, i] = $i
      c[NR, 12] = ratio($9, $4); c[NR, 13] = $12; rows = NR }
    END {
        for (i = 1; i <= n; i++) { w[i] = length(h[i]); for (r = 1; r <= rows; r++) if (length(c[r, i]) > w[i]) w[i] = length(c[r, i]) }
        if (fmt == "md") {
            line = "|"; sep = "|"
            for (i = 1; i <= n; i++) { line = line " " h[i] " |"; sep = sep (i <= 3 ? ":---|" : "---:|") }
            print line; print sep
            for (r = 1; r <= rows; r++) { line = "|"; for (i = 1; i <= n; i++) line = line " " c[r, i] " |"; print line }
        } else {
            line = ""
            for (i = 1; i <= n; i++) line = line sprintf(i <= 1 ? "%-*s" : "  %*s", w[i], h[i])
            print line
            for (r = 1; r <= rows; r++) { line = ""; for (i = 1; i <= n; i++) line = line sprintf(i <= 1 ? "%-*s" : "  %*s", w[i], c[r, i]); print line }
        }
    }' "$work/rows"
}

times >"$work/times"
others=$(others_percent)
echo
table text
echo
echo "ms/step: median step time (the median repetition of $REPS); % FMA peak: GFLOP/s over the"
echo "probe's peak at the same thread count; PyTorch/ours above 1: cnnc is faster."
echo "Both sides time a step at Train's lr, without its schedule, augmentation, label"
echo "smoothing or clipping (bench/README.md)."
[ -n "$torch_blas" ] && echo "PyTorch's BLAS (its Dense layers): $torch_blas"
# Debian's reference BLAS lives in .../blas/ (OpenBLAS in .../openblas-*/).
reference_blas=
case " $torch_blas" in
*/blas/libblas.so*) reference_blas=1 ;;
esac
if [ -n "$reference_blas" ]; then
    note "bench.sh: warning: PyTorch runs on the unoptimised reference BLAS, which makes its"
    note "bench.sh: warning: Dense layers slow; see bench/README.md (BENCH_BLAS_DIR)"
fi
echo "Other processes used ${busy}% of the CPUs in the second before the run, ${others}% during it."
if [ "$others" -gt 10 ]; then
    note "bench.sh: warning: other processes used ${others}% of the CPUs during the run;"
    note "bench.sh: warning: the figures above are low and noisy"
fi

if [ -n "$RESULTS" ]; then
    if [ "$failed" -ne 0 ]; then
        note "bench.sh: a run failed; $RESULTS is left as it was"
    else
        tmp="$RESULTS.tmp.$$"
        {
            echo "# cnnc benchmark results"
            echo
            echo "Written by \`make bench\` (bench/bench.sh); how it measures: [README.md](README.md)."
            echo
            echo "- date: $date_now"
            echo "- CPU: $cpu, $cores logical CPUs ($isa)"
            echo "- compiler: $cc_version; trainers built with \`${BENCH_CFLAGS:-?}\`"
            echo "- $peak_line"
            if [ -n "$py" ]; then
                echo "- PyTorch $torch_version on the CPU, float32, same batch and threads;"
                if [ -n "$reference_blas" ]; then
                    echo "  its BLAS (Dense layers): $torch_blas, the unoptimised"
                    echo "  reference BLAS: PyTorch's Dense layers are slow here"
                else
                    echo "  its BLAS (Dense layers): ${torch_blas:-?}"
                fi
            else
                echo "- PyTorch: not found, its columns are '-'"
            fi
            echo "- command: \`$COMMAND\`"
            echo "- other processes used ${busy}% of the CPUs in the second before the run,"
            echo "  ${others}% during it$( [ "$busy" -gt 10 ] || [ "$others" -gt 10 ] &&
                echo ': the figures are low and noisy')"
            echo
            table md
            echo
            echo "ms/step is the median step time of the median repetition (of $REPS); % FMA"
            echo "peak is GFLOP/s over the probe's peak at the same thread count;"
            echo "PyTorch/ours above 1 means cnnc is faster; 1T/${THREADS}T time is the"
            echo "1-thread step time over the ${THREADS}-thread one. Both sides time a step"
            echo "at Train's lr, without its schedule, augmentation, label smoothing or"
            echo "clipping."
        } >"$tmp"
        if [ -s "$tmp" ] && mv -f "$tmp" "$RESULTS"; then
            echo "== wrote $RESULTS"
        else
            note "bench.sh: could not write $RESULTS"
            failed=1
        fi
        rm -f "$tmp"
    fi
fi
exit "$failed"
