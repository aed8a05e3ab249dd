#!/usr/bin/env python3
"""Grow a DeepSeek-V4 checkpoint's routed experts (count and width) with random weights, so that
the experts dominate its size: a model for measuring weight memory (peak RSS against `modelone
inspect`), not for accuracy.

    scripts/grow_experts.py SRC_DIR OUT_DIR [--experts 256] [--moe-intermediate 512] [--seed 0]

Every other tensor is copied. Per MoE layer the router (gate.weight [E, hidden], gate.bias [E]),
the experts (w1, w3 [I, hidden], w2 [hidden, I]) and the shared experts (I x n_shared_experts wide)
are drawn again at the new sizes with the
source's spread; the hash layers' tid2eid keeps naming experts below the old count, which stays
valid. Writes fp32 under transformers names; feed it to release_checkpoint.py for the FP8/FP4
copy. Needs numpy only.
"""
import argparse
import json
import os
import re
import shutil

import numpy as np

from release_checkpoint import read_checkpoint, write_safetensors

EXPERT = re.compile(r"^(model\.layers\.\d+\.ffn)\.(experts\.\d+|shared_experts)\.(w[123])\.weight$")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--experts", type=int, default=256)
    ap.add_argument("--moe-intermediate", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    if a.experts < cfg["n_routed_experts"] or a.moe_intermediate % 32:
        raise SystemExit("grow_experts.py: --experts must not shrink the model (%d now) and "
                         "--moe-intermediate must be a multiple of 32" % cfg["n_routed_experts"])
    hidden, E, inter = cfg["hidden_size"], a.experts, a.moe_intermediate
    rng = np.random.default_rng(a.seed)
    src = read_checkpoint(a.src)
    out, spread, ffns = {}, {}, set()
    for name, v in src.items():
        m = EXPERT.match(name)
        if m:  # dropped; drawn again below at the new size
            ffns.add(m.group(1))
            spread[m.group(3)] = float(v.std())
            continue
        out[name] = v
    for ffn in sorted(ffns):
        if ffn + ".gate.weight" in out:
            g = out[ffn + ".gate.weight"]
            out[ffn + ".gate.weight"] = rng.normal(0, g.std(), (E, hidden)).astype(np.float32)
        if ffn + ".gate.bias" in out:
            out[ffn + ".gate.bias"] = rng.normal(0, 0.01, E).astype(np.float32)
        shared = inter * cfg.get("n_shared_experts", 1)
        for ex, width in [("experts.%d" % e, inter) for e in range(E)] + [("shared_experts", shared)]:
            for w, shape in (("w1", (width, hidden)), ("w3", (width, hidden)), ("w2", (hidden, width))):
                out["%s.%s.%s.weight" % (ffn, ex, w)] = rng.normal(0, spread[w], shape).astype(np.float32)
    os.makedirs(a.out, exist_ok=True)
    cfg["n_routed_experts"], cfg["moe_intermediate_size"], cfg["dtype"] = E, inter, "float32"
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    write_safetensors(os.path.join(a.out, "model.safetensors"),
                      {n: ("I64" if v.dtype == np.int64 else "F32", v) for n, v in out.items()})
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(os.path.join(a.src, f)):
            shutil.copy(os.path.join(a.src, f), a.out)
    print("grow_experts.py: wrote %s (%d experts of width %d in %d layers)" % (a.out, E, inter, len(ffns)))


if __name__ == "__main__":
    main()
