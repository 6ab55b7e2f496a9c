#!/usr/bin/env bash
# Everything that needs a GPU, in one command that fits 10 minutes on one H100:
#   install (editable) -> environment record -> pytest -m gpu -> every profiling/bench_*.py
#   -> nsys capture of a few training steps (skipped without nsys)
#   -> ncu report of the conv/GEMM kernels of one training step (skipped without ncu)
#   -> compute-sanitizer memcheck of a few steps of a small model (skipped without it)
#   -> kernel_resources.py.
# Usage:  profiling/gpu_suite.sh [RESULTS_DIR]     (default: profiling/results)
# Environment: PYTHON (default python3), GPU_SUITE_SECONDS (overall budget, default 570).
# Each stage gets its own time limit, cut to what is left of the budget; a stage that fails or times out
# does not stop the others.  RESULTS_DIR gets few files, so that all of them come back from a machine
# that returns only a handful: suite.json (every stage's status, on every exit), the benchmarks'
# <kind>-<gpu>-<date>.json, and gpu_suite_logs.tar.gz (each stage's log, pytest_gpu.xml, the ncu report,
# environment.json, nvidia-smi.txt).
set -u
cd "$(dirname "$0")/.."
RESULTS=$(mkdir -p "${1:-profiling/results}" && cd "${1:-profiling/results}" && pwd)
LOGS="$RESULTS/gpu_suite_logs"
PY=${PYTHON:-python3}
BUDGET=${GPU_SUITE_SECONDS:-570}
START=$(date +%s)
STAGES="$LOGS/stages.tsv"
rm -rf "$LOGS"
mkdir -p "$LOGS"
: >"$STAGES"
export PYTHONUNBUFFERED=1

# On every exit, the early ones included: suite.json from the stages so far, then the logs packed into one
# file.
finish() {
    "$PY" - "$RESULTS" "$LOGS" <<'EOF'
import csv, json, pathlib, sys
results, logs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
environment = logs / "environment.json"
with open(logs / "stages.tsv", newline="") as stages:
    rows = list(csv.reader(stages, delimiter="\t", quoting=csv.QUOTE_NONE))
summary = {"environment": json.loads(environment.read_text()) if environment.exists() else None,
           "stages": [dict(zip(("stage", "status", "rc", "seconds", "command"), row)) for row in rows],
           "logs": "gpu_suite_logs.tar.gz"}
(results / "suite.json").write_text(json.dumps(summary, indent=1) + "\n")
for stage in summary["stages"]:
    print(f"{stage['stage']:24s} {stage['status']:8s} {stage['seconds']:>4s} s")
EOF
    tar -czf "$RESULTS/gpu_suite_logs.tar.gz" -C "$RESULTS" gpu_suite_logs && rm -rf "$LOGS"
    echo "results in $RESULTS (total $(($(date +%s) - START)) s)"
}
trap finish EXIT

# run_stage NAME SECONDS COMMAND...: run COMMAND with a time limit, log to LOGS/NAME.log, record it;
# returns COMMAND's exit status (1 when skipped).
run_stage() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START)))
    if ((left < 15)); then
        printf '%s\tskipped\t-\t0\tout of time\n' "$name" >>"$STAGES"
        echo "== $name: skipped, out of time"
        return 1
    fi
    ((limit > left - 5)) && limit=$((left - 5))
    echo "== $name (limit ${limit}s): $*"
    local begin rc
    begin=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
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
    ls -d /usr/local/cuda/bin/"$1" /opt/nvidia/nsight-systems/*/bin/"$1" /opt/nvidia/nsight-compute/*/"$1" \
        2>/dev/null | sort -V | tail -n 1
}

# nvtx is an optional dependency: install a carried wheel (see profiling/README.md) when there is one.
if ls .whl/nvtx-*.whl >/dev/null 2>&1; then
    run_stage install_nvtx 60 "$PY" -m pip install --no-index --no-deps .whl/nvtx-*.whl
