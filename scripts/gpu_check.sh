#!/usr/bin/env bash
# One prepared check of seqmodels on a CUDA GPU (docs/gpu.md), in at most GPU_CHECK_SECONDS (480) in all:
#   setup  the environment: python, torch, CUDA, cuDNN, the GPU; then every task's data is prepared
#          (cached) in the background while stage 1 runs;
#   1      pytest -m cuda tests/test_cuda.py: CPU and GPU steps equal, dense and packed equal, no sync;
#   2      every task trained GPU_CHECK_STEPS (300) batches in float32 and in bf16, each with its GPU
#          preset: final training loss, val/test metric, tokens/s, peak GPU memory;
#   3      scripts/benchmark_throughput.py, model.rnn_impl=dense against packed, at several batch sizes;
#   4      experiment=ptb_medium for the minutes left: validation perplexity per epoch.
# Each stage and run has a time budget (timeout); a stage that fails or runs out of time is recorded and
# the script goes on. OUT_DIR/results.md holds one table of every stage; OUT_DIR/logs/ the logs;
# OUT_DIR/logs.tar.gz both, with each run's metrics.json and train.log (no checkpoints), in one file.
#
#   scripts/gpu_check.sh OUT_DIR              on the GPU machine
#   scripts/gpu_check.sh --dry OUT_DIR        (or GPU_CHECK_DRY=1) every stage on the CPU, tiny models and
#                                             limits, in a minute or two: checks this script itself
#   scripts/gpu_check.sh --fetch-wheels DIR   where pip reaches the package index: the wheels that an
#                                             offline GPU machine lacks (Environment, below)
#
# Data: $SEQMODELS_DATA_DIR (else data/), read as train.py reads it and never downloaded
# (data.download=false); a task whose folder is missing there is skipped with a note. Prepared data is
# cached in $SEQMODELS_CACHE_DIR, else OUT_DIR/cache.
#
# Environment, the first that works: GPU_CHECK_PYTHON; .venv if it imports torch, hydra and seqmodels;
# .venv made as the README says (torch==2.13.0 alone, then pip install -e ".[dev]"), which needs the
# package index (GPU_CHECK_OFFLINE=1 skips the try); else, on an offline machine whose python3
# (GPU_CHECK_BASE_PYTHON) holds a CUDA build of torch, .venv over that python's packages, seqmodels from
# src/ (as an editable install puts it on the path), and the packages it lacks from the wheels in
# GPU_CHECK_WHEELS (default .whl/, see --fetch-wheels).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
REPORT=(python3 "$ROOT/scripts/gpu_check_report.py")  # standard library only: runs whatever torch does
DRY=${GPU_CHECK_DRY:-0}

