#!/usr/bin/env bash
# GPU acceptance check, one command: builds the CUDA targets, runs the CUDA/NCCL tests, trains the
# tiny config for 3 steps on the CPU and on the GPU (FP32, BF16) from the same weights and batches
# and compares losses and parameters, checks that a 2-rank pipeline on the one GPU (comm MPI)
# gives the 1-rank GPU run's parameters bit for bit, and runs the two CUDA benchmarks. Prints a
# table (check, PASS/FAIL/SKIP, figures) and exits 1 when any check FAILed.
#
# Sized for one H200 and 16 cores: about 5 minutes, build included. Every check runs even when an
# earlier one failed. Without a usable GPU (no nvidia-smi, or the CUDA tests report "no usable
# GPU") the GPU checks are SKIPped and the rest (build, CPU reference run, CPU pipeline, test
# plumbing) still runs, so the script can be tried on any machine with the build dependencies.
#
# Usage: scripts/gpu_check.sh
# Environment:
#   OUT         logs, metrics and the summary go here (the GPU runner collects it); default
#               $BUILD_DIR/gpu-check-logs
#   BUILD_DIR   build directory (default build-gpu-check); runs and checkpoints go under it
#   JOBS        build parallelism (default: nproc)
#   SKIP_BUILD  1: use the binaries already in BUILD_DIR (configure and build nothing)
#   PYTHON      interpreter for the comparisons (default python3; numpy optional)
#   MPIRUN      MPI launcher (default mpirun)
#   GPU_BACKEND parallel.backend of the "GPU" training runs (default CUDA). STRICT runs them on
#               the strict CPU test device instead, so that the training comparisons can be
#               tried on a machine without a GPU.
#
# Bounds: GPU FP32 against CPU FP32, loss at every step and every parameter after 3 steps:
# |gpu − cpu| ≤ 1e-7 + 1e-5·|cpu| (scripts/compare_checkpoints.py); GPU BF16 loss within 2e-2
# relative of the CPU FP32 loss; 2-rank pipeline parameters bit-identical to the 1-rank GPU run.
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build-gpu-check}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
LOG_DIR=${OUT:-$BUILD_DIR/gpu-check-logs}
RUNS=$BUILD_DIR/gpu-check-runs
JOBS=${JOBS:-$(nproc)}
PYTHON=${PYTHON:-python3}
MPIRUN=${MPIRUN:-mpirun}
GPU_BACKEND=${GPU_BACKEND:-CUDA}
CONFIG=configs/tiny.pbtxt
STEPS=3

mkdir -p "$LOG_DIR" "$RUNS" || exit 2
LOG=$LOG_DIR/gpu_check.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
START=$(date +%s)

ts() { printf '[%s +%4ds]' "$(date +%H:%M:%S)" $(($(date +%s) - START)); }
say() { echo "$(ts) $*"; }

# Results, one row per check.
CHECK_NAMES=()
CHECK_RESULTS=()
CHECK_FIGURES=()
record() {  # record NAME PASS|FAIL|SKIP FIGURES
  CHECK_NAMES+=("$1")
  CHECK_RESULTS+=("$2")
  CHECK_FIGURES+=("$3")
  say "== $1: $2 ${3:+($3)}"
}

# run_logged NAME TIMEOUT CMD...: runs CMD with its output in $LOG_DIR/NAME.log (its tail shown
# on failure); returns CMD's status (124 on timeout).
run_logged() {
  local name=$1 limit=$2
  shift 2
  local file=$LOG_DIR/$name.log
  say "\$ $*  (log: $file)"
  local start=$SECONDS status
  timeout --kill-after=10 "$limit" "$@" </dev/null >"$file" 2>&1
  status=$?
  say "   exit $status after $((SECONDS - start)) s"
  if ((status != 0)); then
    echo "---- last lines of $file"
    tail -n 25 "$file"
    echo "----"
  fi
  return "$status"
}

