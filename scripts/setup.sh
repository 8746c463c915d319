#!/usr/bin/env bash
# Installs every Debian package deepnet needs. Idempotent; runs as root on a fresh machine.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libopenmpi-dev openmpi-bin
  libprotobuf-dev protobuf-compiler
  libgoogle-glog-dev libgflags-dev
  libopenblas-dev libopenblas-openmp-dev
  libsentencepiece-dev sentencepiece liblzma-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  slurm-wlm munge
  iproute2  # tests/launch/multinode: ip netns, veths, bridge (nsenter, unshare: util-linux)
  librsvg2-bin
  python3 python3-numpy python3-torch
  python3-matplotlib  # scripts/depth_plots.py (the depth study's figures)
  hyperfine
  clang libclang-rt-14-dev libomp-dev  # tests/fuzz: libFuzzer, ASan, UBSan (clang's OpenMP)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} packages present"
fi
