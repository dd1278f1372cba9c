#!/bin/sh
# profile.sh: where a trainer's training step spends its time, per layer and
# phase, from perf's samples.
#
#   bench/profile.sh TRAINER [THREADS [STEPS]]
#   e.g. make -C models seed && bench/profile.sh models/seed 2
#
# Runs `TRAINER bench` under `perf record` and sorts the samples by
# function. The generated code names its functions after the layers and
# the phases (C2_forward, C2_backward_weights, C2_backward_data, D1_forward,
# ...; OpenMP's outlined loops add ._omp_fn.N, which is dropped here), so a
# function is a (layer, phase). The rest is grouped: the update and the
# lanes' gradient sum, the uint8 conversion of the batch, OpenMP's waiting,
# memset. Prints, per row, the share of all samples and the CPU time per
# step it stands for (share x ms/step x threads). Needs perf (Debian's
# linux-perf); skips with exit 77 without it.
set -u
trainer=${1:?usage: bench/profile.sh TRAINER [THREADS [STEPS]]}
threads=${2:-2}
steps=${3:-30}
command -v perf >/dev/null 2>&1 || { echo "profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-profile.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

if ! perf record -q -F 1999 -o "$work/perf.data" -- "$trainer" bench --threads "$threads" \
        --steps "$steps" --warmup 2 >"$work/bench.out" 2>&1; then
    cat "$work/bench.out" >&2
    echo "profile.sh: perf record failed" >&2
    exit 1
fi
ms=$(awk '/ms\/step/ { for (i = 2; i <= NF; i++) if ($i == "ms/step") print $(i - 1) }' "$work/bench.out")
perf report -q -i "$work/perf.data" --no-children --sort dso,symbol -g none --percent-limit 0 \
    --stdio 2>/dev/null >"$work/report"
tail -n 1 "$work/bench.out"
awk -v ms="$ms" -v threads="$threads" '
# A row of the report: "  7.05%  seed  [.] C2_backward_weights._omp_fn.0"
function group(dso, sym,    s) {
    s = sym
    sub(/\._omp_fn\.[0-9]+$/, "", s)
    sub(/_p[0-9]+$/, "", s)    # a parallel loop of the phase (emit_parallel)
    sub(/\.(part|isra|constprop)\.[0-9]+$/, "", s)
    if (dso ~ /libgomp/) return "(OpenMP: waiting, scheduling)"
    if (dso ~ /kernel/ || s ~ /^clear_page/) return "(kernel: first touch of memory, page faults)"
    if (s ~ /^(worker_main|run_chunk|help_any|rt_pool_run|wait_done)$/) return "(thread pool: claiming, waiting)"
    if (s ~ /^batchnorm[0-9]*_|_(stats|combine|bsums|bcombine)$/ && s !~ /_(forward|backward)$/) {
        sub(/_(stats|combine|bsums|bcombine)$/, "_statistics", s); return s }
    if (s ~ /memset/) return "(memset)"
    if (s ~ /^(update_all|add_lanes)$/) return "(update: optimizer, lanes summed)"
    if (s ~ /^rt_data_inputs$/) return "(batch: uint8 to real)"
    if (s ~ /_weight_sums$/) { sub(/_weight_sums$/, "_backward_weights", s); return s }
    if (s ~ /_forward_sample$/) { sub(/_forward_sample$/, "_forward", s); return s }
    if (s ~ /_(forward|backward|backward_weights|backward_data|statistics)$/) return s
    return "(other)"
}
{
    pct = $1; sub(/%$/, "", pct)
    dso = $2
    sym = ""
    for (i = 3; i < NF; i++) if ($i == "[.]" || $i == "[k]") { sym = $(i + 1); break }
    share[group(dso, sym)] += pct
}
END {
    printf "%7s %12s  %s\n", "share", "CPU ms/step", "function (layer_phase) or group"
    for (g in share)
        printf "%6.2f%% %12.2f  %s\n", share[g], share[g] / 100 * ms * threads, g | "sort -rn"
    close("sort -rn")
}' "$work/report"
