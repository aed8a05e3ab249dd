#!/usr/bin/env python3
"""Write Engram's compression map (token id -> compressed id) from a tokenizer.json.

Engram hashes n-grams of *compressed* token ids: tokens whose text normalises to the same string
share one id. The normalisation follows DeepSeek's Engram code: NFKC, then NFD with combining
marks dropped (accents), lowercase, runs of spaces / tabs / newlines folded to one space, then
stripped -- except that a token that is exactly one space after folding stays a space. A token
whose text is not valid UTF-8 on its own (a piece of a multi-byte character) keeps its raw token
string as its key. Ids are given in order of first appearance, walking token ids upwards.

    scripts/engram_compression_map.py tokenizer.json OUT_DIR/engram_compression_map.npy \
        [--config config.json]

Uses the `tokenizers` package to decode tokens when it is installed, else decodes byte-level BPE
tokens itself (standard library only). --config checks the result against the checkpoint's
vocab_size and engram_compressed_vocab_size. The output is a 1-D int32 .npy.
"""
import argparse
import json
import re
import struct
import sys
import unicodedata

SENTINEL = "\ue000"


def byte_decoder():
    """The byte-level BPE alphabet: printable bytes stand for themselves, the rest are shifted
    to code points from 256 up, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def normalise(text):
    t = unicodedata.normalize("NFKC", text)
    t = unicodedata.normalize("NFD", t)
    t = "".join(c for c in t if unicodedata.category(c) != "Mn")
    t = t.lower()
    t = re.sub(r"[ \t\r\n]+", " ", t)
    if t == " ":
        t = SENTINEL
    t = t.strip()
    return t.replace(SENTINEL, " ")


def token_texts(path):
    """(decoded text, raw token) for every id 0 .. n-1."""
    with open(path, encoding="utf-8") as f:
        tj = json.load(f)
    raw = {}
    for tok, i in tj.get("model", {}).get("vocab", {}).items():
        raw[int(i)] = tok
    special = {}
    for a in tj.get("added_tokens", []):
        raw[int(a["id"])] = a["content"]
        special[int(a["id"])] = a["content"]
    n = max(raw) + 1 if raw else 0
    try:
        from tokenizers import Tokenizer  # exact decoding where installed
        tk = Tokenizer.from_file(path)
        return [(tk.decode([i], skip_special_tokens=False), tk.id_to_token(i) or "") for i in range(n)]
    except ImportError:
        pass
    dec = tj.get("decoder") or {}
    kinds = [dec.get("type")] + [d.get("type") for d in dec.get("decoders", [])]
    if "ByteLevel" not in kinds:
        sys.exit("engram_compression_map.py: this tokenizer's decoder is not byte-level BPE; "
                 "install the tokenizers package to decode it")
    bd = byte_decoder()
    out = []
    for i in range(n):
        tok = raw.get(i, "")
        if i in special:
            out.append((tok, tok))
            continue
        data = bytes(bd[c] for c in tok if c in bd)
        out.append((data.decode("utf-8", errors="replace"), tok))
    return out


def write_npy_i32(path, values):
    header = "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }" % len(values)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(struct.pack("<%di" % len(values), *values))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tokenizer_json")
    ap.add_argument("out_npy")
    ap.add_argument("--config", help="checkpoint config.json to check the sizes against")
    a = ap.parse_args()
    ids, keys = [], {}
    for text, tok in token_texts(a.tokenizer_json):
        key = tok if "\ufffd" in text else (normalise(text) or text)
        ids.append(keys.setdefault(key, len(keys)))
    if a.config:
        with open(a.config, encoding="utf-8") as f:
            c = json.load(f)
        c = c.get("text_config", c)
        want = c.get("engram_compressed_vocab_size")
        if c.get("vocab_size") is not None and len(ids) > c["vocab_size"]:
            sys.exit("engram_compression_map.py: the tokenizer has %d ids, more than vocab_size %d"
                     % (len(ids), c["vocab_size"]))
        # The model's vocabulary may be padded past the tokenizer's ids: those map to the pad id.
        while len(ids) < c.get("vocab_size", len(ids)):
            ids.append(ids[c.get("engram_pad_token_id", 0)])
        if want is not None and want != len(keys):
            sys.exit("engram_compression_map.py: %d compressed ids, but the config says "
                     "engram_compressed_vocab_size %d" % (len(keys), want))
    write_npy_i32(a.out_npy, ids)
    print("engram_compression_map.py: %d token ids -> %d compressed ids, wrote %s"
          % (len(ids), len(keys), a.out_npy))


if __name__ == "__main__":
    main()
