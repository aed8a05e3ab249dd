#!/usr/bin/env python3
"""`modelone bench --repetitions N --output text|md|csv|json|jsonl`: the report's structure.

    bench_output_test.py MODELONE MPIEXEC [PLOT_BENCH_PY]

Fast benches on the tiny model (ep, context under two ranks). The json format carries every
run's raw values, so the median, mean and sd are recomputed here exactly; a broken aggregation
(cases not merged by identity, values from another case, a wrong statistic) fails, and the
output of two ranks has to parse as one document (only rank 0 prints). With PLOT_BENCH_PY and
matplotlib installed, scripts/plot_bench.py is run on the json and must write PNGs.
"""
import csv
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

BIN, MPIEXEC = sys.argv[1], sys.argv[2]
PLOT = sys.argv[3] if len(sys.argv) > 3 else None
EP = ["bench", "ep", "--model", "tiny", "--tokens", "1,4", "--iters", "2"]
failures = []
ep_json = None  # the json run, for the plot script


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(args, ranks=1, code=0):
    cmd = ([MPIEXEC, "-n", str(ranks), "--oversubscribe"] if ranks > 1 else []) + [BIN] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(p.returncode == code, f"{' '.join(args)}: exit {p.returncode} (want {code}): {p.stderr[-500:]}")
    return p.stdout, p.stderr


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


def check_stats(tag, key, m, n):
    v = m["values"]
    check(m["n"] == n and len(v) == n, f"{tag}.{key}: n={m['n']}, {len(v)} values, want {n}")
    check(close(m["median"], statistics.median(v)), f"{tag}.{key}: median {m['median']} of {v}")
    check(close(m["mean"], statistics.fmean(v)), f"{tag}.{key}: mean {m['mean']} of {v}")
    sd = statistics.stdev(v) if n > 1 else 0.0
    check(m["sd"] >= 0 and close(m["sd"], sd), f"{tag}.{key}: sd {m['sd']}, want {sd}")


def check_machine(m, ranks):
    for k in ("cpu", "mpi", "blas", "onednn", "compute", "date"):
        check(isinstance(m.get(k), str) and m[k], f"machine.{k} missing: {m}")
    check(m.get("cores", 0) >= 1 and m.get("threads", 0) >= 1, f"machine cores/threads: {m}")
    check(m.get("ranks") == ranks, f"machine.ranks {m.get('ranks')}, want {ranks}")
    check(m.get("onednn", "").startswith("oneDNN "), f"machine.onednn: {m.get('onednn')}")
    check(m.get("compute") in ("fp32", "bf16"), f"machine.compute: {m.get('compute')}")


# json under two ranks, three repetitions: one document, one result per case.
out, _ = run(EP + ["--repetitions", "3", "--output", "json"], ranks=2)
try:
    doc = json.loads(out)
except json.JSONDecodeError as e:
    doc = {}
    check(False, f"json output does not parse ({e}): {out[:300]}")
if doc:
    check_machine(doc["machine"], 2)
    check(doc["repetitions"] == 3, f"repetitions: {doc['repetitions']}")
    res = doc["results"]
    check(sorted(r["tokens_per_rank"] for r in res) == [1, 4],
          f"ep cases not merged by identity: {[r.get('tokens_per_rank') for r in res]}")
    for r in res:
        check(r["bench"] == "ep" and r["ranks"] == 2 and isinstance(r["bytes_per_rank"], int),
              f"ep identity fields: {r}")
        measures = {k: v for k, v in r.items() if isinstance(v, dict)}
        check("seconds" in measures and "pack_seconds" in measures, f"ep measurements: {list(r)}")
        for k, m in measures.items():
            check_stats("ep", k, m, 3)
    ep_json = out

# context: notes (per-rank text) are kept per run, not taken for identity or aggregated.
out, _ = run(["bench", "context", "--model", "tiny", "--prefill", "128", "--decode", "128,256",
              "--prefill-chunk", "32", "--decode-steps", "2", "--repetitions", "2", "--output", "json"],
             ranks=2)
doc = json.loads(out) if out.startswith("{") else {"results": []}
tags = [r["bench"] for r in doc["results"]]
check(tags.count("context_prefill") == 1 and tags.count("context_decode") == 2 and
      tags.count("context_decode_growth") == 2, f"context cases: {tags}")
