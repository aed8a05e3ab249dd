#!/usr/bin/env python3
"""Convert a DeepSeek-V4 checkpoint modelone reads (config.json in transformers' form, BF16/F32
safetensors under transformers or DeepSeek release names) to a llama.cpp `deepseek4` GGUF of the
same tensors, for llama-bench.

    PYTHONPATH=<llama.cpp>/gguf-py to_gguf.py SRC_DIR OUT.gguf

What it writes, learnt from llama.cpp's own DeepSeek-V4 converter (conversion/deepseek.py) and
loader (src/models/deepseek4.cpp), not copied from them:
  - every matrix in BF16 (the source's bits unchanged); 1-D tensors (norms, sinks, biases, mHC
    bases and scales) in F32, as llama.cpp's converter writes them; the hash tables in I32;
  - the routed experts of a layer stacked into one [E, rows, cols] tensor per projection
    (w1 -> ffn_gate_exps, w2 -> ffn_down_exps, w3 -> ffn_up_exps), in BF16 where llama.cpp's
    converter would repack DeepSeek's FP4 experts to MXFP4;
  - no transposes: GGUF's dimension order is numpy's reversed, which is what the loader expects;
  - a top-k layer's router bias as exp_probs_b (a hash layer has none);
  - no tokenizer: tokenizer.ggml.model "none" and deepseek4.vocab_size (llama.cpp then makes
    that many dummy tokens; llama-bench only draws random ids).
Tensors are read through a memory map and written one at a time (memory: one layer's experts).
Needs numpy and llama.cpp's gguf-py.
"""
import json
import os
import re
import struct
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("to_gguf.py: cannot import gguf: set PYTHONPATH=<llama.cpp source>/gguf-py")

sys.dont_write_bytecode = True  # no __pycache__ in the repository's scripts/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from release_checkpoint import checkpoint_files, release_name  # noqa: E402

T = gguf.MODEL_TENSOR
# release-name suffix of a layer tensor -> llama.cpp tensor, name suffix
LAYER = {
    "attn_norm.weight": (T.ATTN_NORM, "weight"), "ffn_norm.weight": (T.FFN_NORM, "weight"),
    "hc_attn_fn": (T.HC_ATTN_FN, "weight"), "hc_attn_base": (T.HC_ATTN_BASE, "weight"),
    "hc_attn_scale": (T.HC_ATTN_SCALE, "weight"), "hc_ffn_fn": (T.HC_FFN_FN, "weight"),
    "hc_ffn_base": (T.HC_FFN_BASE, "weight"), "hc_ffn_scale": (T.HC_FFN_SCALE, "weight"),
    "attn.attn_sink": (T.ATTN_SINKS, "weight"),
    "attn.wq_a.weight": (T.ATTN_Q_A, "weight"), "attn.q_norm.weight": (T.ATTN_Q_A_NORM, "weight"),
    "attn.wq_b.weight": (T.ATTN_Q_B, "weight"), "attn.wkv.weight": (T.ATTN_KV, "weight"),
    "attn.kv_norm.weight": (T.ATTN_KV_NORM, "weight"), "attn.wo_a.weight": (T.ATTN_OUT_A, "weight"),
    "attn.wo_b.weight": (T.ATTN_OUT_B, "weight"),
    "attn.compressor.wkv.weight": (T.ATTN_COMPRESSOR_WKV, "weight"),
    "attn.compressor.wgate.weight": (T.ATTN_COMPRESSOR_WGATE, "weight"),
    "attn.compressor.ape": (T.ATTN_COMPRESSOR_APE, "weight"),
    "attn.compressor.norm.weight": (T.ATTN_COMPRESSOR_NORM, "weight"),
    "attn.indexer.wq_b.weight": (T.INDEXER_ATTN_Q_B, "weight"),
    "attn.indexer.weights_proj.weight": (T.INDEXER_PROJ, "weight"),
    "attn.indexer.compressor.wkv.weight": (T.INDEXER_COMPRESSOR_WKV, "weight"),
    "attn.indexer.compressor.wgate.weight": (T.INDEXER_COMPRESSOR_WGATE, "weight"),
    "attn.indexer.compressor.ape": (T.INDEXER_COMPRESSOR_APE, "weight"),
    "attn.indexer.compressor.norm.weight": (T.INDEXER_COMPRESSOR_NORM, "weight"),
    "ffn.gate.weight": (T.FFN_GATE_INP, "weight"), "ffn.gate.bias": (T.FFN_EXP_PROBS_B, "bias"),
    "ffn.gate.tid2eid": (T.FFN_GATE_TID2EID, "weight"),
    "ffn.shared_experts.w1.weight": (T.FFN_GATE_SHEXP, "weight"),
    "ffn.shared_experts.w2.weight": (T.FFN_DOWN_SHEXP, "weight"),
    "ffn.shared_experts.w3.weight": (T.FFN_UP_SHEXP, "weight"),
}
GLOBAL = {"embed.weight": T.TOKEN_EMBD, "head.weight": T.OUTPUT, "norm.weight": T.OUTPUT_NORM,
          "hc_head_fn": T.HC_HEAD_FN, "hc_head_base": T.HC_HEAD_BASE, "hc_head_scale": T.HC_HEAD_SCALE}
