#!/usr/bin/env bash
# Configures, builds (RelWithDebInfo, warnings on) and runs the whole ctest suite, MPI tests included.
# Usage: scripts/test.sh [extra ctest args]   (BUILD_DIR overrides the build directory)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build_dir" -j "$jobs"
cd "$build_dir"
ctest --output-on-failure --timeout 600 -j "$jobs" "$@"
