#!/usr/bin/env python3
"""scripts/release_checkpoint.py on the transformers fixture, at FP8 block 128 and 32 with FP4
experts: `modelone run` on the release copy and on its fp32 twin gives logits within 1e-5 and the
same greedy tokens, on 1 rank and with the experts over 3 ranks. Then the same for the fixture
grown by scripts/grow_experts.py to 24 experts of width 96 (short FP8 edge blocks in the shared
experts), whose release copy must also be under a third of its twin's bytes. Last the V4.1
fixture (tests/data/v41_tiny) at its block of 32, within 1e-4 of its twin.

    release_script_test.py MODELONE MPIEXEC FIXTURE_DIR"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

modelone, mpiexec, fixture = sys.argv[1:4]
scripts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")
script = os.path.join(scripts, "release_checkpoint.py")
ids = ",".join(str((i * 71 + 9) % 256) for i in range(45))


def run(model, np_, out, compute="fp32", extra=()):
    cmd = [modelone, "run", "--model", model, "--ids", ids, "--generate", "8", "--ignore-eos",
           "--quiet", "--json", "--logits-out", out, "--compute", compute] + list(extra)
    if np_ > 1:
        cmd = [mpiexec, "-n", str(np_), "--oversubscribe"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["generated"], np.load(out)




def check_twins(d, src, block, what):
    out = os.path.join(d, "rel%d_%s" % (block, what))
    subprocess.run([sys.executable, script, src, out, "--block", str(block)], check=True)
    # fp32 compute, and auto (bf16 where the CPU has it: FP8 / FP4 decoded straight to bf16 must
    # give what the twin's fp32 values rounded to bf16 give, as they are the same numbers).
    for np_, compute in ((1, "fp32"), (3, "fp32"), (1, "auto"), (3, "auto")):
        tq, lq = run(out, np_, os.path.join(d, "q.npy"), compute)
        tt, lt = run(out + "_twin", np_, os.path.join(d, "t.npy"), compute)
        rel = np.abs(lq - lt).max() / max(np.abs(lt).max(), 1e-30)
        print("%s, block %d, %d ranks, compute %s: max rel |d logits| %.3g, tokens %s"
              % (what, block, np_, compute, rel, tq))
        assert lq.shape == lt.shape and rel <= 1e-5, rel
        assert tq == tt, (tq, tt)
    return out


def check_v41(d, src):
    """V4.1 (FP8 blocks of 32, FP4 experts, the Engram wkv in FP8, the fp8 tables kept) against
    its twin with the fake quantization off (the exact path): within 1e-4."""
    out = os.path.join(d, "rel_v41")
    subprocess.run([sys.executable, script, src, out], check=True)
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["quantization_config"]["weight_block_size"] == [32, 32], cfg["quantization_config"]
    for np_ in (1, 3):
        tq, lq = run(out, np_, os.path.join(d, "q.npy"), extra=["--fake-quant", "off"])
        tt, lt = run(out + "_twin", np_, os.path.join(d, "t.npy"), extra=["--fake-quant", "off"])
        diff = np.abs(lq - lt).max()
        print("V4.1 fixture, block 32, %d ranks: max |d logits| %.3g, tokens %s" % (np_, diff, tq))
        assert lq.shape == lt.shape and diff <= 1e-4, diff
        assert tq == tt, (tq, tt)


def size(d):
    return os.path.getsize(os.path.join(d, "model.safetensors"))


with tempfile.TemporaryDirectory() as d:
    for block in (128, 32):
        check_twins(d, fixture, block, "fixture")
    grown = os.path.join(d, "grown")
    subprocess.run([sys.executable, os.path.join(scripts, "grow_experts.py"), fixture, grown,
                    "--experts", "24", "--moe-intermediate", "96"], check=True)
    out = check_twins(d, grown, 128, "grown")
    assert json.load(open(os.path.join(grown, "config.json")))["n_routed_experts"] == 24
    assert 3 * size(out) < size(out + "_twin"), (size(out), size(out + "_twin"))
    check_v41(d, os.path.join(os.path.dirname(fixture), "v41_tiny"))
print("release_script_test: ok")
