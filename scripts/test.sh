#!/usr/bin/env bash
# Run the whole test suite (unit, transformers parity, MPI at 1-4 ranks, bad input) with ctest.
# Build first with scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# Open MPI refuses root without these, and more ranks than cores needs oversubscription.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
ctest --test-dir build --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" "$@"