usage() {
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

fetch_wheels() {
    # Pure-Python wheels of what seqmodels imports beyond the GPU image's packages (hydra and its
    # config library; antlr4's runtime is published as a source archive only, so it is built here).
    local dir=$1 python_version=${GPU_CHECK_WHEEL_PYTHON:-3.12}
    mkdir -p "$dir" || exit 1
    python3 -m pip download --no-deps --only-binary=:all: --python-version "$python_version" \
        --implementation cp --platform manylinux2014_x86_64 -d "$dir" \
        "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" || exit 1
    python3 -m pip wheel --no-deps -w "$dir" "antlr4-python3-runtime==4.9.3" || exit 1
    ls -l "$dir"
}

case "${1:-}" in
    --dry) DRY=1; shift ;;
    --fetch-wheels) [[ $# -eq 2 ]] || usage; fetch_wheels "$2"; exit 0 ;;
    -h | --help | "") usage ;;
esac
[[ $# -eq 1 ]] || usage

mkdir -p "$1" || exit 1
OUT=$(cd "$1" && pwd)
LOGS=$OUT/logs
RUNS=$OUT/runs
ROWS=$OUT/rows.jsonl
ENV_JSON=$LOGS/env.json
mkdir -p "$LOGS" "$RUNS"
: >"$ROWS"
export SEQMODELS_CACHE_DIR=${SEQMODELS_CACHE_DIR:-$OUT/cache}
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1
DATA=${SEQMODELS_DATA_DIR:-$ROOT/data}

if [[ $DRY == 1 ]]; then
    MODE=dry DEVICE=cpu
    TOTAL=${GPU_CHECK_SECONDS:-420} STAGE1=120 STAGE2=240 RUN=60 STAGE3=90 BENCH=60 RESERVE=5 LONG_MIN=10
    PREPARE=120
    STEPS=3 VAL=1 BENCH_SIZES=(8) BENCH_ARGS=(--batches 2 --warmup 1 --threads 1)
    COMMON=(trainer.num_threads=1)
else
    MODE=gpu DEVICE=cuda
    TOTAL=${GPU_CHECK_SECONDS:-480} STAGE1=75 STAGE2=230 RUN=75 STAGE3=80 BENCH=40 RESERVE=20 LONG_MIN=40
    STEPS=${GPU_CHECK_STEPS:-300} VAL=${GPU_CHECK_VAL_BATCHES:-5} BENCH_SIZES=(32 128 512)
    BENCH_ARGS=(--batches 30 --warmup 5) PREPARE=150
    COMMON=()
fi
COMMON+=(data.download=false)
START=$SECONDS

# Each task: its folder under the data root, its preset, and (dry mode) the overrides that make it tiny.
TASKS=(imdb conll2003 ptb wikitext2 multi30k)
declare -A FOLDER=([imdb]=imdb [conll2003]=conll2003 [ptb]=ptb [wikitext2]=wikitext-2 [multi30k]=multi30k)
declare -A PRESET=([imdb]=imdb_gpu [conll2003]=conll2003_gpu [ptb]=ptb_medium [wikitext2]=wikitext2
    [multi30k]=multi30k_best)
declare -A TINY=(
    [imdb]="model.embedding_dim=8 model.hidden_size=8 data.batch_size=8 data.max_length=50"
    [conll2003]="model.embedding_dim=8 model.hidden_size=8 model.char_dim=4 model.char_filters=4 data.batch_size=8"
    [ptb]="model.embedding_dim=8 model.hidden_size=8 data.batch_size=4 data.bptt=10"
    [wikitext2]="model.embedding_dim=8 model.hidden_size=8 data.batch_size=4 data.bptt=10"
    [multi30k]="model.embedding_dim=8 model.hidden_size=8 model.decoder_hidden_size=16 data.vocab_size=60
        data.batch_size=8 decode.beam_size=2"
)

elapsed() { echo $((SECONDS - START)); }
left() { echo $((TOTAL - (SECONDS - START))); }
# The smaller of a wanted budget and the time left before the reserve kept for the table.
cap() {
    local want=$1 rest=$(($(left) - RESERVE))
    echo $((want < rest ? want : rest))
}
# why a run has no time left: its stage's budget or the whole check's
spent() {
    if ((stage_end - SECONDS < 10)); then
        echo "the stage's $1 s were spent"
    else
        echo "the check's $TOTAL s were spent"
    fi
}
# Sets `budget`: at most PER_RUN seconds, within the stage's end and the check's; under 10 s the run is
# recorded as skipped for time and this fails.   run_budget STAGE RUN PER_RUN STAGE_SECONDS
run_budget() {
    local until_stage_end=$((stage_end - SECONDS))
    budget=$(cap $((until_stage_end < $3 ? until_stage_end : $3)))
    if ((budget < 10)); then
        skip_all "$1" "$2" "$(spent "$4")"
        return 1
    fi
}
tiny() { [[ $DRY == 1 ]] && echo "${TINY[$1]}"; }
have_data() { [[ -d $DATA/${FOLDER[$1]} ]]; }

render() {
    "${REPORT[@]}" table "$ROWS" "$OUT/results.md" --env "$ENV_JSON" --mode "$MODE" --seconds "$(elapsed)" \
        --when "$(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname), $(getconf _NPROCESSORS_ONLN) CPU cores" || true
}

# add KIND STAGE RUN STATUS SECONDS LOG [report options...]: one row of the table, rewritten at once
add() {
    local kind=$1 stage=$2 run=$3 status=$4 seconds=$5 log=$6
    shift 6
    "${REPORT[@]}" add "$ROWS" --kind "$kind" --stage "$stage" --run "$run" --status "$status" \
        --seconds "$seconds" --log "${log#"$OUT"/}" "$@" || echo "gpu_check: could not add the row of $run" >&2
    render
}

# timed BUDGET LOG COMMAND...: runs COMMAND under `timeout` with its output in LOG; sets STATUS and TOOK.
timed() {
    local budget=$1 log=$2
    shift 2
    local began=$SECONDS code
    echo "\$ $*" >"$log"
    timeout -k 30 "$budget" "$@" >>"$log" 2>&1
    code=$?
    TOOK=$((SECONDS - began))
    case $code in
        0) STATUS=ok ;;
        124 | 137) STATUS="TIMED OUT after ${budget} s" ;;
        *) STATUS="FAILED (exit $code): $(grep -m1 -E '^(error|Error|[A-Za-z]*Error)' "$log" | cut -c1-160)" ;;
    esac
    echo "gpu_check: [$(elapsed) s] $STATUS: $* (${TOOK} s, ${log#"$OUT"/})" >&2
}

