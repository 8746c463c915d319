#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang + ASan + UBSan in their own build
# directory and runs each for a fixed time on a copy of its seed corpus, after replaying every
# committed regression input. Exits 1 if any target crashes (the input is kept under
# <build>/artifacts/<target>/), 77 (ctest: skipped) when clang, its libFuzzer or its OpenMP is
# missing.
#
# Usage: tests/fuzz/run_fuzz.sh [build_dir]      (default: build/fuzz-build)
# Environment:
#   FUZZ_SECONDS   seconds of fuzzing per target (default 15: six targets fit in 2 minutes)
#   FUZZ_TARGETS   targets to run, e.g. "json config" (default: every *_fuzz.cc)
#   FUZZ_JOBS      build parallelism (default: nproc)
#   FUZZ_ARGS      extra libFuzzer flags for the fuzzing runs (e.g. "-runs=1000000" for a campaign)
#   CC, CXX        the compilers (default clang, clang++)
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$fuzz_dir/../.." && pwd)
build_dir=${1:-$source_dir/build/fuzz-build}
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)
seconds=${FUZZ_SECONDS:-15}
jobs=${FUZZ_JOBS:-$(nproc)}
cc=${CC:-clang}
cxx=${CXX:-clang++}
# CC/CXX of a g++ build environment do not apply: the sanitizers here need clang.
[[ $cxx == *clang* ]] || { cc=clang; cxx=clang++; }

skip() { echo "run_fuzz: SKIPPED: $*"; exit 77; }
command -v "$cxx" >/dev/null ||
  skip "$cxx not found (Debian: apt-get install clang libclang-rt-14-dev libomp-dev)"
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
  'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' \
  >"$probe_dir/probe.cc"
"$cxx" -fsanitize=fuzzer,address,undefined "$probe_dir/probe.cc" -o "$probe_dir/probe" \
  >"$probe_dir/log" 2>&1 ||
  skip "$cxx cannot link -fsanitize=fuzzer,address,undefined (Debian: libclang-rt-14-dev):" \
       "$(head -3 "$probe_dir/log")"
# The project links OpenMP (cmake/dependencies.cmake); clang's is a package of its own.
printf '%s\n' '#include <omp.h>' 'int main() { return omp_get_max_threads() > 0 ? 0 : 1; }' \
  >"$probe_dir/omp.cc"
"$cxx" -fopenmp "$probe_dir/omp.cc" -o "$probe_dir/omp" >"$probe_dir/log" 2>&1 ||
  skip "$cxx has no OpenMP (Debian: libomp-dev): $(head -3 "$probe_dir/log")"

# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION: the usual macro with which code may skip checks that
# fuzzing cannot pass (checksums), so that the parsing behind them is reached.
sanitize="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all"
sanitize+=" -fno-omit-frame-pointer -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"
start=$(date +%s)
# Configured every time (seconds once the cache exists), so that flag changes here apply.
# -O1 -g without -DNDEBUG: DCHECKs stay on.
generator=()
[[ ! -f $build_dir/CMakeCache.txt ]] && command -v ninja >/dev/null && generator=(-G Ninja)
CC=$cc CXX=$cxx cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" \
  -DDEEPNET_FUZZ=ON -DDEEPNET_CUDA=OFF -DDEEPNET_BUILD_TESTS=OFF -DDEEPNET_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$sanitize" -DCMAKE_CXX_FLAGS="$sanitize" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  >"$build_dir/configure.log" 2>&1 || { cat "$build_dir/configure.log"; exit 1; }
cmake --build "$build_dir" --target deepnet_fuzzers -j "$jobs"
echo "run_fuzz: build took $(($(date +%s) - start)) s"

targets=${FUZZ_TARGETS:-$(cd "$fuzz_dir" && ls *_fuzz.cc | sed 's/_fuzz\.cc$//')}

# Field names and enum values of the config schema, for the config target's mutations.
sp='[[:space:]]'
sed -nE "s/^$sp*(optional|repeated)?$sp*[A-Za-z0-9_.]+$sp+([a-z_0-9]+)$sp*=.*/\"\\2\"/p;
         s/^$sp*([A-Z][A-Z0-9_]+)$sp*=.*/\"\\1\"/p" \
  "$source_dir/configs/deepnet.proto" | sort -u >"$build_dir/config.dict"
