#!/usr/bin/env python3
"""scripts/engram_compression_map.py on a tiny byte-level BPE tokenizer.json: case, a leading
space, accents and whitespace runs fold together; a lone space stays a space; a token that is half
of a UTF-8 character keeps its raw string; the .npy it writes holds one int32 per token id."""
import json
import os
import struct
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(here, "..", "scripts", "engram_compression_map.py")
# Byte-level spellings: "\u0120" is a space, "\u010a" a newline, "\u00c3\u00a9" the bytes of e-acute.
vocab = ["the", "The", "\u0120The", "THE", "caf\u00c3\u00a9", "cafe", "\u0120", "\u0120\u0120",
         "\u010a", "\u00c3", "\u0120cafe"]
special = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
tj = {"model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(vocab)}, "merges": []},
      "added_tokens": [{"id": len(vocab), "content": special, "special": True}],
      "decoder": {"type": "ByteLevel"}}
expected = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 1, 4]

with tempfile.TemporaryDirectory() as d:
    tpath, out = os.path.join(d, "tokenizer.json"), os.path.join(d, "map.npy")
    with open(tpath, "w", encoding="utf-8") as f:
        json.dump(tj, f)
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        json.dump({"text_config": {"vocab_size": 14, "engram_compressed_vocab_size": 5,
                                   "engram_pad_token_id": 2}}, f)
    subprocess.run([sys.executable, script, tpath, out, "--config", cfg], check=True)
    with open(out, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x93NUMPY\x01\x00", data[:8]
    hl = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hl].decode("latin1")
    assert "'<i4'" in header and "(14,)" in header, header
    got = list(struct.unpack("<14i", data[10 + hl:]))
    # Ids past the tokenizer's (the model's padded vocabulary) take the pad token's id.
    assert got == expected + [expected[2], expected[2]], got
    # A config that disagrees on the compressed size is refused.
    with open(cfg, "w") as f:
        json.dump({"vocab_size": 12, "engram_compressed_vocab_size": 6}, f)
    r = subprocess.run([sys.executable, script, tpath, out, "--config", cfg], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "engram_compressed_vocab_size 6" in r.stderr, r.stderr
print("engram_map_test: ok")