# -- setup ------------------------------------------------------------------------------------------
imports_ok() { [[ -x $1 ]] && "$1" -c 'import torch, hydra, omegaconf, seqmodels.cli' >>"$LOGS/setup.log" 2>&1; }

offline_venv() {
    # .venv over the packages of a python3 that already has (a CUDA build of) torch
    local base=$1 base_site site wheels=${GPU_CHECK_WHEELS:-$ROOT/.whl}
    base_site=$("$base" -c 'import site, torch; print("\n".join(site.getsitepackages()))') || return 1
    "$base" -m venv --without-pip .venv || return 1
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
    printf '%s\n' "$base_site" >"$site/_gpu_check_base.pth"
    printf '%s\n' "$ROOT/src" >"$site/_seqmodels_src.pth"
    if compgen -G "$wheels/*.whl" >/dev/null; then
        "$base" -m pip install --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl || return 1
    fi
    HOW="new .venv over $base's packages, seqmodels from src/, wheels from ${wheels#"$ROOT"/} (offline)"
}

setup() {
    local base=${GPU_CHECK_BASE_PYTHON:-python3} had_venv=0
    [[ -e .venv ]] && had_venv=1
    if [[ -n ${GPU_CHECK_PYTHON:-} ]]; then
        PY=$GPU_CHECK_PYTHON HOW="GPU_CHECK_PYTHON=$GPU_CHECK_PYTHON"
        return 0
    fi
    PY=.venv/bin/python
    if imports_ok "$PY"; then
        HOW="existing .venv"
        return 0
    fi
    [[ $DRY == 1 ]] && return 1  # the dry mode installs nothing
    if [[ ${GPU_CHECK_OFFLINE:-0} != 1 ]]; then
        # pip tries once, briefly: on a machine without the index this fails in seconds, not minutes
        echo "== the README's way: torch==2.13.0 first and alone, then -e .[dev]" >>"$LOGS/setup.log"
        # shellcheck disable=SC2016  # $1 is expanded by the inner bash
        if PIP_RETRIES=0 PIP_DEFAULT_TIMEOUT=10 timeout -k 10 "$(cap 240)" bash -c '"$1" -m venv .venv &&
            .venv/bin/python -m pip install torch==2.13.0 && .venv/bin/python -m pip install -e ".[dev]"' \
            _ "$base" >>"$LOGS/setup.log" 2>&1 && imports_ok "$PY"; then
            HOW="new .venv as the README says (torch==2.13.0, then -e .[dev])"
            return 0
        fi
    fi
    if [[ $had_venv == 1 ]]; then
        echo "gpu_check: .venv exists but does not import torch, hydra and seqmodels: fix or remove it" >&2
        return 1
    fi
    echo "== offline: .venv over $base's packages" >>"$LOGS/setup.log"
    rm -rf .venv  # what the README's way left half made
    offline_venv "$base" >>"$LOGS/setup.log" 2>&1 && imports_ok "$PY"
}

environment() {
    # torch, CUDA and the GPU as this python sees them, into env.json
    "$PY" - "$HOW" "$ENV_JSON" <<'EOF'
import json, platform, sys
import torch
cuda = torch.cuda.is_available()
info = {
    "python": platform.python_version(),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    "cuda_available": cuda,
    "gpu": torch.cuda.get_device_name(0) if cuda else None,
    "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
    "venv": sys.argv[1],
}
print(json.dumps(info, indent=2))
open(sys.argv[2], "w").write(json.dumps(info) + "\n")
EOF
}