section() {
  echo
  say "=== $*"
}

# ---------------------------------------------------------------------------------------------
section "environment"
say "repo $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))," \
  "build dir $BUILD_DIR, logs $LOG_DIR, $JOBS jobs"
GPU_SEEN=0
GPU_NAME=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPU_SEEN=1
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
else
  say "nvidia-smi missing or sees no GPU: GPU checks will be skipped unless CUDA finds one"
fi
for tool in nvcc cmake ninja "$MPIRUN" "$PYTHON"; do
  path=$(command -v "$tool" 2>/dev/null || true)
  [[ -z $path && $tool == nvcc && -x /usr/local/cuda/bin/nvcc ]] && path=/usr/local/cuda/bin/nvcc
  say "$tool: ${path:-not found}"
done
have_mpirun=0
command -v "$MPIRUN" >/dev/null 2>&1 && have_mpirun=1
# Open MPI refuses root without these; the launches below also pass --allow-run-as-root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

# ---------------------------------------------------------------------------------------------
section "1. build (CUDA on) in $BUILD_DIR"
# The CUDA targets and the launcher only. CMakeLists.txt sets CMAKE_CUDA_ARCHITECTURES "80;90"
# unconditionally, so a -DCMAKE_CUDA_ARCHITECTURES=90 here would be ignored: the .cu files build
# for both. nvcc --threads=0 compiles the two architectures of a file in parallel, which halves
# the longest step (attention.cu, minutes on one core).
TARGETS=(deepnet cuda_test nccl_communicator_test cuda_train_step_bench cuda_deepnorm_bandwidth_bench)
DEEPNET=$BUILD_DIR/launcher/deepnet
CUDA_TEST=$BUILD_DIR/tests/cuda/cuda_test
NCCL_TEST=$BUILD_DIR/tests/cuda/nccl_communicator_test
TRAIN_BENCH=$BUILD_DIR/bench/cuda/cuda_train_step_bench
NORM_BENCH=$BUILD_DIR/bench/cuda/cuda_deepnorm_bandwidth_bench
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
  record build SKIP "SKIP_BUILD=1: binaries as found in $BUILD_DIR"
else
  build_start=$SECONDS
  configured=1
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    generator=()
    command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
    run_logged configure 300 cmake -S "$ROOT" -B "$BUILD_DIR" "${generator[@]}" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEEPNET_CUDA=ON -DDEEPNET_BUILD_TESTS=ON \
      -DDEEPNET_BUILD_BENCH=ON -DDEEPNET_CUDA_ARCHS="${CUDA_ARCHS:-90}" \
      -DCMAKE_CUDA_FLAGS=--threads=0 || configured=0
  fi
  if ((configured)); then
    # Keep going past a failed target (-k 0 for Ninja) so the others are still built and checked.
    keep_going=()
    [[ -f $BUILD_DIR/build.ninja ]] && keep_going=(-- -k 0)
    if run_logged build 480 cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}" \
      "${keep_going[@]}"; then
      record build PASS "${#TARGETS[@]} targets in $((SECONDS - build_start)) s, -j$JOBS"
    else
      missing=()
      for binary in "$DEEPNET" "$CUDA_TEST" "$NCCL_TEST" "$TRAIN_BENCH" "$NORM_BENCH"; do
        [[ -x $binary ]] || missing+=("$(basename "$binary")")
      done
      record build FAIL "after $((SECONDS - build_start)) s; missing: ${missing[*]:-none (stale?)}"
    fi
  else
    record build FAIL "configure failed (log: configure.log)"
  fi
fi