printf '"%s"\n' 2147483647 -2147483648 4294967296 9223372036854775807 1e308 -0 nan inf \
  '{' '}' ': ' '=' '.' '\"' "'" '#' '\x00' '\x0a' >>"$build_dir/config.dict"

# The targets' scratch files (fuzz_util.h), removed at exit with whatever a crash left there.
scratch_parent=/dev/shm
[[ -d $scratch_parent && -w $scratch_parent ]] || scratch_parent=$build_dir
DEEPNET_FUZZ_SCRATCH_DIR=$(mktemp -d "$scratch_parent/deepnet-fuzz.XXXXXX")
export DEEPNET_FUZZ_SCRATCH_DIR
trap 'rm -rf "$probe_dir" "$DEEPNET_FUZZ_SCRATCH_DIR"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GLOG_minloglevel=2

failed=()
run_start=$(date +%s)
for target in $targets; do
  binary=$build_dir/fuzz/${target}_fuzz
  [[ -x $binary ]] || binary=$build_dir/tests/fuzz/${target}_fuzz
  log_dir=$build_dir/logs
  artifacts=$build_dir/artifacts/$target
  corpus=$build_dir/corpus/$target
  mkdir -p "$log_dir" "$artifacts"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  [[ -d $fuzz_dir/corpus/$target ]] && cp "$fuzz_dir/corpus/$target"/* "$corpus"/
  dict=()
  [[ -f $fuzz_dir/$target.dict ]] && dict=(-dict="$fuzz_dir/$target.dict")
  [[ $target == config ]] && dict=(-dict="$build_dir/config.dict")

  # Every crash found and fixed, replayed (each file once); a failure fails the run.
  regressions=()
  if [[ -d $fuzz_dir/regressions/$target ]]; then
    mapfile -t regressions < <(find "$fuzz_dir/regressions/$target" -type f ! -name '*.md' \
                                 ! -path '*/pending/*' | sort)
  fi
  if ((${#regressions[@]})); then
    if ! "$binary" "${regressions[@]}" >"$log_dir/$target.regressions.log" 2>&1; then
      echo "run_fuzz: $target: a regression input fails again:"
      tail -40 "$log_dir/$target.regressions.log"
      failed+=("$target (regression)")
      continue
    fi
  fi
  # Crashes found but not fixed yet (regressions/<target>/pending/): replayed one by one and
  # reported, without failing the run; once one passes, it moves up to regressions/<target>/.
  if [[ -d $fuzz_dir/regressions/$target/pending ]]; then
    while IFS= read -r input; do
      if "$binary" "$input" >"$log_dir/$target.pending.log" 2>&1; then
        echo "run_fuzz: $target: pending ${input#"$fuzz_dir"/} passes now:" \
             "move it to regressions/$target/"
      else
        echo "run_fuzz: $target: pending ${input#"$fuzz_dir"/} still crashes (known, not fixed):"
        grep -m1 -E 'runtime error|ERROR: AddressSanitizer|FUZZ_CHECK|Check failed' \
          "$log_dir/$target.pending.log" || true
      fi
    done < <(find "$fuzz_dir/regressions/$target/pending" -type f ! -name '*.md' | sort)
  fi

  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
  if "$binary" "$corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-} \
       >"$log_dir/$target.log" 2>&1; then
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log_dir/$target.log")
    speed=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log_dir/$target.log")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log_dir/$target.log" | tail -1)
    echo "run_fuzz: $target: ok, ${runs:-?} runs (${speed:-?}/s)," \
         "${#regressions[@]} regressions, $cov"
  else
    echo "run_fuzz: $target: CRASH (input under $artifacts/):"
    grep -E 'ERROR|runtime error|FUZZ_CHECK|Check failed|SUMMARY|Test unit written' \
      "$log_dir/$target.log" | head -20 || true
    tail -60 "$log_dir/$target.log"
    failed+=("$target")
  fi
done
echo "run_fuzz: fuzzing took $(($(date +%s) - run_start)) s (logs in $build_dir/logs)"

if ((${#failed[@]})); then
  echo "run_fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "run_fuzz: every target passed"
