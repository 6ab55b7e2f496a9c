#!/usr/bin/env bash
# Everything that needs a GPU, in one command sized for a short GPU slot (default budget 330 s), ordered by
# value so that a kill at the limit still returns the most important facts:
#   install (+ compile kernels/*.cu) -> preflight (stops the suite when it fails) -> pytest -m gpu -> bench_train_step
#   -> compute-sanitizer memcheck of a few steps -> bench_conv -> ncu of one training step -> bench_elementwise
#   -> bench_precision (TF32/BF16 tensor-core passes vs PyTorch at the same precision)
# Usage:  profiling/gpu_suite.sh [RESULTS_DIR]     (default: profiling/results)
#         profiling/gpu_suite.sh --plan            (print each stage's time limit and exit)
# Environment: PYTHON (default python3), GPU_SUITE_SECONDS (overall budget, default 330; the stage limits
# below add up to 330 and are scaled to the budget).  A stage never runs past what is left of the budget.
# RESULTS_DIR gets at most 8 files: summary.md (read it first), suite.json, preflight.json, the benchmarks'
# <kind>-<gpu>-<date>.json (each valid JSON after every case) and gpu_suite_logs.tar.gz (every stage's log,
# pytest_gpu.xml, the ncu report and its CSV, nvidia-smi.txt).
set -u
PLAN="install:40 preflight:20 pytest_gpu:45 bench_train_step:70 memcheck:35 bench_conv:45 ncu:30 bench_elementwise:20
bench_precision:25"
if [[ ${1:-} == --plan ]]; then
    tr ' ' '\n' <<<"$PLAN" | tr ':' '\t'
    exit 0
fi
cd "$(dirname "$0")/.."
RESULTS=$(mkdir -p "${1:-profiling/results}" && cd "${1:-profiling/results}" && pwd)
LOGS="$RESULTS/gpu_suite_logs"
PY=${PYTHON:-python3}
BUDGET=${GPU_SUITE_SECONDS:-330}
START=$(date +%s)
STAGES="$LOGS/stages.tsv"
rm -rf "$LOGS"
mkdir -p "$LOGS"
: >"$STAGES"
export PYTHONUNBUFFERED=1

# On every exit, the early ones included: suite.json and summary.md from the stages so far, then the logs
# packed into one file.
finish() {
    "$PY" profiling/suite_report.py "$RESULTS" "$LOGS"
    tar -czf "$RESULTS/gpu_suite_logs.tar.gz" -C "$RESULTS" gpu_suite_logs && rm -rf "$LOGS"
    echo "results in $RESULTS (total $(($(date +%s) - START)) s); read summary.md first"
}
trap finish EXIT

limit_of() {  # the stage's share of the budget
    local entry
    for entry in $PLAN; do
        [[ ${entry%%:*} == "$1" ]] && echo $((${entry##*:} * BUDGET / 330)) && return
    done
}

# run_stage NAME COMMAND...: run COMMAND with the stage's time limit, log to LOGS/NAME.log, record it;
# returns COMMAND's exit status (1 when skipped).
run_stage() {
    local name=$1 limit
    limit=$(limit_of "$name")
    shift
    local left=$((BUDGET - ($(date +%s) - START)))
    if ((left < 5)); then
        printf '%s\tskipped\t-\t0\tout of time\n' "$name" >>"$STAGES"
        echo "== $name: skipped, out of time"
        return 1
    fi
    ((limit > left)) && limit=$left
    echo "== $name (limit ${limit}s): $*"
    local begin rc
    begin=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    local status=passed
    ((rc == 124 || rc == 137)) && status=timeout
    ((rc != 0 && rc != 124 && rc != 137)) && status=failed
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(($(date +%s) - begin))" "$*" >>"$STAGES"
    echo "   $status (rc $rc, $(($(date +%s) - begin)) s); last lines:"
    tail -n 5 "$LOGS/$name.log" | sed 's/^/   | /'
    return "$rc"
}

skip_stage() {
    printf '%s\tskipped\t-\t0\t%s\n' "$1" "$2" >>"$STAGES"
    echo "== $1: skipped ($2)"
}

find_tool() {  # on PATH, else the newest copy in the usual NVIDIA install folders
    command -v "$1" 2>/dev/null && return
    ls -d /usr/local/cuda/bin/"$1" /usr/local/cuda-*/bin/"$1" /opt/nvidia/nsight-compute/*/"$1" \
        2>/dev/null | sort -V | tail -n 1
}

timeout 10 nvidia-smi >"$LOGS/nvidia-smi.txt" 2>&1
# CUDA_HOME for numba-cuda's NVVM (pip wheels), no sync on CuPy arrays for an old numba-cuda: every stage.
eval "$("$PY" profiling/preflight.py --exports)"
# nvtx is an optional dependency: a carried wheel (see profiling/README.md) is installed with the project.
# Then kernels/*.cu are compiled into CuPy's disk cache, which a fresh machine needs longer for than the
# preflight may take.
run_stage install bash -c "'$PY' -m pip install --no-build-isolation --no-deps -e . $(ls .whl/nvtx-*.whl \
    2>/dev/null) && '$PY' profiling/preflight.py --compile"
if ! run_stage preflight "$PY" profiling/preflight.py "$RESULTS/preflight.json"; then
    echo "preflight failed (see preflight.json and summary.md): the rest would not give trustworthy numbers" >&2
    exit 1
fi

run_stage pytest_gpu env GPUCNN_TESTS_ON_GPU=1 "$PY" -m pytest -m gpu -q -p no:cacheprovider \
    --junitxml="$LOGS/pytest_gpu.xml" tests
run_stage bench_train_step "$PY" profiling/bench_train_step.py "$RESULTS" --repeat 5 --steps 5

SANITIZER=$(find_tool compute-sanitizer)
if [[ -n "$SANITIZER" ]]; then
    # Without CuPy's pool every array is its own cudaMalloc, so memcheck sees each array's bounds.
    run_stage memcheck "$SANITIZER" --tool memcheck --leak-check no --error-exitcode 1 \
        "$PY" profiling/profile_steps.py --model faces --steps 2 --warmup 1 --jit-graph off --no-memory-pool
else
    skip_stage memcheck "compute-sanitizer not found"
fi

run_stage bench_conv "$PY" profiling/bench_conv.py "$RESULTS" --repeat 10

NCU=$(find_tool ncu)
if [[ -n "$NCU" ]]; then
    # Every CUDA C kernel of one eager training step of the article model (3 conv forward, 3 dense GEMMs,
    # 5 conv backward, split-K reductions), basic section set (speed of light, launch statistics,
    # occupancy), at the GPU's own clocks like the benchmarks; then its details as CSV.
    run_stage ncu bash -c "'$NCU' --clock-control none --set basic -k 'regex:conv2d_|gemm_|split_k_reduce' \
        --force-overwrite -o '$LOGS/ncu_step' '$PY' profiling/profile_steps.py --model article --jit-graph off \
        --steps 1 --warmup 0 && '$NCU' --import '$LOGS/ncu_step.ncu-rep' --page details --csv \
        > '$LOGS/ncu_step_details.csv'"
else
    skip_stage ncu "ncu not found"
fi

run_stage bench_elementwise "$PY" profiling/bench_elementwise.py "$RESULTS" --repeats 10 --launches 100
run_stage bench_precision "$PY" profiling/bench_precision.py "$RESULTS" --repeat 5

# Exit status 0 only when no stage failed or ran out of time (summary.md says which did).
! cut -f 2 "$STAGES" | grep -q -x -e failed -e timeout
