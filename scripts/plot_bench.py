#!/usr/bin/env python3
"""Plots `modelone bench ... --output json` results (Debian's python3-matplotlib).

    scripts/plot_bench.py IN.json [IN2.json ...] --out DIR [--bench TAG] [--x FIELD] [--y FIELD[,FIELD...]]
                          [--stack F1,F2,...] [--by F1,F2,...]

For each kind of result (the "bench" tag: ep, gemm, context_decode, ...) it writes
  DIR/<tag>_<y>_vs_<x>.png   a measurement against a key (ranks, tokens, context, T), one line per
                             case, with the sd over the repetitions as error bars
  DIR/<tag>_breakdown.png    where the time goes, as stacked bars (benches that print phase times:
                             ep, moe_layer, context_decode), one bar per case and x
`modelone plan --sweep-nodes --output json` is read too (tag plan_sweep): predicted decode ms per
token against nodes, and the parts of the decode step as shares (where the exchange takes over).
Rank counts come from separate mpirun runs, so several files may be given (one per rank count):
each result takes the world size from its file's "machine" object as the field "ranks" when it
has none of its own. JSON lines (--json, --output jsonl) are read too.
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# The measurement plotted by default per tag, and the phase times that add up to (most of) it.
DEFAULT_Y = {
    "ep": "seconds", "moe_layer": "total_ms", "gemm": "bf16_gflops", "engine": "decode_ms",
    "attention_decode": "layer_ms", "context_decode": "ms", "context_prefill": "wall_s",
    "engram_fetch": "ms", "engram_step": "on_ms", "context_decode_growth": "exponent",
    "plan_sweep": "decode_ms_per_token",
}
PHASES = {
    "ep": ["pack_seconds", "exchange_seconds", "add_seconds"],
    "moe_layer": ["route_ms", "pack_ms", "exchange_ms", "experts_ms", "combine_ms"],
    "context_decode": ["indexer_ms", "topk_ms", "attend_ms", "merge_ms"],
    "plan_sweep": ["decode_attention_ms", "decode_indexer_ms", "decode_moe_experts_ms",
                   "decode_moe_exchange_ms", "decode_engram_ms", "decode_head_ms", "decode_other_ms"],
}
# Benches plotted by default as several charts, each a group of measurements sharing a unit:
# `bench serve`'s throughput, and its TTFT median against the tail, vs clients (or request rate).
MULTI_Y = {"serve": [["output_tokens_per_second"], ["ttft_p50_ms", "ttft_p99_ms"]]}
# Keys an x axis is taken from, in order of preference when several vary.
X_PREFERENCE = ["nodes", "ranks", "tokens_per_rank", "tokens", "T", "context", "global_tokens", "cp"]


def load(path):
    """Results of one file, each a dict; measurements as {median, mean, sd, n, values}."""
    with open(path) as f:
        text = f.read()
    try:
        docs = [json.loads(text)]
    except json.JSONDecodeError:  # JSON lines: a machine line, then one result per line
        docs = [json.loads(l) for l in text.splitlines() if l.strip().startswith("{")]
        machine = next((d for d in docs if d.get("bench") == "machine"), {})
        docs = [{"machine": machine, "results": [d for d in docs if d.get("bench") != "machine"]}]
    out = []
    for doc in docs:
        if "sweep" in doc:  # modelone plan --sweep-nodes: one predicted row per node count
            doc = {"machine": {}, "results": [dict(r, bench="plan_sweep") for r in doc["sweep"]]}
        ranks = doc.get("machine", {}).get("ranks")
        for r in doc.get("results", []):
            r = dict(r)
            if "ranks" not in r and ranks is not None:
                r["ranks"] = ranks
            for k, v in r.items():  # one run's JSON lines hold plain numbers
                if isinstance(v, float):
                    r[k] = {"median": v, "mean": v, "sd": 0.0, "n": 1, "values": [v]}
            if isinstance(r.get("request_rate"), str):  # bench serve keeps it exact as text
                r["request_rate"] = float(r["request_rate"])
            out.append(r)
    return out


def is_measure(v):
    return isinstance(v, dict) and "median" in v


def is_key(v):  # identity fields: strings and integers
    return isinstance(v, (str, int)) and not isinstance(v, bool)


def determined(field, by, rows):
    """Whether field's value follows from the fields in by (bytes_per_rank from tokens and
    ranks, N and K from the shape): such a field would split every point into its own line."""
    seen = {}
    for r in rows:
        k = tuple(str(r.get(b)) for b in by)
        if seen.setdefault(k, r.get(field)) != r.get(field):
            return False
    return True


def series_keys(rows, x, forced):
    """The identity fields that tell one line from another, besides x."""
    if forced:
        return forced
    keys = []
    for r in rows:
        for k, v in r.items():
            if k not in keys and k != "bench" and k != x and is_key(v):
                keys.append(k)
    strings = [k for k in keys if any(isinstance(r.get(k), str) for r in rows)]
    numbers = sorted((k for k in keys if k not in strings),
                     key=lambda k: X_PREFERENCE.index(k) if k in X_PREFERENCE else len(X_PREFERENCE))
    by = [x] + strings
    for k in numbers:
        if not determined(k, by, rows):
            by.append(k)
    # Fields with one value across the rows do not tell lines apart: leave them out of labels.
    return [k for k in by[1:] if len({str(r.get(k)) for r in rows}) > 1]


def pick_x(rows, forced):
    if forced:
        return forced
    def distinct(k):
        return len({r[k] for r in rows if k in r and is_key(r[k]) and not isinstance(r[k], str)})
    candidates = [k for k in X_PREFERENCE if distinct(k) > 1]
    if not candidates:
        candidates = [k for k in rows[0] if is_key(rows[0][k]) and not isinstance(rows[0][k], str)
                      and distinct(k) > 1]
    if not candidates:
        return None
    return max(candidates, key=lambda k: (distinct(k), -X_PREFERENCE.index(k) if k in X_PREFERENCE else -99))


def label(r, by):
    return " ".join(f"{k}={r.get(k)}" for k in by) or "all"


def scale_axis(ax, values, which):
    v = [x for x in values if x > 0]
    if len(v) == len(values) and v and max(v) / min(v) >= 16:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=2 if which == "x" else 10)


def plot_scaling(tag, rows, x, ys, by, out):
    """ys: one or more measurements, drawn on the same axes (e.g. each path's GFLOP/s)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    groups = {}
    for y in ys:
        for r in rows:
            if x in r and y in r and is_measure(r[y]):
                name = label(r, by) if len(ys) == 1 else " ".join(filter(None, [y, label(r, by) if by else ""]))
                groups.setdefault((name, y), []).append(r)
    xs = [r[x] for rs in groups.values() for r in rs]
    vals = [r[y]["median"] for (_, y), rs in groups.items() for r in rs]
    scale_axis(ax, xs, "x")
    scale_axis(ax, vals, "y")
    log_y = ax.get_yscale() == "log"
    for (name, y), rs in groups.items():
        rs.sort(key=lambda r: r[x])
        med = [r[y]["median"] for r in rs]
        sd = [r[y]["sd"] for r in rs]
        # On a log axis a bar below zero has no place: the lower bar stops short of it (at a
        # tenth of the median), the upper one shows the whole sd.
        low = [min(s, 0.9 * m) for s, m in zip(sd, med)] if log_y else sd
        ax.errorbar([r[x] for r in rs], med, yerr=[low, sd], marker="o", capsize=3, label=name)
    if all(isinstance(v, int) for v in xs) and ax.get_xscale() == "linear":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rank counts: no 2.5 ranks
    n = sorted({r[y]["n"] for (_, y), rs in groups.items() for r in rs})
    what = ys[0] if len(ys) == 1 else ", ".join(ys)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{ys[0] if len(ys) == 1 else 'value'} (median, sd bars; n={'/'.join(map(str, n))})")
    ax.set_title(f"bench {tag}: {what} vs {x}", fontsize=10 if len(ys) == 1 else 8)
    ax.grid(True, which="both", alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, f"{tag}_{'-'.join(ys)}_vs_{x}.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_breakdown(tag, rows, x, phases, by, out):
    """Each phase's share of the case's time, the total above the bar: the cases differ by
    orders of magnitude (1 token against 4096), so absolute stacks would hide the small ones."""
    rows = [r for r in rows if all(is_measure(r.get(p)) for p in phases)]
    if not rows:
        return None
    groups = {}
    for r in rows:
        groups.setdefault(label(r, by), []).append(r)
    pos, bars, centers = 0, [], []
    for name, rs in groups.items():
        rs.sort(key=lambda r: r.get(x, 0))
        start = pos
        for r in rs:
            bars.append((pos, r))
            pos += 1
        centers.append(((start + pos - 1) / 2, name))
        pos += 1  # a gap between cases
    fig, ax = plt.subplots(figsize=(max(6.4, 0.42 * pos + 2), 4.6), dpi=100)
    totals = [sum(r[p]["median"] for p in phases) for _, r in bars]
    bottom = [0.0] * len(bars)
    for p in phases:
        h = [r[p]["median"] / t if t > 0 else 0 for (_, r), t in zip(bars, totals)]
        ax.bar([b for b, _ in bars], h, bottom=bottom, label=p)
        bottom = [b + v for b, v in zip(bottom, h)]
    for (b, _), t in zip(bars, totals):
        ax.text(b, 1.01, f"{t:.2g}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks([b for b, _ in bars])
    ax.set_xticklabels([str(r.get(x, "")) for _, r in bars], fontsize=7)
    for c, name in centers:
        ax.text(c, -0.09, name, ha="center", va="top", fontsize=8,
                transform=ax.get_xaxis_transform())
    ax.set_xlabel(x or "", labelpad=20)
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("share of the phases' total (median each)")
    ax.set_title(f"bench {tag}: where the time goes (total above each bar)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = os.path.join(out, f"{tag}_breakdown.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="bench --output json files (or --json lines)")
    ap.add_argument("--out", required=True, help="directory for the PNGs")
    ap.add_argument("--bench", help="only results with this tag")
    ap.add_argument("--x", help="key on the x axis (default: the one that varies, e.g. ranks)")
    ap.add_argument("--y", help="measurement(s) on the y axis, comma-separated (default per "
                                "bench, e.g. seconds for ep)")
    ap.add_argument("--stack", help="comma-separated phase fields for the stacked bars")
    ap.add_argument("--by", help="comma-separated fields that tell lines apart (default: the "
                                 "identity fields that vary and do not follow from x)")
    a = ap.parse_args(argv)
    rows = [r for p in a.inputs for r in load(p)]
    os.makedirs(a.out, exist_ok=True)
    tags = []
    for r in rows:
        if r.get("bench") not in tags and (not a.bench or r.get("bench") == a.bench):
            tags.append(r.get("bench"))
    written = []
    for tag in tags:
        rs = [r for r in rows if r.get("bench") == tag]
        if tag in MULTI_Y and not a.y:
            x = a.x or ("concurrency" if any("concurrency" in r for r in rs) else "request_rate")
            by = series_keys(rs, x, a.by.split(",") if a.by else None)
            written += [plot_scaling(tag, rs, x, ys, by, a.out) for ys in MULTI_Y[tag]]
            continue
        x = pick_x(rs, a.x)
        measures = [k for k, v in rs[0].items() if is_measure(v)]
        ys = a.y.split(",") if a.y else \
            [DEFAULT_Y[tag]] if DEFAULT_Y.get(tag) in measures else measures[:1]
        if x is None or not ys or not any(y in r for r in rs for y in ys):
            print(f"plot_bench: {tag}: nothing to plot (x={x}, y={ys})", file=sys.stderr)
        else:
            by = series_keys(rs, x, a.by.split(",") if a.by else None)
            written.append(plot_scaling(tag, rs, x, ys, by, a.out))
        phases = a.stack.split(",") if a.stack else PHASES.get(tag)
        if phases:
            by = series_keys(rs, x, a.by.split(",") if a.by else None) if x else []
            p = plot_breakdown(tag, rs, x, phases, by, a.out)
            if p:
                written.append(p)
    for p in written:
        print(p)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
