#!/usr/bin/env python3
"""Write a random-weight DeepSeek-V4 checkpoint (transformers names, BF16, one model.safetensors
and config.json) with the shapes of a modelone preset cut to its first --layers layers and
--experts routed experts, the cut `--set num_hidden_layers=L --set n_routed_experts=E` makes:
the first L entries of the preset's compress_ratios (V4-Flash: 0 0 4 128 = sliding, sliding, CSA,
HCA) and its first min(L, num_hash_layers) layers hash-routed.

    make_checkpoint.py OUT_DIR [--preset model/config/presets/v4-flash.pbtxt] [--layers 4]
                       [--experts 16] [--seed 0]

Weights: matrices N(0, 0.02), norm weights 1, sinks / mHC bases / router biases small, mHC scales
about 1, hash tables random distinct experts per token. Tensors are generated and written one at
a time in row chunks, so memory stays near 256 MiB whatever the model's size. Needs numpy only.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PRESET = os.path.join(HERE, "..", "..", "model", "config", "presets", "v4-flash.pbtxt")
CHUNK = 64 << 20  # elements generated at once


def die(msg):
    sys.exit("make_checkpoint.py: " + msg)


def parse_pbtxt(path):
    """The flat subset of text proto the presets use: key: value, key: [list], key { ... }."""
    text = "\n".join(line.split("#", 1)[0] for line in open(path))
    out = {}
    tok = re.findall(r'"[^"]*"|[\[\]{}:,]|[^\s\[\]{}:,"]+', text)

    def atom(t):
        if t.startswith('"'):
            return t[1:-1]
        if t in ("true", "false"):
            return t == "true"
        try:
            return int(t)
        except ValueError:
            return float(t)

    def block(i, dst):
        while i < len(tok) and tok[i] != "}":
            key = tok[i]
            if tok[i + 1] == "{":
                dst[key] = {}
                i = block(i + 2, dst[key]) + 1
            elif tok[i + 2] == "[":
                vals, i = [], i + 3
                while tok[i] != "]":
                    if tok[i] != ",":
                        vals.append(atom(tok[i]))
                    i += 1
                dst[key] = vals
                i += 1
            else:
                dst[key] = atom(tok[i + 2])
                i += 3
        return i

    block(0, out)
    return out


def hf_config(p, layers, experts):
    if p.get("model_type", "deepseek_v4") != "deepseek_v4":
        die("only DeepSeek-V4 presets (model_type deepseek_v4), not %s" % p["model_type"])
    csa, hca = p.get("compress_rate_csa", 4), p.get("compress_rate_hca", 128)
    kind = {0: "sliding_attention", csa: "compressed_sparse_attention", hca: "heavily_compressed_attention"}
    if "layer_types" in p:
        types = p["layer_types"][:layers]
    else:
        for r in p["compress_ratios"]:
            if r not in kind:
                die("compress ratio %d is neither 0, CSA's %d nor HCA's %d" % (r, csa, hca))
        types = [kind[r] for r in p["compress_ratios"][:layers]]
    if len(types) < layers:
        die("the preset has %d layers, asked for %d" % (len(types), layers))
    mlp = p["mlp_layer_types"][:layers] if "mlp_layer_types" in p else \
        ["hash_moe"] * min(p.get("num_hash_layers", 0), layers)
    mlp += ["moe"] * (layers - len(mlp))
    prf = p.get("partial_rotary_factor", p.get("qk_rope_head_dim", 0) / p["head_dim"])
    rope_dim = int(round(prf * p["head_dim"]))
    ys = p.get("rope_compress", p.get("rope_scaling", {}))
    return {
        "architectures": ["DeepseekV4ForCausalLM"],
        "model_type": "deepseek_v4",
        "dtype": "bfloat16",
        "vocab_size": p["vocab_size"],
        "hidden_size": p["hidden_size"],
        "moe_intermediate_size": p["moe_intermediate_size"],
        "num_hidden_layers": layers,
        "num_attention_heads": p["num_attention_heads"],
        "num_key_value_heads": 1,
        "head_dim": p["head_dim"],
        "q_lora_rank": p["q_lora_rank"],
        "qk_rope_head_dim": rope_dim,
        "partial_rotary_factor": prf,
        "num_experts_per_tok": p["num_experts_per_tok"],
        "n_routed_experts": experts,
        "n_shared_experts": p.get("n_shared_experts", 1),
        "norm_topk_prob": True,
        "scoring_func": p.get("scoring_func", "sqrtsoftplus"),
        "routed_scaling_factor": p.get("routed_scaling_factor", 1.5),
        "max_position_embeddings": p["max_position_embeddings"],
        "compress_rates": {"compressed_sparse_attention": csa, "heavily_compressed_attention": hca},
        "layer_types": types,
        "mlp_layer_types": mlp,
        "hc_mult": p["hc_mult"],
        "hc_sinkhorn_iters": p["hc_sinkhorn_iters"],
        "hc_eps": p["hc_eps"],
        "swiglu_limit": p["swiglu_limit"],
        "sliding_window": p["sliding_window"],
        "o_groups": p["o_groups"],
        "o_lora_rank": p["o_lora_rank"],
        "index_n_heads": p["index_n_heads"],
        "index_head_dim": p["index_head_dim"],
        "index_topk": p["index_topk"],
        "rms_norm_eps": p["rms_norm_eps"],
        "hidden_act": "silu",
        "bos_token_id": p.get("bos_token_id", 0),
        "eos_token_id": p.get("eos_token_id", 1),
        "tie_word_embeddings": False,
        "rope_theta": p.get("rope_theta", 10000),
        "compress_rope_theta": ys.get("rope_theta", p.get("compress_rope_theta", 160000)),
        "rope_parameters": {
            "main": {"rope_type": "default", "rope_theta": p.get("rope_theta", 10000), "partial_rotary_factor": prf},
            "compress": {"rope_type": ys.get("rope_type", "yarn"), "rope_theta": ys.get("rope_theta", p.get("compress_rope_theta", 160000)),
                         "factor": ys.get("factor", 16), "beta_fast": ys.get("beta_fast", 32),
                         "beta_slow": ys.get("beta_slow", 1), "attention_factor": 1.0,
                         "original_max_position_embeddings": ys.get("original_max_position_embeddings", 65536),
                         "partial_rotary_factor": prf},
        },
    }


# (name, shape, init) in modelone's tensor table order. init: ("normal", mean, std) | "tid2eid"
def tensor_list(c):
    H, V, E, F = c["hidden_size"], c["vocab_size"], c["n_routed_experts"], c["moe_intermediate_size"]
    hd, nh, ql = c["head_dim"], c["num_attention_heads"], c["q_lora_rank"]
    hc, og, olr = c["hc_mult"], c["o_groups"], c["o_lora_rank"]
    ih, idim = c["index_n_heads"], c["index_head_dim"]
    mix = (2 + hc) * hc
    rate = {"compressed_sparse_attention": c["compress_rates"]["compressed_sparse_attention"],
            "heavily_compressed_attention": c["compress_rates"]["heavily_compressed_attention"]}
    mat, norm, small, scale = ("normal", 0.0, 0.02), ("normal", 1.0, 0.0), ("normal", 0.0, 0.05), ("normal", 1.0, 0.05)
    t = [("model.embed_tokens.weight", [V, H], mat), ("head.weight", [V, H], mat),
         ("model.norm.weight", [H], norm), ("model.hc_head.hc_fn", [hc, hc * H], mat),
         ("model.hc_head.hc_base", [hc], small), ("model.hc_head.hc_scale", [1], scale)]
    for l, kind in enumerate(c["layer_types"]):
        p = "model.layers.%d." % l
        t += [(p + "attn_norm.weight", [H], norm), (p + "ffn_norm.weight", [H], norm)]
        for site in ("attn", "ffn"):
            t += [(p + "hc_%s_fn" % site, [mix, hc * H], mat), (p + "hc_%s_base" % site, [mix], small),
                  (p + "hc_%s_scale" % site, [3], scale)]
        a = p + "attn."
        t += [(a + "wq_a.weight", [ql, H], mat), (a + "q_norm.weight", [ql], norm),
              (a + "wq_b.weight", [nh * hd, ql], mat), (a + "wkv.weight", [hd, H], mat),
              (a + "norm.weight", [hd], norm), (a + "wo_a.weight", [og * olr, nh * hd // og], mat),
              (a + "wo_b.weight", [H, og * olr], mat), (a + "attn_sink", [nh], small)]
        if kind != "sliding_attention":
            w = 2 * hd if kind == "compressed_sparse_attention" else hd
            t += [(a + "compressor.wkv.weight", [w, H], mat), (a + "compressor.wgate.weight", [w, H], mat),
                  (a + "compressor.ape", [rate[kind], w], mat), (a + "compressor.norm.weight", [hd], norm)]
        if kind == "compressed_sparse_attention":
            i = a + "indexer."
            t += [(i + "compressor.wkv.weight", [2 * idim, H], mat),
                  (i + "compressor.wgate.weight", [2 * idim, H], mat),
                  (i + "compressor.ape", [rate[kind], 2 * idim], mat),
                  (i + "compressor.norm.weight", [idim], norm),
                  (i + "wq_b.weight", [ih * idim, ql], mat), (i + "weights_proj.weight", [ih, H], mat)]
        f = p + "ffn."
        t.append((f + "gate.weight", [E, H], mat))
        if c["mlp_layer_types"][l] == "moe":
            t.append((f + "gate.bias", [E], ("normal", 0.0, 0.1)))
        else:
            t.append((f + "gate.tid2eid", [V, c["num_experts_per_tok"]], "tid2eid"))
        for e in range(E):
            t += [(f + "experts.%d.w1.weight" % e, [F, H], mat), (f + "experts.%d.w2.weight" % e, [H, F], mat),
                  (f + "experts.%d.w3.weight" % e, [F, H], mat)]
        if c["n_shared_experts"] > 0:
            S = F * c["n_shared_experts"]
            t += [(f + "shared_experts.w1.weight", [S, H], mat), (f + "shared_experts.w2.weight", [H, S], mat),
                  (f + "shared_experts.w3.weight", [S, H], mat)]
    return t


def to_bf16(x):
    """float32 -> bf16 bits (round to nearest even) as uint16."""
    u = x.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write(out_dir, cfg, seed):
    tensors = tensor_list(cfg)
    header, off = {}, 0
    for name, shape, init in tensors:
        dt, size = ("I64", 8) if init == "tid2eid" else ("BF16", 2)
        n = size * int(np.prod(shape))
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    rng = np.random.default_rng(seed)
    tmp = os.path.join(out_dir, "model.safetensors.partial")
    total = off
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        done, last = 0, -1
        for name, shape, init in tensors:
            if init == "tid2eid":
                V, k = shape
                E = cfg["n_routed_experts"]
                for r0 in range(0, V, 1 << 16):
                    r = min(V, r0 + (1 << 16)) - r0
                    f.write(np.argsort(rng.random((r, E), dtype=np.float32), axis=1)[:, :k].astype("<i8").tobytes())
                done += V * k * 8
                continue
            _, mean, std = init
            n = int(np.prod(shape))
            for s in range(0, n, CHUNK):
                m = min(n, s + CHUNK) - s
                x = np.full(m, mean, dtype=np.float32) if std == 0 else \
                    rng.standard_normal(m, dtype=np.float32) * np.float32(std) + np.float32(mean)
                f.write(to_bf16(x).tobytes())
            done += 2 * n
            pct = int(100 * done / total) // 10
            if pct != last:
                print("make_checkpoint.py: %3d%% (%.1f of %.1f GiB)" % (10 * pct, done / 2**30, total / 2**30),
                      file=sys.stderr, flush=True)
                last = pct
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))
    return len(tensors), total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--preset", default=DEFAULT_PRESET)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not os.path.isfile(a.preset):
        die("no preset file %s" % a.preset)
    p = parse_pbtxt(a.preset)
    if a.layers < 1 or a.experts < p["num_experts_per_tok"]:
        die("--layers must be >= 1 and --experts >= num_experts_per_tok (%d)" % p["num_experts_per_tok"])
    cfg = hf_config(p, a.layers, a.experts)
    os.makedirs(a.out, exist_ok=True)
    n, total = write(a.out, cfg, a.seed)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("make_checkpoint.py: wrote %s: %d tensors, %.2f GiB BF16, layers %s, %d experts" %
          (a.out, n, total / 2**30, " ".join(cfg["layer_types"]), a.experts), file=sys.stderr)


if __name__ == "__main__":
    main()