EXPERT = {"w1": T.FFN_GATE_EXP, "w2": T.FFN_DOWN_EXP, "w3": T.FFN_UP_EXP}
NP = {"BF16": np.uint16, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def die(msg):
    sys.exit("to_gguf.py: " + msg)


def gname(t, bid=None, suffix="weight"):
    return gguf.TENSOR_NAMES[t].format(bid=bid) + "." + suffix


def open_checkpoint(d):
    """name -> (dtype, memmapped array) for every tensor; mtp.* skipped like llama.cpp does."""
    out = {}
    for fn in checkpoint_files(d):
        path = os.path.join(d, fn)
        if not os.path.isfile(path):
            die("missing %s" % path)
        with open(path, "rb") as f:
            (hl,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(hl))
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        for name, e in header.items():
            if name == "__metadata__" or name.startswith("mtp."):
                continue
            if e["dtype"] not in NP:
                die("%s: dtype %s not handled (BF16, F32, F16, I64, I32; dequantize FP8/FP4 first)"
                    % (name, e["dtype"]))
            a, b = e["data_offsets"]
            out[release_name(name)] = (e["dtype"], mm[8 + hl + a:8 + hl + b].view(NP[e["dtype"]]).reshape(e["shape"]))
    return out


def as_f32(dt, a):
    if dt == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def as_bf16(dt, a):
    if dt == "BF16":
        return np.asarray(a)
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def plan(c, ts):
    """[(gguf name, numpy shape, GGML type, () -> array)] in loader order."""
    L, E = c["num_hidden_layers"], c["n_routed_experts"]
    out, used = [], set()

    def add(name, src):
        dt, a = ts[src]
        used.add(src)
        if src.endswith("tid2eid"):
            out.append((name, a.shape, gguf.GGMLQuantizationType.I32, lambda: np.asarray(a).astype(np.int32)))
        elif a.ndim == 1:
            out.append((name, a.shape, gguf.GGMLQuantizationType.F32, lambda: as_f32(dt, a)))
        else:
            out.append((name, a.shape, gguf.GGMLQuantizationType.BF16, lambda: as_bf16(dt, a)))

    for src, t in GLOBAL.items():
        if src not in ts:
            die("missing tensor %s (tied embeddings are not handled)" % src)
        add(gname(t), src)
    for l in range(L):
        for suf, (t, s) in LAYER.items():
            src = "layers.%d.%s" % (l, suf)
            if src in ts:
                add(gname(t, l, s), src)
        for w, t in EXPERT.items():
            srcs = ["layers.%d.ffn.experts.%d.%s.weight" % (l, e, w) for e in range(E)]
            for s in srcs:
                if s not in ts:
                    die("missing tensor %s" % s)
                used.add(s)
            shape = (E,) + tuple(ts[srcs[0]][1].shape)
            out.append((gname(t, l), shape, gguf.GGMLQuantizationType.BF16,
                        lambda srcs=srcs: np.stack([as_bf16(*ts[s]) for s in srcs])))
    left = sorted(set(ts) - used)
    if left:
        die("tensors with no llama.cpp deepseek4 counterpart: %s%s" % (", ".join(left[:5]), " ..." if len(left) > 5 else ""))
    return out


def metadata(w, c):
    L = c["num_hidden_layers"]
    rates = c.get("compress_rates", {})
    csa = rates.get("compressed_sparse_attention", 4)
    hca = rates.get("heavily_compressed_attention", 128)
    if "compress_ratios" in c:
        ratios = list(c["compress_ratios"][:L])
    else:
        kind = {"sliding_attention": 0, "compressed_sparse_attention": csa, "heavily_compressed_attention": hca}
        ratios = [kind[k] for k in c["layer_types"]]
    if not any(ratios):
        die("no compressed (CSA/HCA) layer in %s: llama.cpp's deepseek4 dies of SIGFPE on such a model "
            "(seen with one sliding layer); keep at least one CSA or HCA layer (V4-Flash: --layers 3 or more)" % ratios)
    if csa != 4 or hca != 128:
        die("llama.cpp's deepseek4 only knows compress ratios 4 (CSA) and 128 (HCA), got %d and %d" % (csa, hca))
    mlp = c.get("mlp_layer_types", ["hash_moe"] * c.get("num_hash_layers", 0))[:L]
    n_hash = sum(1 for m in mlp if m == "hash_moe")
    if mlp[:n_hash] != ["hash_moe"] * n_hash:
        die("llama.cpp's deepseek4 wants the hash-routed layers first, got %s" % mlp)
    H, hd = c["hidden_size"], c["head_dim"]
    rope_dim = c.get("qk_rope_head_dim") or int(round(c["partial_rotary_factor"] * hd))
    rp = c.get("rope_parameters", {})
    main = rp.get("main", {})
    comp = rp.get("compress", c.get("rope_scaling") or {})

    w.add_name("modelone peer checkpoint")
    w.add_block_count(L)
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(H)
    w.add_embedding_length_out(H * c["hc_mult"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c.get("num_key_value_heads", 1))
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_q_lora_rank(c["q_lora_rank"])
    w.add_sliding_window(c["sliding_window"])
    w.add_rope_dimension_count(rope_dim)
    w.add_rope_freq_base(main.get("rope_theta", c.get("rope_theta", 10000)))
    if comp.get("rope_type", comp.get("type")) == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(comp["factor"])
        w.add_rope_scaling_orig_ctx_len(comp["original_max_position_embeddings"])
        w.add_rope_scaling_yarn_beta_fast(comp.get("beta_fast", 32))
        w.add_rope_scaling_yarn_beta_slow(comp.get("beta_slow", 1))
    w.add_attention_compress_rope_freq_base(comp.get("rope_theta", c.get("compress_rope_theta", 160000)))
    w.add_attention_compress_ratios(ratios)
    w.add_expert_count(c["n_routed_experts"])
    w.add_expert_used_count(c["num_experts_per_tok"])
    w.add_expert_feed_forward_length(c["moe_intermediate_size"])
    w.add_expert_shared_count(c.get("n_shared_experts", 1))
    w.add_expert_weights_scale(c.get("routed_scaling_factor", 1.0))
    w.add_expert_weights_norm(c.get("norm_topk_prob", True))
    if c.get("scoring_func", "sqrtsoftplus") != "sqrtsoftplus":
        die("llama.cpp's deepseek4 only scores experts with sqrtsoftplus")
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SQRTSOFTPLUS)
    w.add_swiglu_clamp_exp([float(c["swiglu_limit"])] * L)
    w.add_swiglu_clamp_shexp([float(c["swiglu_limit"])] * L)
    w.add_indexer_head_count(c["index_n_heads"])
    w.add_indexer_key_length(c["index_head_dim"])
    w.add_indexer_top_k(c["index_topk"])
    w.add_attention_output_group_count(c["o_groups"])
    w.add_attention_output_lora_rank(c["o_lora_rank"])
    w.add_hyper_connection_count(c["hc_mult"])
    w.add_hyper_connection_sinkhorn_iterations(c["hc_sinkhorn_iters"])
    w.add_hyper_connection_epsilon(c["hc_eps"])
    w.add_hash_layer_count(n_hash)
    w.add_tokenizer_model("none")
    w.add_vocab_size(c["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: to_gguf.py SRC_DIR OUT.gguf")
    src, out = sys.argv[1], sys.argv[2]
    cfg_path = os.path.join(src, "config.json")
    if not os.path.isfile(cfg_path):
        die("no %s" % cfg_path)
    c = json.load(open(cfg_path))
    if c.get("model_type", "deepseek_v4") != "deepseek_v4":
        die("model_type %s: llama.cpp's deepseek4 runs DeepSeek-V4 only" % c.get("model_type"))
    ts = open_checkpoint(src)
    tensors = plan(c, ts)
    tmp = out + ".partial"
    w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.DEEPSEEK4])
    metadata(w, c)
    for name, shape, typ, _ in tensors:
        nbytes = int(np.prod(shape)) * (4 if typ in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.I32) else 2)
        w.add_tensor_info(name, shape, np.dtype(np.uint16), nbytes, raw_dtype=typ)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = sum(int(np.prod(s)) for _, s, _, _ in tensors)
    done, last = 0, -1
    for name, shape, typ, make in tensors:
        a = np.ascontiguousarray(make())
        if tuple(a.shape) != tuple(shape):
            die("%s: built shape %s, planned %s" % (name, a.shape, shape))
        w.write_tensor_data(a)
        done += a.size
        pct = 10 * done // total
        if pct != last:
            print("to_gguf.py: %3d%%" % (10 * pct), file=sys.stderr, flush=True)
            last = pct
    w.close()
    os.replace(tmp, out)
    print("to_gguf.py: wrote %s: %d tensors, %.2f GiB" % (out, len(tensors), os.path.getsize(out) / 2**30),
          file=sys.stderr)


if __name__ == "__main__":
    main()