began=$SECONDS
HOW="" GPU_OK=1
if setup && environment >>"$LOGS/setup.log" 2>&1; then
    command -v nvidia-smi >/dev/null && nvidia-smi >>"$LOGS/setup.log" 2>&1
    CUDA=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["cuda_available"])' "$ENV_JSON")
    if [[ $MODE == gpu && $CUDA != True ]]; then
        GPU_OK=0
        add plain setup environment "NO CUDA: torch cannot use a GPU here" $((SECONDS - began)) "$LOGS/setup.log" \
            --note "$HOW"
    else
        add plain setup environment ok $((SECONDS - began)) "$LOGS/setup.log" --note "$HOW"
    fi
else
    GPU_OK=0
    add plain setup environment "FAILED: no python with torch, hydra and seqmodels" $((SECONDS - began)) \
        "$LOGS/setup.log" --note "${HOW:-see the log}"
fi
skip_all() { add plain "$1" "$2" "skipped: $3" 0 ""; }

# -- data: every task's prepared-data cache, built in the background while stage 1 runs --------------
prepare() {
    # the data of a task as its stage 2 runs read it (the cache key is the data settings alone)
    # shellcheck disable=SC2046  # the tiny overrides are words
    timeout -k 10 "$PREPARE" "$PY" - "experiment=${PRESET[$1]}" "${COMMON[@]}" $(tiny "$1") <<'EOF'
import sys, time
from seqmodels.config import compose_config
from seqmodels.tasks import get_task
start = time.perf_counter()
get_task(compose_config(sys.argv[1:])).prepare()
print(f"prepared in {time.perf_counter() - start:.1f} s")
EOF
}
declare -A PREPARING=()
if [[ $GPU_OK == 1 ]]; then
    prepare_began=$SECONDS
    for task in "${TASKS[@]}"; do
        if have_data "$task"; then
            prepare "$task" >"$LOGS/prepare-$task.log" 2>&1 &
            PREPARING[$task]=$!
        fi
    done
fi

# -- 1: the CUDA tests ------------------------------------------------------------------------------
if [[ $GPU_OK == 1 ]]; then
    # the dry mode runs them against the CPU (their self-check, see tests/test_cuda.py)
    timed "$(cap $STAGE1)" "$LOGS/pytest-cuda.log" env SEQMODELS_TEST_DEVICE=$DEVICE \
        "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py
    add pytest "1 tests" "pytest -m cuda tests/test_cuda.py" "$STATUS" "$TOOK" "$LOGS/pytest-cuda.log" \
        --pytest-log "$LOGS/pytest-cuda.log"
else
    skip_all "1 tests" "pytest -m cuda tests/test_cuda.py" "no usable torch with CUDA"
fi

if [[ $GPU_OK == 1 ]]; then
    prepared=()
    for task in "${TASKS[@]}"; do
        if [[ -z ${PREPARING[$task]:-} ]]; then
            prepared+=("$task: no $DATA/${FOLDER[$task]}")
        elif wait "${PREPARING[$task]}"; then
            prepared+=("$task $(grep -o 'prepared in .*' "$LOGS/prepare-$task.log")")
        else
            prepared+=("$task FAILED (logs/prepare-$task.log)")
        fi
    done
    status=ok
    [[ ${prepared[*]} == *FAILED* ]] && status="FAILED for some"
    note=$(printf '%s; ' "${prepared[@]}")
    add plain setup "data (cached while stage 1 ran)" "$status" $((SECONDS - prepare_began)) "" --note "${note%; }"
else
    skip_all setup "data (cached while stage 1 ran)" "no usable torch with CUDA"
fi

