#!/usr/bin/env bash
# Install what modelone needs from Debian's packages and build it (Release) into build/.
#   scripts/setup.sh            install + build
#   SKIP_APT=1 scripts/setup.sh build only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake libopenmpi-dev openmpi-bin libopenblas-dev libprotobuf-dev
          protobuf-compiler libgtest-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev pkg-config libdnnl-dev python3 python3-numpy
          python3-matplotlib nodejs npm curl)
if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 && continue
    # a node from elsewhere (e.g. NodeSource's, which bundles npm) will do: Debian's would conflict
    case "$p" in nodejs) command -v node >/dev/null 2>&1 && continue ;; npm) command -v npm >/dev/null 2>&1 && continue ;; esac
    missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The official OpenAI Node client for cli_serve_test's CliServe.OfficialOpenAiClient (skipped without
# it): openai 6.x is the newest line without an engines floor above Debian 12's node 18 (7.x needs
# node >= 22) and has no dependencies; `npm pack` fetches the tarball, nothing is npm-installed.
openai_version=6.49.0
if ! grep -qs "\"version\": \"$openai_version\"" .deps/node_modules/openai/package.json; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent "openai@$openai_version" >/dev/null 2>&1) &&
     rm -rf .deps/node_modules/openai && mkdir -p .deps/node_modules/openai && tar -xzf "$tmp/openai-$openai_version.tgz" --strip-components=1 -C .deps/node_modules/openai; then
    echo "setup: fetched openai@$openai_version into .deps/node_modules/openai" >&2
  else
    rm -rf .deps/node_modules/openai
    echo "setup: warning: could not fetch openai@$openai_version with npm pack; CliServe.OfficialOpenAiClient will be skipped" >&2
  fi
  rm -rf "$tmp"
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$jobs"
echo "setup: built build/modelone" >&2
