#!/usr/bin/env python3
"""Predicted against measured: `modelone plan` beside the engine's own benchmarks for layouts
this machine can run, every measurement warm (after a warm-up step) and a median where the
bench takes one.

    scripts/plan_check.py --machine machine.json [--quick] [--rounds N] > table.md
    scripts/plan_check.py --recalibrate 4 [--rounds N] > table.md

With --recalibrate NP every round first runs `bench calibrate` on NP ranks (past the cores, then
`--links-as cores` on as many ranks as cores) and predicts its cases from that profile (a shared machine's speed drifts over minutes: the user's order, calibrate then
plan then run, holds within a round); the table then holds each case's median prediction too.

Measured by:
  engine   `bench engine` (one sequence at cp 1; at np > 1 the other ranks serve experts:
           ep = world): prefill seconds and decode ms per token at a context
  context  `bench context` (V4-Flash's first CSA and HCA layers, 8 experts): prefill of a
           long prompt split over cp = world (ep = world), and decode ms per token at
           synthetic contexts at cp = 1 (rank 0 alone) and cp = world
  batch    `bench batch` (4-layer V4-Flash cut, 16 experts, context 256): one decode step at a
           batch of sequences
  run      `modelone run --json` for the cp / ep / dp mixes the benchmarks do not cover: its
           first prefill (cold; the mean of two runs), and the decode steps a 33-token run
           takes past a 2-token one (warm, as the benches')
Each measurement is bracketed by a probe (`bench gemm` on V4-Flash's wq_b at 1 thread, pinned
to each core in turn: the streamed 1-row product's GB/s, and GFLOPS at 256 rows; the slowest
core's ratio counts), read against the same probe right after the round's calibration (with
--machine: the check's first probe): a decode case against the GB/s, a prefill case against the
GFLOPS. The machine's speed then shows beside each case (`probe`, < 1: slower than at
calibration), and the summary adds the cases measured within 10% of the calibration's speed.
Each probe also reads the memory with every cpu streaming at once (`memory`, against the median
of the profile's own readings, taken by calibrate before and after each pass): a neighbour on the
memory channels moves it while one core reads the same.
Every case prints predicted, measured and their ratio (progress on stderr as each is measured);
with --rounds N, the median of N measurements taken a whole round apart and their spread. The
summary on stderr: cases within 20% and 25%, the median and worst |ratio - 1|.
More ranks than cores run oversubscribed, as plan assumes when ranks x threads pass the cores.
With --ablate together,scales every case is priced a second time on a copy of its profile without
those parts (as profiles before them read): the same measurements against both models.
--save FILE keeps every measurement with the profile and arguments that priced it (rewritten after
each case); --reprice FILE [FILE ...] then prices them again with this build's plan and prints the
table, running nothing (a change to the pricing against the same measurements, on the same
profiles). Several files are rounds side by side (a case's measurements in file order); a
profile named by a relative path is read beside its file. tests/data/plan_check holds eight rounds
of this VM (376 measurements, each on its round's profile), and --expect MEDIANS,ALL fails the
check where fewer cases' medians or fewer measurements than that read within 20% (the ctest
plan_check_reprice_test: a change to the pricing against those runs in a minute).
"""
import argparse
import atexit
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile

EXE = os.environ.get("MODELONE", "./build/modelone")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1")
# `run` is measured twice: its decode is the steps the longer run takes past the shorter's, so the
# first step's one-off costs drop out as the benches' warm-up step does (tiny at cp 2: the first
# step 0.87-1.14 ms, the next ones 0.22-0.23; a 9-token run's mean read 0.34-0.36). The shorter
# run takes that one step alone: with 8 steps, a round's tiny 4 x 1 short run took 19.5 ms longer
# to decode than the 32-step run after it, and the difference read -0.813 ms a step.
RUN_SHORT, RUN_LONG = 2, 33
CUT4 = ["--set", "num_hidden_layers=4", "--set", "n_routed_experts=16"]
CUT_CTX = ["--set", "n_routed_experts=8", "--set", "num_hidden_layers=2", "--set",
           "layer_types=compressed_sparse_attention,heavily_compressed_attention"]


