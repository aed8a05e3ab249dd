#!/usr/bin/env bash
# modelone against llama.cpp's llama-bench on the same DeepSeek-V4 shapes, threads and prompts.
#
#   scripts/peer_bench.sh [--threads 2] [--prompts 512,2048] [--decode 32] [--rounds 3]
#                         [--layers 4] [--experts 16] [--ranks 1] [--cache DIR] [--no-check]
#                         [--install] [--llama-args "ARGS"] [--modelone-args "ARGS"]
#
# Steps (each skipped when its output is already in the cache, default
# ${MODELONE_PEER_CACHE:-$HOME/.cache/modelone-peer}):
#   1. tools: node/npm, git, g++, tar, python3 with numpy (--install: apt-get the missing Debian
#      packages, as root; without it the script names them and stops);
#   2. npm pack @node-llama-cpp/linux-x64 and node-llama-cpp (3.22.1): the prebuilt CPU libraries
#      (libllama, libggml, one libggml-cpu-*.so per x86 level) and the llama.cpp source, cloned
#      from the package's llama/gitRelease.bundle;
#   3. llama-bench (and peer-logits, scripts/peer/logits.cpp) compiled with g++ against the
#      prebuilt libraries, placed beside them: ggml_backend_load_all() scores every
#      libggml-cpu-*.so in the executable's directory and loads the best for this CPU;
#   4. a random BF16 checkpoint of modelone's v4-flash preset cut to --layers layers and
#      --experts routed experts (scripts/peer/make_checkpoint.py), loaded once by modelone;
#   5. the same tensors as a llama.cpp deepseek4 GGUF (scripts/peer/to_gguf.py); unless
#      --no-check, both programs' logits on one 64-token prompt compared once;
#   6. R rounds, the two programs alternating which goes first: llama-bench prefill
#      (-p P -n 0) and decode at depth P (-p 0 -n N -d P), modelone `bench engine --contexts
#      P,... --decode-steps N --compute bf16` (with --ranks N > 1 under mpirun -np N, T/N threads
#      a rank); the medians over the rounds go to a table on stdout.
# --llama-args / --modelone-args: extra flags for llama-bench / modelone bench engine (e.g.
# "-fa on", "--kv-cache fp8"). Raw outputs: $CACHE/runs/<date>/. Needs the built modelone (build/modelone, or $MODELONE_BIN).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER=$ROOT/scripts/peer
NLC_VERSION=3.22.1
THREADS=2 PROMPTS=512,2048 DECODE=32 ROUNDS=3 LAYERS=4 EXPERTS=16 RANKS=1 CHECK=1 INSTALL=0
LLAMA_ARGS= MODELONE_ARGS=
CACHE=${MODELONE_PEER_CACHE:-$HOME/.cache/modelone-peer}
MODELONE=${MODELONE_BIN:-$ROOT/build/modelone}
PRESET=$ROOT/model/config/presets/v4-flash.pbtxt

log() { echo "peer_bench: $*" >&2; }
die() { echo "peer_bench: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
int() { [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] || die "$1 wants a positive integer, got '$2'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=${2:?}; shift 2 ;;
    --prompts) PROMPTS=${2:?}; shift 2 ;;
    --decode) DECODE=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --layers) LAYERS=${2:?}; shift 2 ;;
    --experts) EXPERTS=${2:?}; shift 2 ;;
    --ranks) RANKS=${2:?}; shift 2 ;;
    --cache) CACHE=${2:?}; shift 2 ;;
    --no-check) CHECK=0; shift ;;
    --install) INSTALL=1; shift ;;
    --llama-args) LLAMA_ARGS=${2?}; shift 2 ;;
    --modelone-args) MODELONE_ARGS=${2?}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "peer_bench: error: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
