#!/usr/bin/env bash
# Install what modelone needs from Debian's packages and build it (Release) into build/.
#   scripts/setup.sh            install + build
#   SKIP_APT=1 scripts/setup.sh build only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake libopenmpi-dev openmpi-bin libopenblas-dev libprotobuf-dev
          protobuf-compiler libgtest-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev pkg-config libdnnl-dev python3 python3-numpy
          python3-matplotlib)
if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$jobs"
echo "setup: built build/modelone" >&2