def mpirun(np_, args):
    cmd = (["mpirun", "-np", str(np_)] if np_ > 1 else []) + [EXE] + args
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


class Plan:
    def __init__(self, machine, cores, other_build, ablate=()):
        self.machine, self.cores, self.other, self.ablate = machine, cores, other_build, ablate
        self.stripped = {}  # profile -> its copy without the ablated parts (written once)
        self.tmp = None

    def __call__(self, model, sets, rpn, threads, cp, ep, context, batch=1, chunk=2048):
        args = (model, sets, rpn, threads, cp, ep, context, batch, chunk)
        j = self.on(self.machine, self.cores, args)
        j["priced"] = {"machine": os.path.abspath(self.machine), "cores": self.cores,  # for --save / --reprice
                       "args": list(args)}
        return j

    def on(self, machine, cores, args):
        """plan's JSON for args on this profile and cores (and on its ablated copy); touches no
        state but the ablated copies' cache, so --reprice runs many at once."""
        j = self.price(machine, cores, *args)
        if self.ablate:
            j["ablated"] = self.price(self.ablated(machine), cores, *args)
        return j

    def ablated(self, machine):
        """A copy of the profile without the --ablate parts (together: the node's ranks slowing
        one another; scales: the anchors' part scales), as profiles before them read."""
        if machine in self.stripped:
            return self.stripped[machine]
        # In a folder of its own: the profile's may be the source tree's (tests/data/plan_check).
        if not self.tmp:
            self.tmp = tempfile.mkdtemp(prefix="plan_check_")
            atexit.register(shutil.rmtree, self.tmp, True)
        path = os.path.join(self.tmp, f"{len(self.stripped)}_{os.path.basename(machine)}")
        prof = json.load(open(machine))
        if "together" in self.ablate:
            prof.pop("together", None)
        if "scales" in self.ablate:
            for f in prof["fixed"].values():
                for k in ("attention_decode", "moe_decode", "attention_prefill", "moe_prefill"):
                    f.pop(k, None)
        with open(path, "w") as f:
            json.dump(prof, f)
        self.stripped[machine] = path
        return path

    def price(self, machine, cores, model, sets, rpn, threads, cp, ep, context, batch, chunk):
        cmd = [EXE, "plan", "--model", model, *sets, "--machine", machine, "--ranks-per-node",
               str(rpn), "--threads", str(threads), "--cp", str(cp), "--ep", str(ep), "--context",
               str(context), "--batch", str(batch), "--prefill-chunk", str(chunk),
               "--cores-per-node", str(cores), "--json"] + (["--allow-other-build"] if self.other else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:  # plan's own one-line reason (a missing profile, another build)
            sys.exit(f"plan_check: {done.stderr.strip() or 'plan failed: ' + ' '.join(cmd)}")
        return json.loads(done.stdout)


# (case, layout) -> predicted, unit and every round's measurement, in the order first seen.
CASES = {}
SAVE = None  # --save's file, rewritten after every case: a check cut short keeps what it measured


class Probe:
    """The machine's speed now against at the round's calibration: (GB/s, GFLOPS) ratios, each
    its slowest core's, and the memory's read rate with every cpu streaming at once. A shared VM's
    cores drift apart for minutes at a time (one read 0.65 of the other's GFLOPS; an unpinned
    probe reads whichever core it lands on), and a step over several ranks or threads waits on
    the slowest; a neighbour on the memory channels shows only with every core streaming (one
    core read 26 GB/s throughout while both read 35 or 55 by the minute)."""
    ref = None
    machine = None  # the profile the cases are priced on
    now = (1.0, 1.0, 1.0)

    @staticmethod
    def gemm(threads, tokens, pin=None):
        cmd = [EXE, "bench", "gemm", "--weights", "bf16", "--tokens", tokens, "--shape", "wq_b",
               "--threads", str(threads), "--json"]
        run = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True,
                             preexec_fn=None if pin is None else lambda: os.sched_setaffinity(0, {pin}))
        return {l["T"]: l for l in map(json.loads, filter(lambda l: l.startswith("{"), run.stdout.splitlines()))
                if l.get("bench") == "gemm"}

    @classmethod
    def read(cls):
        """Per core: (GB/s, GFLOPS), the probe pinned to each core in turn (streams run side by
        side share the memory: one read 12.7 GB/s beside the other's 16.9, 16.8 alone); then
        every cpu streaming at once (bench gemm's read GB/s at that many threads)."""
        cpus = sorted(os.sched_getaffinity(0))
        out = []
        for c in cpus:
            g = cls.gemm(1, "1,256", pin=c)
            out.append((g[1]["weight_gbps"], g[256]["bf16_gflops"]))
        return out, cls.gemm(len(cpus), "1")[1]["read_gbps"]

    @classmethod
    def calibrated(cls):
        """The cores read now; the memory as the profile (cls.machine) read it (the median of
        calibrate's readings with every cpu streaming, the state its `together` and multi-thread
        costs were timed in, each point a median over passes), else as read now."""
        cores, mem = cls.read()
        readings = json.load(open(cls.machine)).get("machine", {}).get("memory_gbps", []) if cls.machine else []
        cls.ref = (cores, median(readings) if readings else mem)

    @classmethod
    def around(cls, measure):
        """measure() between two probes; for row(), each rate's slowest core against the
        reference, and the memory's."""
        if cls.ref is None:
            cls.calibrated()
        before = cls.read()
        out = measure()
        after = cls.read()
        (b, bm), (a, am), (r, rm) = before, after, cls.ref
        cls.now = tuple(min((x[i] + y[i]) / 2 / z[i] for x, y, z in zip(b, a, r)) for i in (0, 1)) + \
            ((bm + am) / 2 / rm,)
        return out


