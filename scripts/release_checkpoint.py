#!/usr/bin/env python3
"""Convert an fp32/bf16/f16 DeepSeek-V4 or V4.1 checkpoint (transformers or release names) to
DeepSeek's release format, and write its exactly-dequantized fp32 twin beside it.

    scripts/release_checkpoint.py SRC_DIR OUT_DIR [--block 128] [--no-fp4]

V4.1 (model_type deepseek_v41): FP8 blocks of 32 by default, the Engram wkv in FP8 too, the
Engram tables (already F8_E4M3 rows with F8_E8M0 scales) and engram_compression_map.npy copied
to both outputs as they are.

OUT_DIR gets the release names (embed.weight, layers.N.attn.wq_a.weight, ...); the projections the
release quantizes (attn wq_a / wq_b / wkv / wo_a / wo_b, the indexer's wq_b, the shared experts)
in F8_E4M3 with F8_E8M0 block scales of --block x --block (short edge blocks); routed experts in
FP4 e2m1, two codes a byte in an I8 tensor (low nibble first) with an E8M0 scale per 32 inputs
(or FP8 with --no-fp4); everything else as it was. config.json gains quantization_config.
OUT_DIR_twin gets the same model in fp32 under transformers names, every quantized tensor replaced
by exactly what its codes and scales decode to, so the two must give the same logits.
Needs numpy only.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

FP8_SUFFIXES = (".attn.wq_a.weight", ".attn.wq_b.weight", ".attn.wkv.weight", ".attn.wo_a.weight",
                ".attn.wo_b.weight", ".indexer.wq_b.weight", ".shared_experts.w1.weight",
                ".shared_experts.w2.weight", ".shared_experts.w3.weight", ".engram.wkv.weight")
RAW = ("F8_E4M3", "F8_E8M0")  # already in a release dtype (V4.1's Engram tables): kept as bytes
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float32)


def release_name(n):
    if n.startswith("model.embed_tokens."):
        return "embed." + n[len("model.embed_tokens."):]
    if n.startswith("model.hc_head.hc_"):
        return "hc_head_" + n[len("model.hc_head.hc_"):]
    if not n.startswith("model."):
        return n
    r = n[len("model."):]
    if r.startswith("layers."):
        r = r.replace(".attn.norm.", ".attn.kv_norm.")
    return r


# --- safetensors (numpy only) ---------------------------------------------------------------
def read_safetensors(path):
    with open(path, "rb") as f:
        (hl,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hl))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = np.frombuffer(data[a:b], dtype=np.uint8)
        dt, shape = e["dtype"], e["shape"]
        if dt == "F32":
            v = raw.view("<f4")
        elif dt == "F16":
            v = raw.view("<f2").astype(np.float32)
        elif dt == "BF16":
            v = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt in ("I64", "I32"):
            v = raw.view("<i8" if dt == "I64" else "<i4").astype(np.int64)
        elif dt in RAW:
            out[name] = (dt, raw.reshape(shape))
            continue
        else:
            raise SystemExit("release_checkpoint.py: %s: unsupported input dtype %s" % (name, dt))
        out[name] = v.reshape(shape)
    return out


def checkpoint_files(d):
    """The safetensors files of checkpoint directory d: its index's shards, or model.safetensors."""
    index = os.path.join(d, "model.safetensors.index.json")
    return sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]


def read_checkpoint(d):
    tensors = {}
    for f in checkpoint_files(d):
        tensors.update(read_safetensors(os.path.join(d, f)))
    return tensors


def write_safetensors(path, tensors):
    """tensors: name -> (dtype string, numpy array of the stored bytes' type)."""
    header, blobs, off = {}, [], 0
    for name, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


# --- quantization ---------------------------------------------------------------------------
def e4m3_table():
    """Value of each e4m3 ("fn") code; NaN codes 0x7f / 0xff excluded by the caller."""
    v = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 15, c & 7
        mag = (m / 8.0) * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7)
        v[c] = -mag if s else mag
    return v


E4M3 = e4m3_table()
POS = np.arange(0, 0x7f)  # non-negative finite codes, increasing in value


def to_e4m3(x):
    """Nearest e4m3 code of each value (saturating at 448)."""
    a = np.minimum(np.abs(x), 448.0)
    i = np.clip(np.searchsorted(E4M3[POS], a), 1, len(POS) - 1)
    lo, hi = E4M3[POS][i - 1], E4M3[POS][i]
    code = np.where(a - lo <= hi - a, POS[i - 1], POS[i]).astype(np.uint8)
    return np.where((x < 0) & (code != 0), code | 0x80, code).astype(np.uint8)