# -- 2: every task, float32 and bf16 ----------------------------------------------------------------
stage_end=$((SECONDS + STAGE2))
for task in "${TASKS[@]}"; do
    for precision in 32 bf16; do
        run="$task (experiment=${PRESET[$task]}) precision $precision"
        if [[ $GPU_OK != 1 ]]; then
            skip_all "2 train" "$run" "no usable torch with CUDA"
            continue
        elif ! have_data "$task"; then
            skip_all "2 train" "$run" "no $DATA/${FOLDER[$task]}"
            continue
        fi
        run_budget "2 train" "$run" "$RUN" "$STAGE2" || continue
        name=train-$task-$precision
        # shellcheck disable=SC2046  # the tiny overrides are words
        timed "$budget" "$LOGS/$name.log" "$PY" scripts/train_peak_memory.py "$LOGS/$name-peak.json" \
            "experiment=${PRESET[$task]}" "trainer.device=$DEVICE" "trainer.precision=$precision" \
            trainer.max_epochs=1 "trainer.limit_train_batches=$STEPS" "trainer.limit_val_batches=$VAL" \
            trainer.gradient_flow=false "${COMMON[@]}" $(tiny "$task") "hydra.run.dir=$RUNS/$name"
        add run "2 train" "$run" "$STATUS" "$TOOK" "$LOGS/$name.log" --metrics "$RUNS/$name/metrics.json" \
            --peak "$LOGS/$name-peak.json" --note "$STEPS batches"
    done
done

# -- 3: dense against packed ------------------------------------------------------------------------
bench_task=""
for task in imdb conll2003 ptb; do
    if have_data "$task"; then
        bench_task=$task
        break
    fi
done
stage_end=$((SECONDS + STAGE3))
for impl in dense packed; do
    for size in "${BENCH_SIZES[@]}"; do
        run="benchmark ${bench_task:-imdb} (experiment=${PRESET[${bench_task:-imdb}]}) rnn_impl=$impl batch $size"
        if [[ $GPU_OK != 1 ]]; then
            skip_all "3 benchmark" "$run" "no usable torch with CUDA"
            continue
        elif [[ -z $bench_task ]]; then
            skip_all "3 benchmark" "$run" "none of imdb, conll2003, ptb under $DATA"
            continue
        fi
        run_budget "3 benchmark" "$run" "$BENCH" "$STAGE3" || continue
        name=bench-$bench_task-$impl-$size
        # shellcheck disable=SC2046
        timed "$budget" "$LOGS/$name.log" "$PY" scripts/benchmark_throughput.py \
            "experiment=${PRESET[$bench_task]}" "trainer.device=$DEVICE" "model.rnn_impl=$impl" \
            "${COMMON[@]}" $(tiny "$bench_task") "data.batch_size=$size" "${BENCH_ARGS[@]}" --json "$LOGS/$name.json"
        add benchmark "3 benchmark" "$run" "$STATUS" "$TOOK" "$LOGS/$name.log" --json "$LOGS/$name.json"
    done
done

# -- 4: experiment=ptb_medium for the time left -----------------------------------------------------
run="experiment=ptb_medium (Zaremba et al. 2014 medium: test perplexity 82.7)"
budget=$(($(left) - RESERVE))
if [[ $GPU_OK != 1 ]]; then
    skip_all "4 ptb_medium" "$run" "no usable torch with CUDA"
elif ! have_data ptb; then
    skip_all "4 ptb_medium" "$run" "no $DATA/ptb"
elif ((budget < LONG_MIN)); then
    skip_all "4 ptb_medium" "$run" "${budget} s left"
else
    long=()
    [[ $DRY == 1 ]] && long=(trainer.max_epochs=2 "trainer.limit_train_batches=$STEPS" trainer.limit_val_batches=2)
    # stopped by SIGTERM at its budget: the trainer finishes the step, saves last.pt and metrics.json
    # shellcheck disable=SC2046
    timed "$budget" "$LOGS/ptb_medium.log" "$PY" scripts/train_peak_memory.py "$LOGS/ptb_medium-peak.json" \
        experiment=ptb_medium "trainer.device=$DEVICE" trainer.gradient_flow=false "${COMMON[@]}" \
        $(tiny ptb) "${long[@]}" "hydra.run.dir=$RUNS/ptb_medium"
    [[ $STATUS == TIMED* ]] && STATUS="stopped at its ${budget} s, as planned"
    add long_run "4 ptb_medium" "$run" "$STATUS" "$TOOK" "$LOGS/ptb_medium.log" \
        --metrics "$RUNS/ptb_medium/metrics.json" --peak "$LOGS/ptb_medium-peak.json" \
        --note "trainer.gradient_flow=false"
fi

render
(cd "$OUT" && find runs -name metrics.json -o -name train.log | tar -czf logs.tar.gz results.md logs -T -) ||
    echo "gpu_check: could not pack logs.tar.gz" >&2
echo "gpu_check: $(elapsed) s; $OUT/results.md" >&2
cat "$OUT/results.md"