def row(what, layout, priced, meas, unit):
    """priced: (plan's JSON, the key predicting this measurement)."""
    j, key = priced
    pred = j[key]
    c = CASES.setdefault((what, layout), {"pred": [], "unit": unit, "meas": [], "probe": [], "abl": [], "mem": [],
                                          "priced": []})
    c["pred"].append(pred)
    c["priced"].append(dict(j["priced"], key=key))
    if "ablated" in j:
        c["abl"].append(j["ablated"][key])
    c["meas"].append(meas)
    speed = Probe.now[0 if "decode" in what else 1]
    c["probe"].append(speed)
    c["mem"].append(Probe.now[2])
    if SAVE:
        save(SAVE)
    print(f"round {len(c['meas'])}: {what} | {layout} | predicted {pred:.4g} | measured {meas:.4g} {unit}"
          f" | probe {speed:.2f} | memory {Probe.now[2]:.2f}", file=sys.stderr, flush=True)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def table(rounds):
    """The cases against the median of their rounds; with rounds > 1, the measurements' spread
    (largest / smallest - 1): a case whose own runs differ by more than the goal cannot show it."""
    spread = rounds > 1
    ablated = all(c["abl"] for c in CASES.values())
    print("| case | ranks x threads, layout | predicted | measured | unit | ratio | probe | memory |"
          + (" spread |" if spread else "") + (" ratio ablated |" if ablated else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if spread else "") + ("---|" if ablated else ""))
    off, steady, off_abl, held = [], [], [], []
    for (what, layout), c in CASES.items():
        m, p = median(c["meas"]), median(c["pred"])
        off.append(abs(p / m - 1))
        if ablated:
            off_abl.append(abs(median(c["abl"]) / m - 1))
            extra_abl = f" {median(c['abl']) / m:.2f} |"
        # Each round's own prediction and measurement where the probe read the calibration's speed.
        steady += [abs(pk / mk - 1) for pk, mk, s in zip(c["pred"], c["meas"], c["probe"]) if abs(s - 1) <= 0.1]
        # ... and where the memory with every cpu streaming read within 10% of calibration's too.
        held += [abs(pk / mk - 1) for pk, mk, s, g in zip(c["pred"], c["meas"], c["probe"], c["mem"])
                 if abs(s - 1) <= 0.1 and abs(g - 1) <= 0.1]
        extra = f" {max(c['meas']) / min(c['meas']) - 1:.2f} |" if spread else ""
        probes = "/".join(f"{s:.2f}" for s in c["probe"])
        mems = "/".join(f"{g:.2f}" for g in c["mem"])
        print(f"| {what} | {layout} | {p:.4g} | {m:.4g} | {c['unit']} | {p / m:.2f} | {probes} | {mems} |{extra}"
              + (extra_abl if ablated else ""))
    summary("", off)
    if ablated:
        summary("priced on the profiles without the ablated parts: ", off_abl)
    total = sum(len(c["meas"]) for c in CASES.values())
    # Each round's own measurement and prediction, not the medians: "cases" here counts rounds.
    summary(f"of the {total} measurements (every case in every round), those with the probe within 10% of "
            "calibration's, each against its round's prediction: ", steady, "measurements")
    summary("of those, the ones with the memory (every cpu streaming) within 10% of calibration's too: ",
            held, "measurements")