fi
run_stage install 90 "$PY" -m pip install --no-build-isolation --no-deps -e .
run_stage environment 30 "$PY" -c "import json, gpucnn.profiler as p; \
json.dump(p.environment(), open('$LOGS/environment.json', 'w'), indent=1); print(p.environment())"
timeout 30 nvidia-smi >"$LOGS/nvidia-smi.txt" 2>&1
# Without a GPU every stage below would "pass" by skipping or fail for that one reason: stop instead.  Asked
# of CuPy directly, so that a failure of the environment stage alone does not stop the suite.
if ! run_stage gpu_check 30 "$PY" -c "import sys, cupy; n = cupy.cuda.runtime.getDeviceCount(); \
print(n, 'CUDA device(s)'); sys.exit(n == 0)"; then
    echo "no GPU visible to CuPy (see gpu_check.log in gpu_suite_logs.tar.gz): nothing to run here" >&2
    exit 1
fi

run_stage pytest_gpu 150 env GPUCNN_TESTS_ON_GPU=1 "$PY" -m pytest -m gpu -q -p no:cacheprovider \
    --junitxml="$LOGS/pytest_gpu.xml" tests

# Every GPU benchmark (bench_reference.py times the cpu backend: not here), the train step first; each
# takes the results directory as its first argument.
for bench in profiling/bench_train_step.py $(ls profiling/bench_*.py | grep -v -e bench_train_step.py -e bench_reference.py); do
    name=$(basename "$bench" .py)
    limit=90
    [[ $name == bench_train_step ]] && limit=150
    run_stage "$name" "$limit" "$PY" "$bench" "$RESULTS"
done

NSYS=$(find_tool nsys)
if [[ -n "$NSYS" ]]; then
    capture=()
    # Record only the profiled steps when NVTX ranges exist (the nvtx package); else the whole run.
    if "$PY" -c "import nvtx" 2>/dev/null; then
        capture=(--capture-range=nvtx --nvtx-capture=steps@gpucnn --capture-range-end=stop)
    fi
    run_stage nsys 60 env NSYS_NVTX_PROFILER_REGISTER_ONLY=0 "$NSYS" profile -t cuda,nvtx "${capture[@]}" \
        --force-overwrite true -o "$LOGS/train_steps" \
        "$PY" profiling/profile_steps.py --model article --jit-graph off --steps 3
    if [[ -f "$LOGS/train_steps.nsys-rep" ]]; then
        run_stage nsys_stats 60 "$NSYS" stats --report cuda_gpu_kern_sum,nvtx_sum --format csv \
            --force-export=true -o "$LOGS/train_steps" "$LOGS/train_steps.nsys-rep"
    fi
else
    skip_stage nsys "nsys not found"
fi

NCU=$(find_tool ncu)
if [[ -n "$NCU" ]]; then
    # Every CUDA C kernel of one eager training step, basic section set (speed of light, launch
    # statistics, occupancy).  A run of exactly one step rather than a launch count: the article model
    # launches 11 conv/GEMM kernels a step (3 conv forward, 3 dense GEMMs, 5 conv backward, the heavy
    # conv2 backward last) and split-K reductions, so a count of 8 left the heaviest ones out.  Clock
    # control off: the timings nsys and the benchmarks see are at the GPU's own clocks too.
    run_stage ncu 90 "$NCU" --clock-control none --set basic -k "regex:conv2d_|gemm_|split_k_reduce" \
        --force-overwrite -o "$LOGS/ncu_step" \
        "$PY" profiling/profile_steps.py --model article --jit-graph off --steps 1 --warmup 0
    if [[ -f "$LOGS/ncu_step.ncu-rep" ]]; then
        run_stage ncu_report 30 bash -c "'$NCU' --import '$LOGS/ncu_step.ncu-rep' --page details --csv \
            > '$LOGS/ncu_step_details.csv'"
    fi
else
    skip_stage ncu "ncu not found"
fi

SANITIZER=$(find_tool compute-sanitizer)
if [[ -n "$SANITIZER" ]]; then
    # Without CuPy's pool every array is its own cudaMalloc, so memcheck sees each array's bounds.
    run_stage memcheck 90 "$SANITIZER" --tool memcheck --leak-check no --error-exitcode 1 \
        "$PY" profiling/profile_steps.py --model faces --steps 2 --warmup 1 --jit-graph off --no-memory-pool
else
    skip_stage memcheck "compute-sanitizer not found"
fi

if [[ -f profiling/kernel_resources.py ]]; then
    run_stage kernel_resources 60 "$PY" profiling/kernel_resources.py
fi


# Exit status 0 only when no stage failed or ran out of time (suite.json says which did).
! cut -f 2 "$STAGES" | grep -q -x -e failed -e timeout