for r in doc["results"]:
    if r["bench"] == "context_prefill":
        notes = r.get("attn_cpu_by_rank")
        check(isinstance(notes, list) and len(notes) == 2 and all("/" in s for s in notes),
              f"context_prefill attn_cpu_by_rank: {notes}")
    for k, m in r.items():
        if isinstance(m, dict):
            check_stats(r["bench"], k, m, 2)

# csv: a header and one row per case, medians/means/sds and the machine on every row.
out, _ = run(EP + ["--repetitions", "2", "--output", "csv"])
rows = list(csv.DictReader(io.StringIO(out)))
check(len(rows) == 2, f"csv rows: {len(rows)}")
for r in rows:
    for k in ("bench", "tokens_per_rank", "seconds_median", "seconds_mean", "seconds_sd", "n",
              "machine_cpu", "machine_mpi", "machine_blas", "machine_ranks"):
        check(r.get(k, "") != "", f"csv column {k} empty or missing: {r}")
    if rows:
        # Two values: the median is their mean.
        check(r["n"] == "2" and close(float(r["seconds_median"]), float(r["seconds_mean"])),
              f"csv stats: {r}")

# md: the machine, then a table per tag whose rows have the header's width.
out, _ = run(EP + ["--repetitions", "2", "--output", "md"])
lines = out.splitlines()
check(lines and lines[0].startswith("machine: "), f"md first line: {lines[:1]}")
table = [l for l in lines if l.startswith("|")]
check(any(l.startswith("### ep") for l in lines), "md: no '### ep' heading")
check(len(table) == 4, f"md table: {len(table)} lines, want header, rule and 2 rows")
if table:
    check("seconds mean ± sd" in table[0], f"md header: {table[0]}")
    check(len({l.count(" |") for l in table}) == 1, "md rows of different widths")

# text, one run: today's format under a '# machine:' comment line.
out, _ = run(EP)
lines = out.splitlines()
check(lines and lines[0].startswith("# machine: ") and len(lines) == 3, f"text: {lines}")
for l in lines[1:]:
    kv = dict(t.split("=", 1) for t in l.split()[1:])
    check(l.startswith("ep ranks=1 ") and float(kv["seconds"]) > 0, f"text line: {l}")

# text, repetitions: median(mean±sd) per measurement.
out, _ = run(EP + ["--repetitions", "3"])
check("# 3 repetitions" in out and re.search(r" seconds=[-+.\deE]+\([-+.\deE]+±[-+.\deE]+\)", out),
      f"text with repetitions: {out[:400]}")

# --json (JSON lines): the machine first, then one run's plain numbers as before.
out, _ = run(EP + ["--json"])
objs = [json.loads(l) for l in out.splitlines()]
check(objs and objs[0].get("bench") == "machine", f"jsonl first line: {objs[:1]}")
check(len(objs) == 3 and all(isinstance(o.get("seconds"), float) for o in objs[1:]),
      f"jsonl results: {objs[1:]}")

# --json is --output jsonl: both at once is a usage error on every rank.
_, err = run(EP + ["--json", "--output", "csv"], code=2)
check("excludes" in err, f"--json with --output: {err}")

if PLOT:
    try:
        import matplotlib  # noqa: F401
        have_mpl = True
    except ImportError:
        have_mpl = False
        print("skip: matplotlib not installed (apt-get install python3-matplotlib)")
    if have_mpl and ep_json:
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "ep.json")
            with open(src, "w") as f:
                f.write(ep_json)
            p = subprocess.run([sys.executable, PLOT, src, "--out", d], capture_output=True,
                               text=True, timeout=120)
            check(p.returncode == 0, f"plot_bench.py: {p.stderr[-500:]}")
            pngs = [x for x in os.listdir(d) if x.endswith(".png")]
            check(sorted(pngs) == ["ep_breakdown.png", "ep_seconds_vs_tokens_per_rank.png"],
                  f"plot_bench.py wrote {pngs}")
            for x in pngs:
                with open(os.path.join(d, x), "rb") as f:
                    check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{x} is not a PNG")

print(f"bench_output_test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