def summary(what, off, unit="cases"):
    off = sorted(off)
    if not off:
        print(f"{what}none", file=sys.stderr)
        return
    print(f"\n{what}{len(off)} {unit}; within 20%: {sum(r <= 0.2 for r in off)}, within 25%: "
          f"{sum(r <= 0.25 for r in off)}; median |predicted / measured - 1| = {median(off):.2f}, "
          f"worst {off[-1]:.2f}", file=sys.stderr)


def engine_cases(plan, quick):
    cases = [("tiny", [], 1, 1, 2048), ("tiny", [], 1, 2, 2048), ("tiny", [], 2, 1, 4096),
             ("v4-flash", CUT4, 1, 2, 2048), ("v4-flash", CUT4, 1, 1, 2048), ("v4-flash", CUT4, 2, 1, 2048)]
    if not quick:
        cases += [("tiny", [], 1, 1, 8192), ("tiny", [], 3, 1, 4096), ("v4-flash", CUT4, 1, 2, 4096),
                  ("v4-flash", CUT4, 3, 1, 2048), ("tiny", [], 1, 2, 32768)]
    for model, sets, np_, th, ctx in cases:
        lines = Probe.around(lambda: mpirun(np_, ["bench", "engine", "--model", model, *sets, "--threads", str(th),
                                                  "--contexts", str(ctx), "--decode-steps", "16", "--json"]))
        m = [l for l in lines if l.get("bench") == "engine" and l["compute"] == "bf16"][0]
        p = plan(model, sets, np_, th, 1, np_, ctx)
        name = model + (" cut" if sets else "")
        lay = f"{np_} x {th}, cp 1, ep {np_}"
        row(f"{name} prefill {ctx}", lay, (p, "ttft_seconds"), m["prefill_s"], "s")
        row(f"{name} decode at {ctx}", lay, (p, "decode_ms_per_token"), m["decode_ms"], "ms")


def context_cases(plan, quick):
    for np_, prefill, decode in ([(2, 4096, [8192, 65536])] if quick else
                                 [(2, 8192, [8192, 262144]), (3, 4096, [65536]), (4, 8192, [1048576])]):
        lines = Probe.around(lambda: mpirun(np_, ["bench", "context", "--threads", "1", "--prefill", str(prefill),
                                                  "--decode", ",".join(map(str, decode)), "--json"]))
        pre = [l for l in lines if l.get("bench") == "context_prefill"][0]
        p = plan("v4-flash", CUT_CTX, np_, 1, np_, np_, prefill)
        row(f"ctx cut prefill {prefill}", f"{np_} x 1, cp {np_}, ep {np_}", (p, "ttft_seconds"), pre["wall_s"], "s")
        for d in [l for l in lines if l.get("bench") == "context_decode"]:
            c = d["context"]
            p1 = plan("v4-flash", CUT_CTX, 1, 1, 1, 1, c)
            row(f"ctx cut decode at {c}", "1 x 1, cp 1, ep 1", (p1, "decode_ms_per_token"), d["cp1_ms"], "ms")
            pc = plan("v4-flash", CUT_CTX, np_, 1, np_, np_, c)
            row(f"ctx cut decode at {c}", f"{np_} x 1, cp {np_}, ep {np_}", (pc, "decode_ms_per_token"), d["ms"], "ms")