def pow2_at_least(a):
    a = np.where(a > 0, a, 1.0)
    return np.exp2(np.ceil(np.log2(a)))


def quant_fp8(w, block):
    """codes [R, C] uint8, scales [ceil(R/B), ceil(C/B)] as E8M0 bytes, exact dequantized fp32."""
    R, C = w.shape
    nr, nc = -(-R // block), -(-C // block)
    pad = np.zeros((nr * block, nc * block), dtype=np.float64)
    pad[:R, :C] = w
    blocks = pad.reshape(nr, block, nc, block)
    s = pow2_at_least(np.abs(blocks).max(axis=(1, 3)) / 448.0)
    codes = to_e4m3(blocks / s[:, None, :, None]).reshape(nr * block, nc * block)[:R, :C]
    deq = (E4M3[codes].reshape(R, C) *
           np.repeat(np.repeat(s, block, 0), block, 1)[:R, :C]).astype(np.float32)
    e8m0 = (np.log2(s) + 127).astype(np.uint8)
    return codes, e8m0, deq


def quant_fp4(w):
    """packed [R, C/2] int8, scales [R, C/32] E8M0 bytes, exact dequantized fp32."""
    R, C = w.shape
    assert C % 32 == 0, "FP4 needs the input dim a multiple of 32"
    g = w.reshape(R, C // 32, 32).astype(np.float64)
    s = pow2_at_least(np.abs(g).max(axis=2) / 6.0)
    x = g / s[:, :, None]
    mag = np.abs(np.abs(x)[..., None] - E2M1).argmin(axis=-1)  # nearest magnitude
    code = (mag | np.where((x < 0) & (mag != 0), 8, 0)).astype(np.uint8).reshape(R, C)
    deq = (np.where(code & 8, -1.0, 1.0) * E2M1[code & 7] *
           np.repeat(s, 32, axis=1)).astype(np.float32)
    packed = (code[:, 0::2] | (code[:, 1::2] << 4)).astype(np.uint8).view(np.int8)
    e8m0 = (np.log2(s) + 127).astype(np.uint8)
    return packed, e8m0, deq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--block", type=int, default=0,
                    help="FP8 block size (default: 128 for V4, 32 for V4.1)")
    ap.add_argument("--no-fp4", action="store_true", help="routed experts in FP8, not FP4")
    a = ap.parse_args()
    twin = a.out.rstrip("/") + "_twin"
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    if a.block == 0:
        a.block = 32 if cfg.get("model_type") == "deepseek_v41" else 128
    tensors = read_checkpoint(a.src)
    rel, tw = {}, {}
    for name, v in tensors.items():
        rn = release_name(name)
        base = rn[:-len(".weight")] if rn.endswith(".weight") else rn
        expert = ".ffn.experts." in name
        if isinstance(v, tuple):  # stored in a release dtype already
            rel[rn], tw[name] = v, v
            continue
        if v.dtype == np.int64:
            rel[rn], tw[name] = ("I64", v), ("I64", v)
            continue
        v = v.astype(np.float32)
        if expert and not a.no_fp4:
            packed, sc, deq = quant_fp4(v)
            rel[rn], rel[base + ".scale"] = ("I8", packed), ("F8_E8M0", sc)
        elif expert or name.endswith(FP8_SUFFIXES):
            codes, sc, deq = quant_fp8(v, a.block)
            rel[rn], rel[base + ".scale"] = ("F8_E4M3", codes), ("F8_E8M0", sc)
        else:
            deq = v
            rel[rn] = ("F32", v)
        tw[name] = ("F32", deq)
    for d in (a.out, twin):
        os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(twin, "config.json"), "w"), indent=2)
    cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "scale_fmt": "ue8m0",
                                  "weight_block_size": [a.block, a.block]}
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    write_safetensors(os.path.join(a.out, "model.safetensors"), rel)
    write_safetensors(os.path.join(twin, "model.safetensors"), tw)
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json",
              "engram_compression_map.npy"):
        if os.path.exists(os.path.join(a.src, f)):
            shutil.copy(os.path.join(a.src, f), a.out)
            if f == "engram_compression_map.npy":
                shutil.copy(os.path.join(a.src, f), twin)
    print("release_checkpoint.py: wrote %s (%d tensors, FP8 block %d%s) and %s"
          % (a.out, len(rel), a.block, "" if a.no_fp4 else ", FP4 experts", twin))


if __name__ == "__main__":
    main()
