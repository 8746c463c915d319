#!/usr/bin/env python3
"""Two pipeline schedules on one config, in alternating runs: step-time ratio and where it goes.

    bench/schedule_pair.py --schedules ONE_F_ONE_B,ZERO_BUBBLE_V --rounds 4 --steps 10 \\
        [--ranks 2] [--data_dir DIR] [--set OVERRIDE ...]

Each round trains the config twice under `mpirun -np P` (one thread per rank, no checkpoints,
tracing every step): schedule A then B, or B then A in every other round, so that a machine that
drifts during the session weighs on both alike. A step's time is the gap between rank 0's progress
lines (plan_check.py); the steady state is steps 3..N. From the Chrome traces of those steps
(`logging.trace_steps` = N) it sums, per rank and step, the forward, B (or fused backward) and W
passes, and the rest of the step (waits for transfers and the other ranks, reduce, optimizer).
It prints every run, the ratio B / A per round and over all rounds (median of the rounds, and
median of the per-step ratios, step i of one run against step i of the other: both runs see the
same batches), and the mean pass sums of each schedule. Wall-clock: run it on an otherwise idle
machine, with a core per rank.
"""

import argparse
import collections
import datetime
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plan_check import REPO, load_average, run, step_times  # noqa: E402

STEADY_FROM = 2  # index of step 3: step 1 warms up allocators and caches, step 2 may still


def pass_sums(trace_dir, ranks):
    """Per rank: seconds per steady step in F, B, W passes and the rest, from the traces."""
    sums = []
    for rank in range(ranks):
        with open(os.path.join(trace_dir, f"rank-{rank}.json")) as f:
            trace = json.load(f)
        events = [e for e in (trace["traceEvents"] if isinstance(trace, dict) else trace)
                  if e.get("ph") == "X"]
        ends = sorted(e["ts"] + e["dur"] for e in events if e["name"] == "optimizer-step")
        if len(ends) <= STEADY_FROM:
            sys.exit(f"{trace_dir}: {len(ends)} traced steps; need more than {STEADY_FROM}")
        start, end = ends[STEADY_FROM - 1], ends[-1]
        per_kind = collections.defaultdict(float)
        for e in events:
            if start <= e["ts"] < end:
                name = e["name"]
                kind = name[0] if name[0] in "FBW" and name[1:2].isdigit() else None
                if kind:
                    per_kind[kind] += e["dur"] / 1e6
        steps = len(ends) - STEADY_FROM
        step_s = (end - start) / 1e6 / steps
        row = {k: per_kind[k] / steps for k in "FBW"}
        row["rest"] = step_s - sum(row.values())
        sums.append(row)
    return sums


def train(args, schedule, out):
    trace_dir = os.path.join(out, "trace")
    data = ["--data_dir", args.data_dir] if args.data_dir else []
    command = ["mpirun", "-np", str(args.ranks), "--bind-to", "none", "-x", "OMP_NUM_THREADS=1",
               args.deepnet, "train", "--config", args.config] + data + [
        "--set", f"parallel.pipeline_stages={args.ranks}",
        "--set", f"parallel.schedule={schedule}",
        "--set", f"train.max_steps={args.steps}", "--set", "logging.log_every=1",
        "--set", f'logging.trace_dir="{trace_dir}"', "--set", f"logging.trace_steps={args.steps}",
        "--set", 'checkpoint.dir=""']
    for override in args.set:
        command += ["--set", override]
    log = run(command, dict(os.environ, OMP_NUM_THREADS="1"))
    with open(os.path.join(out, "train.log"), "w") as f:
        f.write(log)
    times = step_times(log)
    if len(times) < args.steps:
        sys.exit(f"found {len(times)} of {args.steps} progress lines in {out}/train.log")
    return times, pass_sums(trace_dir, args.ranks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", default="ONE_F_ONE_B,ZERO_BUBBLE_V",
                        help="A,B as parallel.schedule names")
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "deepnet-1000L.pbtxt"))
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--data_dir", default="", help="prepared data (deepnet prepare)")
    parser.add_argument("--set", action="append", default=[], help="extra train --set override")
    parser.add_argument("--deepnet", default=os.path.join(REPO, "build", "launcher", "deepnet"))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "schedule-pair"))
    args = parser.parse_args()
    pair = args.schedules.split(",")
    if len(pair) != 2:
        sys.exit("--schedules: two names, A,B")
    if args.steps < STEADY_FROM + 2:
        sys.exit(f"--steps: at least {STEADY_FROM + 2} (steps 3..N are the steady state)")
    load_before = load_average()
    means = {s: [] for s in pair}
    per_step = {s: [] for s in pair}
    sums = {s: [] for s in pair}
    for round_index in range(args.rounds):
        order = pair if round_index % 2 == 0 else pair[::-1]
        for schedule in order:
            out = os.path.join(args.out, f"round-{round_index + 1}-{schedule}")
            os.makedirs(out, exist_ok=True)
            times, passes = train(args, schedule, out)
            steady = times[STEADY_FROM:]
            means[schedule].append(statistics.mean(steady))
            per_step[schedule].append(steady)
            sums[schedule].append(passes)
            print(f"round {round_index + 1} {schedule}: steps {' '.join(f'{t:.2f}' for t in times)}"
                  f"; mean of 3..{len(times)} {means[schedule][-1]:.3f} s; per rank F/B/W/rest "
                  + ", ".join("/".join(f"{row[k]:.2f}" for k in ("F", "B", "W", "rest"))
                              for row in passes), flush=True)
        a, b = (means[s][-1] for s in pair)
        print(f"round {round_index + 1}: {pair[1]} / {pair[0]} = {b / a:.3f}", flush=True)
    a_name, b_name = pair
    round_ratios = [b / a for a, b in zip(means[a_name], means[b_name])]
    step_ratios = [tb / ta for ra, rb in zip(per_step[a_name], per_step[b_name])
                   for ta, tb in zip(ra, rb)]
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
          f"{load_before} before, {load_average()} after")
    print(f"{b_name} / {a_name}: rounds {' '.join(f'{r:.3f}' for r in round_ratios)}; median "
          f"{statistics.median(round_ratios):.3f}; ratio of the means "
          f"{statistics.mean(means[b_name]) / statistics.mean(means[a_name]):.3f}; median of "
          f"{len(step_ratios)} per-step ratios {statistics.median(step_ratios):.3f}")
    for schedule in pair:
        ranks = len(sums[schedule][0])
        mean_row = {k: statistics.mean(run_sums[r][k] for run_sums in sums[schedule]
                                       for r in range(ranks)) for k in ("F", "B", "W", "rest")}
        print(f"{schedule}: mean step {statistics.mean(means[schedule]):.3f} s; per rank and step "
              f"F {mean_row['F']:.3f} + B {mean_row['B']:.3f} + W {mean_row['W']:.3f} = passes "
              f"{mean_row['F'] + mean_row['B'] + mean_row['W']:.3f} s, rest (waits, reduce, "
              f"optimizer) {mean_row['rest']:.3f} s")


if __name__ == "__main__":
    main()