def batch_cases(plan, quick):
    batches = [1, 8, 32] if quick else [1, 4, 16, 32]
    lines = Probe.around(lambda: mpirun(1, ["bench", "batch", "--model", "v4-flash", "--threads", "2", "--batches",
                                            ",".join(map(str, batches)), "--mixed-batch", "0", "--json"]))
    for m in [l for l in lines if l.get("bench") == "batch"]:
        p = plan("v4-flash", CUT4, 1, 2, 1, 1, m["context"], m["batch"])
        row(f"cut decode step, batch {m['batch']}", "1 x 2", (p, "decode_ms_per_token"), m["step_ms"], "ms")


def run_cases(plan, quick):
    cases = [("tiny", [], 2, 1, 2, 1, 4096), ("tiny", [], 4, 1, 2, 4, 4096),
             ("v4-flash", CUT4, 2, 1, 1, 2, 2048)]
    if not quick:
        cases += [("v4-flash", CUT4, 2, 1, 2, 1, 2048), ("v4-flash", CUT4, 4, 1, 2, 4, 2048)]
    for model, sets, np_, th, cp, ep, ctx in cases:
        def go(generate):
            return mpirun(np_, ["run", "--model", model, *sets, "--threads", str(th), "--cp", str(cp), "--ep",
                                str(ep), "--random-prompt", str(ctx), "--generate", str(generate), "--ignore-eos",
                                "--json", "--quiet"])[0]
        short, full = Probe.around(lambda: (go(RUN_SHORT), go(RUN_LONG)))
        p = plan(model, sets, np_, th, cp, ep, ctx)
        name = model + (" cut" if sets else "")
        lay = f"{np_} x {th}, cp {cp}, ep {ep}"
        row(f"{name} run prefill {ctx}", lay, (p, "ttft_seconds"), (short["ttft_seconds"] + full["ttft_seconds"]) / 2, "s")
        steps = full["decode_steps"] - short["decode_steps"]
        row(f"{name} run decode at {ctx}", lay, (p, "decode_ms_per_token"),
            1e3 * (full["decode_seconds"] - short["decode_seconds"]) / steps, "ms")


def save(path):
    """Every case's measurements with what priced them (profile, plan's arguments, key), so a
    change to the pricing reads against them with --reprice in seconds, not a round of runs."""
    with open(path, "w") as f:
        json.dump([dict(c, what=w, layout=l) for (w, l), c in CASES.items()], f, indent=1)


def reprice(paths, plan):
    """The saved measurements priced again by this build's plan on each round's own profile: the
    files' rounds side by side, a case's measurements in file order. plan's start-up (MPI's) is
    most of a price, so several run at once."""
    plan.other = True  # the saved profiles came from the build that measured them
    jobs = []  # (case, round, profile, cores, args, key)
    for path in paths:
        for c in json.load(open(path)):
            if "priced" not in c or len(c["priced"]) != len(c["meas"]):
                sys.exit(f"plan_check: {path} was not written by --save (a case without what priced it)")
            into = CASES.setdefault((c["what"], c["layout"]), {"unit": c["unit"], "meas": [], "probe": [],
                                                               "mem": [], "priced": []})
            for pr in c["priced"]:
                # Beside the file (as given where absolute; saves before --save wrote absolute
                # paths named it from where the check ran).
                machine = os.path.join(os.path.dirname(path), pr["machine"])
                machine = machine if os.path.exists(machine) else pr["machine"]
                jobs.append((into, len(into["priced"]), machine, pr["cores"], pr["args"], pr["key"]))
                into["priced"].append(pr)
            for k in ("meas", "probe", "mem"):
                into[k] += c[k]
    if plan.ablate:  # the ablated copies first, each written once
        for _, _, machine, *_ in jobs:
            plan.ablated(machine)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        priced = list(pool.map(lambda j: plan.on(j[2], j[3], j[4]), jobs))
    for c in CASES.values():
        c["pred"], c["abl"] = [None] * len(c["meas"]), ([None] * len(c["meas"]) if plan.ablate else [])
    for (c, k, _, _, _, key), j in zip(jobs, priced):
        c["pred"][k] = j[key]
        if plan.ablate:
            c["abl"][k] = j["ablated"][key]


