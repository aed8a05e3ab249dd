#!/usr/bin/env bash
# Runs every benchmark with the settings quoted in the issue notes and prints one line per case.
#   scripts/bench_all.sh [gemm|engine|attention|ep|moe|context|engram ...]   (default: all)
# Expert benchmarks launch mpirun at several rank counts; sizes are capped for a 24 GiB machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
bin=./build/modelone
what=("$@")
[ ${#what[@]} -eq 0 ] && what=(gemm engine attention ep moe context engram)
for w in "${what[@]}"; do
  case "$w" in
    gemm)
      $bin bench gemm
      $bin bench gemm --weights fp8 --tokens 1,4,512
      $bin bench gemm --weights fp4 --tokens 1,4,512 ;;
    engine)
      $bin bench engine --model tiny --contexts 1024,2048,4096,8192,16384,32768
      # V4-Flash layer shapes (sliding, sliding, CSA, HCA) with 16 of the 256 experts.
      $bin bench engine --model v4-flash --set num_hidden_layers=4 --set n_routed_experts=16 \
        --contexts 1024,4096 --decode-steps 4 ;;
    attention) $bin bench attention ;;
    ep)
      for t in shm mpi; do
        mpirun -n 2 $bin bench ep --ep-transport $t --tokens 1,8,32,128,4096,16384 --iters 5
        mpirun -n 4 $bin bench ep --ep-transport $t --tokens 1,8,32,128,4096,8192 --iters 5
        mpirun -n 8 $bin bench ep --ep-transport $t --tokens 1,8,32,128,2048 --iters 5
        mpirun -n 4 $bin bench ep --ep-transport $t --tokens 128,4096 --iters 5 --dispatch bf16 --combine bf16
        mpirun -n 4 $bin bench ep --ep-transport $t --tokens 128,4096 --iters 5 --dispatch fp8 --combine bf16
      done ;;
    moe)
      # One rank gets both cores (mpirun would bind it to one); more ranks get one core each.
      $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3
      for p in 2 4 8; do
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3
      done
      for p in 2 4 8; do
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3 --ep-transport mpi
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3 --ep-transport mpi --overlap
      done
      $bin bench moe --set n_routed_experts=64 --global-tokens 16 --iters 5
      for p in 2 4 8; do
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 16 --iters 5
      done ;;
    context)
      # V4-Flash attention shapes, 2 layers (CSA, HCA), 8 experts; one thread per rank, cp = world
      # against cp = 1 in the same run. Decode with V4-Flash's top-6 routing, caches filled
      # synthetically up to 1M tokens.
      mpirun -n 2 $bin bench context --phase decode --decode 8192,65536,262144,1048576 --decode-steps 8
      # No step in decode time around 64K (where a fresh buffer per call would cross the mmap
      # threshold).
      mpirun -n 2 $bin bench context --phase decode --decode 57344,61440,65536,69632,73728 --decode-steps 8
      # Prefill with top-2 routing, so attention (not the experts) dominates the step.
      mpirun -n 2 $bin bench context --phase prefill --set num_experts_per_tok=2 \
        --prefill 8192,16384,32768,65536 --layouts zigzag,contiguous
      # More ranks than cores: wall time measures the scheduler; read the CPU-time columns.
      for p in 4 8; do
        # Eight ranks with the full 129K vocabulary's embedding and head do not fit 24 GiB.
        extra=(); [ $p -eq 8 ] && extra=(--set vocab_size=16384)
        OMPI_MCA_mpi_yield_when_idle=1 mpirun -n $p $bin bench context --phase prefill \
          --set num_experts_per_tok=2 "${extra[@]}" --prefill 65536 --layouts zigzag,contiguous
      done ;;
    engram)
      # Fetch paths against a local gather and the all-reduce design at 1-4 ranks, then step
      # time with Engram on / prefetch off / off.
      for p in 1 2 3 4; do mpirun -n $p $bin bench engram --part fetch; done
      mpirun -n 2 $bin bench engram --part step --iters 1 --step-tokens 512,4096 --decode-steps 16 ;;
    *) echo "bench_all.sh: unknown benchmark '$w' (gemm, engine, attention, ep, moe, context, engram)" >&2; exit 2 ;;
  esac
done
