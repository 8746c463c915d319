#!/usr/bin/env bash
# No CMake file skips targets or tests because another target or a file is missing: a missing
# required package stops the configure step instead (cmake/dependencies.cmake names the Debian
# package), and optional parts (CUDA, the fuzzers) are switched by their own options.
# Usage: no_silent_guards_test.sh REPO_ROOT
set -euo pipefail
cd "${1:?usage: no_silent_guards_test.sh REPO_ROOT}"
# The tracked files; outside git, every CMake file but those of build trees (with a CMakeCache.txt).
if ! files=$(git ls-files '*CMakeLists.txt' '*.cmake' 2>/dev/null); then
  builds=$(find . -name CMakeCache.txt -printf '%h/\n')
  files=$(find . -name CMakeLists.txt -o -name '*.cmake' | grep -vF "${builds:-//none//}" || true)
fi
# tests/fuzz is added from the top level and from tests/: its guard defines the targets once.
if grep -HnE '^\s*if\((NOT )?(TARGET|EXISTS) ' $files | grep -v 'define the targets once'; then
  echo "the lines above drop targets or tests silently when something is missing:"
  echo "require it in cmake/dependencies.cmake (deepnet_require) or use an option"
  exit 1
fi