# ---------------------------------------------------------------------------------------------
section "2. CUDA and NCCL tests"
# Is the GPU usable by CUDA (not only seen by nvidia-smi)? cuda_test's allocator case says why not.
GPU_OK=0
GPU_WHY="no GPU"
if [[ -x $CUDA_TEST ]]; then
  probe=$(timeout 120 "$CUDA_TEST" --gtest_filter=CudaDeviceTest.AllocatorAccountsDeviceMemory 2>&1)
  if grep -q "no usable GPU" <<<"$probe"; then
    GPU_WHY=$(grep -m 1 -o "no usable GPU.*" <<<"$probe")
  elif grep -q "\[  PASSED  \] 1 test" <<<"$probe"; then
    GPU_OK=1
    GPU_WHY=""
  else
    GPU_WHY="the device probe failed (see ctest.log)"
  fi
fi
if ((GPU_OK)); then
  say "GPU usable: ${GPU_NAME:-yes}"
elif ((GPU_SEEN)); then
  say "nvidia-smi sees ${GPU_NAME:-a GPU} but CUDA cannot use it: $GPU_WHY"
else
  say "no GPU: $GPU_WHY"
fi
# A GPU check without a usable GPU: FAIL where nvidia-smi sees one (broken set-up), else SKIP.
NO_GPU_RESULT=SKIP
((GPU_SEEN)) && NO_GPU_RESULT=FAIL
NO_GPU_WHY="no usable GPU (see cuda-tests)"
# The training runs need the GPU only on the CUDA backend.
TRAIN_OK=$GPU_OK
[[ $GPU_BACKEND != CUDA ]] && TRAIN_OK=1

# ctest names: every cuda_test case (gtest_discover_tests: CudaOpTest..., CudaDeviceTest..., ...)
# and nccl_communicator_test.np2 (2 ranks under mpirun); targets not built would appear as
# <target>_NOT_BUILT and are excluded.
if [[ -x $CUDA_TEST ]]; then
  ctest_args=(--test-dir "$BUILD_DIR" -R 'Cuda|Nccl|Gpu|cuda|nccl' -E NOT_BUILT
    --output-on-failure --timeout 300 -j 4)
  listed=$(ctest --test-dir "$BUILD_DIR" -N -R 'Cuda|Nccl|Gpu|cuda|nccl' -E NOT_BUILT 2>/dev/null |
    sed -n 's/^Total Tests: *//p')
  if [[ ${listed:-0} -gt 0 ]]; then
    run_logged ctest 600 ctest "${ctest_args[@]}"
    status=$?
    file=$LOG_DIR/ctest.log
    total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$file" | tail -n 1)
    failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$file" | tail -n 1)
    skipped=$(grep -c '(Skipped)' "$file")
    total=${total:-0}
    failed=${failed:-$total}
    passed=$((total - failed - skipped))
  else
    # No usable ctest files (e.g. a build made at another path): run the binaries directly.
    say "ctest lists no CUDA tests in $BUILD_DIR: running the test binaries directly"
    run_logged cuda_test 600 "$CUDA_TEST"
    status=$?
    file=$LOG_DIR/cuda_test.log
    passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$file" | tail -n 1)
    skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$file" | tail -n 1)
    failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$file" | tail -n 1)
    passed=${passed:-0} skipped=${skipped:-0} failed=${failed:-0}
    ((status != 0 && failed == 0)) && failed=1
    if [[ -x $NCCL_TEST && $have_mpirun == 1 ]]; then
      if run_logged nccl_communicator_test 300 "$MPIRUN" -np 2 --allow-run-as-root --oversubscribe \
        --bind-to none "$NCCL_TEST"; then
        passed=$((passed + 1))
      else
        failed=$((failed + 1))
        status=1
      fi
    fi
    total=$((passed + skipped + failed))
  fi
  figures="$total tests: $passed passed, $failed failed, $skipped skipped"
  if ((status != 0 || failed > 0 || total == 0)); then
    record cuda-tests FAIL "$figures"
  elif ((skipped > 0 && GPU_OK)); then
    record cuda-tests FAIL "$figures (skipped on a machine with a usable GPU)"
  elif ((skipped > 0)); then
    record cuda-tests "$NO_GPU_RESULT" "$figures: $GPU_WHY"
  else
    record cuda-tests PASS "$figures"
  fi