for v in THREADS DECODE ROUNDS LAYERS EXPERTS RANKS; do int "--${v,,}" "${!v}"; done
[[ $PROMPTS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--prompts wants a comma list of lengths, got '$PROMPTS'"
[ $((THREADS % RANKS)) -eq 0 ] || die "--threads $THREADS is not a multiple of --ranks $RANKS"
mkdir -p "$CACHE" && CACHE=$(cd "$CACHE" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

# --- 1. tools -----------------------------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need node nodejs; need npm npm; need git git; need g++ g++; need tar tar
[ "$RANKS" -gt 1 ] && need mpirun openmpi-bin
PY=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || missing+=(python3-numpy)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get install -y "${missing[@]}" >&2
    PY=/usr/bin/python3
  else
    die "missing Debian packages: ${missing[*]} (apt-get install -y ${missing[*]}, or rerun as root with --install)"
  fi
fi
[ -x "$MODELONE" ] || die "no modelone binary at $MODELONE (build it: scripts/setup.sh, or set MODELONE_BIN)"

# --- 2. llama.cpp: prebuilt CPU libraries and source from npm --------------------------------------
mkdir -p "$CACHE/npm"
for pkg in @node-llama-cpp/linux-x64 node-llama-cpp; do
  tgz=$CACHE/npm/$(echo "${pkg#@}" | tr / -)-$NLC_VERSION.tgz
  if [ ! -f "$tgz" ]; then
    log "npm pack $pkg@$NLC_VERSION"
    rm -rf "$CACHE/npm/tmp" && mkdir -p "$CACHE/npm/tmp"
    (cd "$CACHE/npm/tmp" && npm pack --silent "$pkg@$NLC_VERSION" >/dev/null) || die "npm pack $pkg@$NLC_VERSION failed"
    mv "$CACHE/npm/tmp/$(basename "$tgz")" "$tgz" 2>/dev/null || die "npm pack did not write $(basename "$tgz")"
    rmdir "$CACHE/npm/tmp"
  fi
done
unpack() {  # tgz dir
  [ -d "$2" ] && return 0
  log "unpacking $(basename "$1")"
  { rm -rf "$2.tmp" && mkdir -p "$2.tmp" && tar xzf "$1" -C "$2.tmp" && mv "$2.tmp" "$2"; } \
    || die "cannot unpack $1 (delete it to download again)"
}
unpack "$CACHE/npm/node-llama-cpp-linux-x64-$NLC_VERSION.tgz" "$CACHE/prebuilt"
unpack "$CACHE/npm/node-llama-cpp-$NLC_VERSION.tgz" "$CACHE/node-llama-cpp"
LIBS=$CACHE/prebuilt/package/bins/linux-x64
SRC=$CACHE/llama.cpp
[ -d "$LIBS" ] || die "no $LIBS in @node-llama-cpp/linux-x64@$NLC_VERSION"
if [ ! -d "$SRC/.git" ]; then
  log "git clone llama/gitRelease.bundle"
  rm -rf "$SRC.tmp"
  git clone -q "$CACHE/node-llama-cpp/package/llama/gitRelease.bundle" "$SRC.tmp" 2>/dev/null \
    || die "git clone of node-llama-cpp's llama/gitRelease.bundle failed"
  mv "$SRC.tmp" "$SRC"
fi
LLAMA_TAG=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$CACHE/node-llama-cpp/package/llama/llama.cpp.info.json" 2>/dev/null || true)
LLAMA_COMMIT=$(git -C "$SRC" rev-parse --short=12 HEAD)
log "llama.cpp ${LLAMA_TAG:-?} as node-llama-cpp $NLC_VERSION packages it: source bundle commit $LLAMA_COMMIT"
grep -q '"deepseek4"' "$SRC/src/llama-arch.cpp" || die "this llama.cpp has no deepseek4 architecture"

# --- 3. llama-bench against the prebuilt libraries -----------------------------------------------
BIN=$CACHE/bin
mkdir -p "$BIN"
for f in "$LIBS"/*.so; do ln -sf "$f" "$BIN/"; done
libllama=$(ls "$BIN"/libllama.v*.so 2>/dev/null | head -1 || true)
libggml=$(ls "$BIN"/libggml.v*.so 2>/dev/null | head -1 || true)
[ -n "$libllama" ] && [ -n "$libggml" ] && [ -f "$BIN/libllama-common.so" ] && [ -f "$BIN/libggml-base.so" ] \
  || die "the prebuilt package lacks libllama/libggml/libllama-common/libggml-base"
INC=(-I"$SRC/include" -I"$SRC/ggml/include")
if [ ! -x "$BIN/llama-bench" ]; then
  log "building llama-bench (g++, about 15 s)"
  nice -n 10 g++ -std=c++17 -O2 -DNDEBUG "${INC[@]}" -I"$SRC/common" -I"$SRC/vendor" -I"$SRC/tools/llama-bench" \
    "$SRC/tools/llama-bench/llama-bench.cpp" "$SRC/tools/llama-bench/main.cpp" -o "$BIN/llama-bench.tmp" \
    "$BIN/libllama-common.so" "$libllama" "$libggml" "$BIN/libggml-base.so" -Wl,-rpath,'$ORIGIN' -pthread \
    || die "compiling llama-bench failed"
  mv "$BIN/llama-bench.tmp" "$BIN/llama-bench"
fi
if [ "$CHECK" = 1 ] && [ ! -x "$BIN/peer-logits" ]; then
  log "building peer-logits"
  nice -n 10 g++ -std=c++17 -O2 "${INC[@]}" "$PEER/logits.cpp" -o "$BIN/peer-logits.tmp" \
    "$libllama" "$libggml" "$BIN/libggml-base.so" -Wl,-rpath,'$ORIGIN' || die "compiling peer-logits failed"
  mv "$BIN/peer-logits.tmp" "$BIN/peer-logits"
fi
CPU_BACKEND=$("$BIN/llama-bench" --list-devices 2>&1 | sed -n 's/.*loaded CPU backend from .*libggml-cpu-\(.*\)\.so.*/\1/p' | head -1)
[ -n "$CPU_BACKEND" ] || die "llama-bench loaded no CPU backend from $BIN"
log "llama.cpp CPU backend: libggml-cpu-$CPU_BACKEND.so"

# --- 4. the checkpoint both read --------------------------------------------------------------------
NAME=v4-flash-L$LAYERS-E$EXPERTS
CKPT=$CACHE/models/$NAME
GGUF=$CACHE/models/$NAME.gguf
if [ ! -f "$CKPT/config.json" ]; then
  log "writing checkpoint $CKPT"
  mkdir -p "$CKPT"
  "$PY" "$PEER/make_checkpoint.py" "$CKPT" --preset "$PRESET" --layers "$LAYERS" --experts "$EXPERTS" \
    || die "make_checkpoint.py failed"
fi
if [ ! -f "$CKPT/.modelone_ok" ]; then
  log "modelone run on $CKPT"
  "$MODELONE" run --model "$CKPT" --random-prompt 8 --generate 2 --threads "$THREADS" >&2 \
    || die "modelone cannot run $CKPT"
  touch "$CKPT/.modelone_ok"
fi

# --- 5. the GGUF ------------------------------------------------------------------------------------
if [ ! -f "$GGUF" ]; then
  log "writing $GGUF"
  PYTHONPATH=$SRC/gguf-py "$PY" "$PEER/to_gguf.py" "$CKPT" "$GGUF" || die "to_gguf.py failed"
fi
if [ "$CHECK" = 1 ] && [ ! -f "$GGUF.check" ]; then
  log "checking: prompt logits of llama.cpp and modelone (fp32 compute) on 64 tokens"
  ids=$("$PY" -c "import json,random; r=random.Random(7); v=json.load(open('$CKPT/config.json'))['vocab_size']; print(','.join(str(r.randrange(2, v)) for _ in range(64)))")
  tmpd=$(mktemp -d)
  "$BIN/peer-logits" "$GGUF" "$ids" "$tmpd/llama.f32" "$THREADS" 2>"$tmpd/llama.log" \
    || { tail -5 "$tmpd/llama.log" >&2; die "llama.cpp could not run $GGUF"; }
  "$MODELONE" run --model "$CKPT" --ids "$ids" --logits-out "$tmpd/modelone.npy" --compute fp32 \
    --threads "$THREADS" >/dev/null 2>&1 || die "modelone run --logits-out failed"
  "$PY" - "$tmpd" "$GGUF.check" <<'EOF' || die "llama.cpp and modelone disagree on the GGUF (see above)"
import sys, numpy as np
d, out = sys.argv[1], sys.argv[2]
a = np.load(d + "/modelone.npy"); b = np.fromfile(d + "/llama.f32", dtype=np.float32).reshape(a.shape)
diff = np.abs(a - b).max(axis=1)
agree = float((a.argmax(1) == b.argmax(1)).mean())
corr = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
line = ("check: %d positions, logits max |modelone fp32 - llama.cpp| %.4g (median per position %.4g) on values "
        "up to %.3g, correlation %.6f, top-1 agreement %.1f%%" % (a.shape[0], diff.max(), np.median(diff),
                                                                   np.abs(a).max(), corr, 100 * agree))
print("peer_bench: " + line, file=sys.stderr)
if corr < 0.99:  # bf16 rounding alone stays near 0.9999; a wrong layout gives about 0
    sys.exit(1)
open(out, "w").write(line + "\n")
EOF
  rm -rf "$tmpd"
fi

# --- 6. the benchmark --------------------------------------------------------------------------------
RUN=$CACHE/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
load=$(cut -d' ' -f1 /proc/loadavg)
log "load average $load before the runs; results in $RUN"
"$PY" -c "import sys; sys.exit(0 if float('$load') < 0.5 else 1)" \
  || log "warning: the machine is busy (load $load): other work skews both programs, llama.cpp's spinning threads most"

MO_CMD=("$MODELONE" bench engine --model "$CKPT" --contexts "$PROMPTS" --decode-steps "$DECODE"
        --threads $((THREADS / RANKS)) --compute bf16 --repetitions 1 --output jsonl $MODELONE_ARGS)
[ "$RANKS" -gt 1 ] && MO_CMD=(mpirun -np "$RANKS" "${MO_CMD[@]}")
run_llama() {  # round
  local p
  for p in ${PROMPTS//,/ }; do
    log "round $1: llama-bench prefill $p"
    "$BIN/llama-bench" -m "$GGUF" -p "$p" -n 0 -t "$THREADS" -r 1 -o jsonl $LLAMA_ARGS >>"$RUN/llama.$1.jsonl" 2>>"$RUN/llama.log" \
      || die "llama-bench failed (see $RUN/llama.log)"
    log "round $1: llama-bench decode $DECODE at depth $p"
    "$BIN/llama-bench" -m "$GGUF" -p 0 -n "$DECODE" -d "$p" -t "$THREADS" -r 1 -o jsonl $LLAMA_ARGS >>"$RUN/llama.$1.jsonl" 2>>"$RUN/llama.log" \
      || die "llama-bench failed (see $RUN/llama.log)"
  done
}
run_modelone() {  # round
  log "round $1: modelone bench engine (also times its fp32 path)"
  "${MO_CMD[@]}" >"$RUN/modelone.$1.jsonl" 2>>"$RUN/modelone.log" || die "modelone bench engine failed (see $RUN/modelone.log)"
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run_llama "$r"; run_modelone "$r"; else run_modelone "$r"; run_llama "$r"; fi
done
load_after=$(cut -d' ' -f1 /proc/loadavg)

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MO_COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || MO_COMMIT="$MO_COMMIT+dirty"
MACHINE="machine: $CPU, $(nproc) cores, $THREADS threads; llama.cpp ${LLAMA_TAG:-?} $LLAMA_COMMIT (node-llama-cpp $NLC_VERSION prebuilt, libggml-cpu-$CPU_BACKEND); modelone $MO_COMMIT$([ "$RANKS" -gt 1 ] && echo ", $RANKS ranks x $((THREADS / RANKS)) threads" || true); load $load -> $load_after"
"$PY" - "$RUN" "$ROUNDS" "$PROMPTS" "$DECODE" "$NAME" "$MACHINE" <<'EOF' | tee "$RUN/table.md"
import json, statistics, sys
run, rounds, prompts, decode, name, machine = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
prompts = [int(p) for p in prompts.split(",")]
got = {}  # (prog, metric, prompt) -> [values]
for r in range(1, rounds + 1):
    for line in open("%s/llama.%d.jsonl" % (run, r)):
        j = json.loads(line)
        if j["n_prompt"] > 0:
            got.setdefault(("llama", "pp", j["n_prompt"]), []).append(j["avg_ts"])
        else:
            got.setdefault(("llama", "tg", j["n_depth"]), []).append(1000.0 / j["avg_ts"])
    for line in open("%s/modelone.%d.jsonl" % (run, r)):
        j = json.loads(line)
        if j.get("bench") == "engine" and j.get("compute") == "bf16":
            got.setdefault(("mo", "pp", j["context"]), []).append(j["prefill_tok_s"])
            got.setdefault(("mo", "tg", j["context"]), []).append(j["decode_ms"])
builds = sorted({json.loads(l).get("build_commit", "?") for r in range(1, rounds + 1)
                 for l in open("%s/llama.%d.jsonl" % (run, r))})
machine = machine.replace("; modelone", ", libraries' build %s; modelone" % "/".join(builds), 1)
med = lambda k: statistics.median(got[k]) if k in got else float("nan")
print("%s (BF16 weights, random), %d round(s), medians; ratio = modelone speed / llama.cpp speed" % (name, rounds))
print()
print("| prompt | llama.cpp prefill tok/s | modelone prefill tok/s | ratio | llama.cpp decode ms/tok | modelone decode ms/tok | ratio |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for p in prompts:
    lp, mp, lt, mt = med(("llama", "pp", p)), med(("mo", "pp", p)), med(("llama", "tg", p)), med(("mo", "tg", p))
    print("| %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |" % (p, lp, mp, mp / lp, lt, mt, lt / mt))
print()
print("decode: %s tokens after a prompt of that length (llama-bench -d P: mean ms/token; modelone: median step)" % decode)
print(machine)
EOF