def rounds_summary(expect):
    """Each round's own predictions against its measurements (a case's k-th), then --expect's
    check: at least MEDIANS cases' medians and ALL measurements within 20% (exit 1 otherwise)."""
    rounds = max(len(c["meas"]) for c in CASES.values())
    within = 0
    for k in range(rounds):
        off = sorted(abs(c["pred"][k] / c["meas"][k] - 1) for c in CASES.values() if k < len(c["meas"]))
        within += sum(r <= 0.2 for r in off)
        if rounds > 1:
            print(f"round {k + 1}: {sum(r <= 0.2 for r in off)} of {len(off)} within 20%, "
                  f"{sum(r <= 0.25 for r in off)} within 25%; median {median(off):.2f}, worst {off[-1]:.2f}",
                  file=sys.stderr)
    total = sum(len(c["meas"]) for c in CASES.values())
    medians = sum(abs(median(c["pred"]) / median(c["meas"]) - 1) <= 0.2 for c in CASES.values())
    print(f"medians within 20%: {medians} of {len(CASES)}; measurements within 20%: {within} of {total}",
          file=sys.stderr)
    if expect:
        want = [int(x) for x in expect.split(",")]
        if medians < want[0] or within < want[1]:
            sys.exit(f"plan_check: expected at least {want[0]} medians and {want[1]} measurements within 20%, "
                     f"read {medians} and {within}")


def main():
    global SAVE
    ap = argparse.ArgumentParser()
    ap.add_argument("--machine", help="a profile from `bench calibrate` (else --recalibrate)")
    ap.add_argument("--recalibrate", type=int, metavar="NP",
                    help="calibrate on NP ranks before every round, into round-K.json beside --machine "
                         "(default: /tmp/plan_check_round-K.json; its output in round-K.log)")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="engine,context,batch,run")
    ap.add_argument("--allow-other-build", action="store_true")
    ap.add_argument("--ablate", default="", help="also price every case on a copy of each profile without "
                    "these parts (together, scales; comma-separated): the table adds the ratio so priced")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every case this many times, a whole round after another; the table "
                         "holds each one's median and the spread of its measurements")
    ap.add_argument("--save", help="write every case's measurements and what priced them to this JSON file")
    ap.add_argument("--reprice", metavar="SAVED", nargs="+", help="run nothing: price the measurements --save "
                    "wrote (several files: their rounds side by side) again with this build's plan, each on its "
                    "round's profile, and print the table")
    ap.add_argument("--expect", metavar="MEDIANS,ALL", help="with --reprice: fail unless at least MEDIANS cases' "
                    "medians and ALL measurements read within 20%%")
    a = ap.parse_args()
    plan = Plan(a.machine, a.cores, a.allow_other_build, tuple(x for x in a.ablate.split(",") if x))
    if a.reprice:
        reprice(a.reprice, plan)
        table(max(len(c["meas"]) for c in CASES.values()))
        rounds_summary(a.expect)
        return
    if not a.machine and not a.recalibrate:
        ap.error("give --machine or --recalibrate")
    Probe.machine = a.machine
    SAVE = a.save
    for k in range(a.rounds):  # whole rounds, so slow drifts of a shared machine reach every case
        if a.recalibrate:
            base = os.path.dirname(a.machine) if a.machine else "/tmp"
            plan.machine = Probe.machine = os.path.join(base, f"plan_check_round-{k + 1}.json")
            print(f"round {k + 1}: calibrating on {a.recalibrate} ranks into {plan.machine}", file=sys.stderr, flush=True)
            cal = subprocess.run(["mpirun", "-np", str(a.recalibrate), EXE, "bench", "calibrate", "--out", plan.machine],
                                 env=ENV, capture_output=True, text=True, check=True)
            if a.recalibrate > a.cores >= 2:  # its links timed with MPI yielding: those within the cores too
                more = subprocess.run(["mpirun", "-np", str(a.cores), EXE, "bench", "calibrate", "--links-as",
                                       "cores", "--out", plan.machine], env=ENV, capture_output=True, text=True, check=True)
                cal.stdout += more.stdout
            with open(plan.machine[:-len(".json")] + ".log", "w") as f:  # its cores' paces, passes set aside
                f.write(cal.stdout + cal.stderr)
            Probe.calibrated()
        for part in a.parts.split(","):
            {"engine": engine_cases, "context": context_cases, "batch": batch_cases, "run": run_cases}[part](plan, a.quick)
    table(a.rounds)


if __name__ == "__main__":
    main()