else
  record cuda-tests FAIL "cuda_test not built"
fi

# ---------------------------------------------------------------------------------------------
section "3. tiny training: CPU FP32 reference, $GPU_BACKEND FP32, $GPU_BACKEND BF16 (3 steps, same data)"
DATA=$RUNS/data
# train RUN TIMEOUT [LAUNCHER...] -- [--set ...]: a fresh run; its metrics are copied to $LOG_DIR.
train() {
  local run=$1 limit=$2
  shift 2
  local launcher=()
  while (($#)) && [[ $1 != -- ]]; do
    launcher+=("$1")
    shift
  done
  shift  # --
  local dir=$RUNS/$run
  rm -rf "${RUNS:?}/$run"
  mkdir -p "$dir"
  # parallel.comm MPI on every run: valid for both backends, and the 1- and 2-rank GPU runs then
  # differ only in the stage count. Validation runs every 10 steps: not within these 3.
  local sets=(--set "data.data_dir=$DATA" --set parallel.comm=MPI --set "train.max_steps=$STEPS"
    --set "checkpoint.every_steps=$STEPS" --set "checkpoint.dir=$dir/checkpoints"
    --set "logging.json_metrics=$dir/metrics.jsonl" --set logging.log_every=1
    --set parallel.comm_timeout_seconds=60)
  run_logged "train-$run" "$limit" "${launcher[@]}" "$DEEPNET" train --config "$CONFIG" \
    "${sets[@]}" "$@"
  local status=$?
  [[ -f $RUNS/$run/metrics.jsonl ]] && cp "$RUNS/$run/metrics.jsonl" "$LOG_DIR/metrics-$run.jsonl"
  if ((status == 0)) && [[ ! -f $RUNS/$run/checkpoints/latest ]]; then
    say "   $run: exit 0 but no checkpoint in $RUNS/$run/checkpoints"
    status=1
  fi
  return "$status"
}

# compare_losses A B RTOL: per-step losses of two metrics files; prints "steps=N max_rel=X" and
# fails when a step is missing or over RTOL.
compare_losses() {
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import json, sys
def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                record = json.loads(line)
                if "loss" in record:
                    out[int(record["step"])] = float(record["loss"])
    return out
try:
    a, b, rtol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
except (OSError, ValueError) as e:
    print("error: %s" % e)
    sys.exit(1)
steps = sorted(set(a) | set(b))
worst, ok = 0.0, bool(steps) and set(a) == set(b)
for s in steps:
    if s in a and s in b:
        rel = abs(a[s] - b[s]) / max(abs(b[s]), 1e-30)
        worst = max(worst, rel)
        ok = ok and rel <= rtol
        print("step %d: %.9g vs %.9g (reference), rel %.3g" % (s, a[s], b[s], rel))
    else:
        print("step %d: only in %s" % (s, sys.argv[1] if s in a else sys.argv[2]))
print("steps=%d max_rel=%.3g %s" % (len(steps), worst, "PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
}

# compare_params A B RTOL ATOL NAME: compare_checkpoints.py into $LOG_DIR/NAME.log; sets CMP_FIG.
CMP_FIG=""
compare_params() {
  local file=$LOG_DIR/$5.log status
  "$PYTHON" "$ROOT/scripts/compare_checkpoints.py" "$1" "$2" --rtol "$3" --atol "$4" >"$file" 2>&1
  status=$?
  tail -n 3 "$file"
  local line
  line=$(grep '^compare_checkpoints: \(PASS\|FAIL\) ' "$file" | tail -n 1)
  if [[ -n $line ]]; then
    CMP_FIG="params max_rel $(sed -n 's/.*max_rel=\([^ ]*\).*/\1/p' <<<"$line")"
    CMP_FIG+=" max_abs $(sed -n 's/.*max_abs=\([^ ]*\).*/\1/p' <<<"$line")"
    CMP_FIG+=" ($(sed -n 's/.*failing_elements=\([^ ]*\).*/\1/p' <<<"$line") over)"
  else
    CMP_FIG="compare failed: $(tail -n 1 "$file")"
  fi
  return "$status"
}

final_loss() {  # the loss of the last step in a metrics file
  sed -n 's/.*"loss":\([-0-9.eE+]*\).*/\1/p' "$1" 2>/dev/null | tail -n 1
}

# Data: the tokenizer and shards of the bundled corpus (data/*.tsv.xz), made once.
data_ok=0
if [[ -f $DATA/train.bin && -f $DATA/valid.bin && -f $DATA/spm.model ]]; then
  say "prepared data found in $DATA"
  data_ok=1
  record prepare PASS "reused $DATA"
elif [[ -x $DEEPNET ]]; then
  prep_start=$SECONDS
  if run_logged prepare 300 "$DEEPNET" prepare --config "$CONFIG" --set "data.data_dir=$DATA" \
    --set parallel.comm=MPI; then
    data_ok=1
    record prepare PASS "$((SECONDS - prep_start)) s"
  else
    rm -rf "$DATA"
    record prepare FAIL "deepnet prepare failed"
  fi
else
  record prepare FAIL "deepnet not built"
fi

cpu_ok=0
if ((data_ok)); then
  t0=$SECONDS
  if train cpu 300 -- --set parallel.backend=CPU --set parallel.precision=FP32; then
    cpu_ok=1
    record train-cpu-fp32 PASS "loss $(final_loss "$RUNS/cpu/metrics.jsonl") at step $STEPS, $((SECONDS - t0)) s"
  else
    record train-cpu-fp32 FAIL "see train-cpu.log"
  fi
else
  record train-cpu-fp32 FAIL "no prepared data"
fi

cuda_fp32_ok=0
BACKEND_NOTE="loss "
[[ $GPU_BACKEND != CUDA ]] && BACKEND_NOTE="$GPU_BACKEND backend, loss "
if ((!TRAIN_OK)); then
  record gpu-fp32-vs-cpu "$NO_GPU_RESULT" "$NO_GPU_WHY"
  record gpu-bf16-vs-cpu "$NO_GPU_RESULT" "$NO_GPU_WHY"
elif ((!data_ok)); then
  record gpu-fp32-vs-cpu FAIL "no prepared data"
  record gpu-bf16-vs-cpu FAIL "no prepared data"
else
  t0=$SECONDS
  if train cuda_fp32 300 -- --set "parallel.backend=$GPU_BACKEND" --set parallel.precision=FP32; then
    cuda_fp32_ok=1
    if ((cpu_ok)); then
      loss_out=$(compare_losses "$RUNS/cuda_fp32/metrics.jsonl" "$RUNS/cpu/metrics.jsonl" 1e-5)
      loss_status=$?
      echo "$loss_out"
      loss_fig=$(tail -n 1 <<<"$loss_out" | sed 's/ PASS$//; s/ FAIL$//')
      compare_params "$RUNS/cuda_fp32/checkpoints" "$RUNS/cpu/checkpoints" 1e-5 1e-7 \
        compare-cuda_fp32-cpu
      param_status=$?
      result=PASS
      ((loss_status != 0 || param_status != 0)) && result=FAIL
      record gpu-fp32-vs-cpu $result "$BACKEND_NOTE$loss_fig; $CMP_FIG; $((SECONDS - t0)) s"
    else
      record gpu-fp32-vs-cpu FAIL "GPU run ok, no CPU reference to compare with"
    fi
  else
    record gpu-fp32-vs-cpu FAIL "GPU FP32 training failed (train-cuda_fp32.log)"
  fi

  t0=$SECONDS
  if train cuda_bf16 300 -- --set "parallel.backend=$GPU_BACKEND" --set parallel.precision=BF16; then
    if ((cpu_ok)); then
      loss_out=$(compare_losses "$RUNS/cuda_bf16/metrics.jsonl" "$RUNS/cpu/metrics.jsonl" 2e-2)
      loss_status=$?
      echo "$loss_out"
      loss_fig=$(tail -n 1 <<<"$loss_out" | sed 's/ PASS$//; s/ FAIL$//')
      result=PASS
      ((loss_status != 0)) && result=FAIL
      record gpu-bf16-vs-cpu $result "$BACKEND_NOTE$loss_fig (bound 2e-2); $((SECONDS - t0)) s"
    else
      record gpu-bf16-vs-cpu FAIL "GPU run ok, no CPU reference to compare with"
    fi
  else
    record gpu-bf16-vs-cpu FAIL "GPU BF16 training failed (train-cuda_bf16.log)"
  fi
fi

# pipeline_check NAME RUN REFERENCE BACKEND NOTE: 2 ranks × 1 stage each on BACKEND (FP32) must give
# the REFERENCE run's 1-rank parameters bit for bit.
pipeline_check() {
  local name=$1 run=$2 reference=$3 backend=$4 note=$5
  local t0=$SECONDS
  if train "$run" 300 "${mpi_launch[@]}" -- --set "parallel.backend=$backend" \
    --set parallel.precision=FP32 --set parallel.pipeline_stages=2; then
    if compare_params "$RUNS/$run/checkpoints" "$RUNS/$reference/checkpoints" 0 0 \
      "compare-$run-$reference"; then
      record "$name" PASS "${note}bit-identical to 1 rank; $((SECONDS - t0)) s"
    else
      record "$name" FAIL "$CMP_FIG"
    fi
  else
    record "$name" FAIL "2-rank training failed (train-$run.log)"
  fi
}

# ---------------------------------------------------------------------------------------------
section "4. 2-rank pipeline (parallel.comm MPI) against 1 rank: bit-identical parameters"
mpi_launch=("$MPIRUN" -np 2 --allow-run-as-root --oversubscribe --bind-to none
  -x OMP_NUM_THREADS=2 -x OMP_WAIT_POLICY=passive)
# On the CPU first: the same plumbing (stage files merged by compare_checkpoints.py) against the
# CPU reference, a few seconds, and it runs without a GPU.
if ((!have_mpirun)); then
  record cpu-pipeline-2rank SKIP "$MPIRUN not found"
elif ((!cpu_ok)); then
  record cpu-pipeline-2rank FAIL "no CPU reference run"
else
  pipeline_check cpu-pipeline-2rank cpu_pipe2 cpu CPU ""
fi

if ((!TRAIN_OK)); then
  record gpu-pipeline-2rank "$NO_GPU_RESULT" "$NO_GPU_WHY"
elif ((!have_mpirun)); then
  record gpu-pipeline-2rank SKIP "$MPIRUN not found"
elif ((!cuda_fp32_ok)); then
  record gpu-pipeline-2rank FAIL "no 1-rank GPU FP32 run to compare with"
else
  # Both ranks share the one GPU (comm MPI stages through host buffers).
  pipeline_check gpu-pipeline-2rank cuda_pipe2 cuda_fp32 "$GPU_BACKEND" "${BACKEND_NOTE%loss }"
fi

# ---------------------------------------------------------------------------------------------
section "5. benchmarks"
# bench_unusable NAME LOG: when the benchmark found no usable GPU, records its SKIP/FAIL row and
# returns 0.
bench_unusable() {
  if grep -q "no usable GPU" "$2"; then
    record "$1" "$NO_GPU_RESULT" "$NO_GPU_WHY"
    return 0
  fi
  return 1
}

if [[ ! -x $TRAIN_BENCH ]]; then
  record bench-train-step FAIL "cuda_train_step_bench not built"
else
  # Defaults: 24 layers, d 1024, 16 heads, FFN 4096, V 32000, 8 × 1024 tokens per step, BF16.
  run_logged bench-train-step 240 "$TRAIN_BENCH" --steps 5 --warmup 2
  status=$?
  file=$LOG_DIR/bench-train-step.log
  cat "$file"
  if ! bench_unusable bench-train-step "$file"; then
    tokens=$(sed -n 's/^step .* \([0-9]*\) tokens\/s,.*/\1/p' "$file" | tail -n 1)
    step_ms=$(sed -n 's/^step \([0-9.]*\) ms.*/\1/p' "$file" | tail -n 1)
    mfu=$(sed -n 's/^MFU \([0-9.]*%\).*/\1/p' "$file" | tail -n 1)
    if ((status == 0)) && [[ -n $tokens ]]; then
      record bench-train-step PASS "${tokens} tokens/s, step ${step_ms} ms, MFU ${mfu:-n/a} (24L d1024 bf16)"
    else
      record bench-train-step FAIL "exit $status, no figures"
    fi
  fi
fi

if [[ ! -x $NORM_BENCH ]]; then
  record bench-deepnorm FAIL "cuda_deepnorm_bandwidth_bench not built"
else
  run_logged bench-deepnorm 180 "$NORM_BENCH" --rows=16384,65536 --channels=1024,4096,8192
  status=$?
  file=$LOG_DIR/bench-deepnorm.log
  cat "$file"
  if ! bench_unusable bench-deepnorm "$file"; then
    # Rows: N C | fwd us, fwd GB/s, %peak | bwd us, bwd GB/s, %peak. Report N=65536, C=1024 (a
    # d=1024 model's 64K tokens) and the best of each direction.
    figures=$(awk -F'|' '
      NF == 3 && $1 ~ /^ *[0-9]/ {
        split($1, nc, " "); split($2, f, " "); split($3, b, " ")
        if (nc[1] == 65536 && nc[2] == 1024) at = sprintf("N=65536 C=1024: fwd %s GB/s (%s), bwd %s GB/s (%s)", f[2], f[3], b[2], b[3])
        fp = f[3]; sub(/%/, "", fp); bp = b[3]; sub(/%/, "", bp)
        if (fp + 0 > bf + 0) { bf = fp; bfs = f[2] }
        if (bp + 0 > bb + 0) { bb = bp; bbs = b[2] }
      }
      END { if (at != "") printf "%s; best fwd %s GB/s (%s%%), bwd %s GB/s (%s%%)", at, bfs, bf, bbs, bb }
    ' "$file")
    peak=$(sed -n 's/.*peak DRAM \([0-9]*\) GB\/s.*/\1/p' "$file" | head -n 1)
    if ((status == 0)) && [[ -n $figures ]]; then
      record bench-deepnorm PASS "$figures of ${peak:-?} GB/s peak"
    else
      record bench-deepnorm FAIL "exit $status, no figures"
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------
section "summary (${GPU_NAME:-no GPU}; $(($(date +%s) - START)) s in all)"
SUMMARY=$LOG_DIR/summary.txt
{
  printf '%-20s %-6s %s\n' check result figures
  printf '%-20s %-6s %s\n' -------------------- ------ -------
  for i in "${!CHECK_NAMES[@]}"; do
    printf '%-20s %-6s %s\n' "${CHECK_NAMES[$i]}" "${CHECK_RESULTS[$i]}" "${CHECK_FIGURES[$i]}"
  done
} | tee "$SUMMARY"
failures=0
skips=0
for result in "${CHECK_RESULTS[@]}"; do
  [[ $result == FAIL ]] && failures=$((failures + 1))
  [[ $result == SKIP ]] && skips=$((skips + 1))
done
echo
say "gpu_check: ${#CHECK_RESULTS[@]} checks, $failures failed, $skips skipped; logs in $LOG_DIR"
# Let tee write the last lines to the log before the runner collects it.
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
((failures == 0)) || exit 1
exit 0
