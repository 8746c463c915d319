#!/usr/bin/env python3
"""Measured pipeline bubble of a traced training run against the schedule's prediction.

Runs `deepnet train` for N steps on P ranks with logging.trace_dir set (each rank writes
rank-<r>.json, a Chrome trace of the first 3 steps), then reads the traces and the log and prints:
  - per traced step and rank: step time and bubble = idle / step time, where the step is the
    window between consecutive optimizer steps (the last rank's end) and idle is the window minus
    the rank's compute-lane spans (forward, backward, optimizer, ...);
  - the prediction: `deepnet schedule` (unit costs F = 1, B = 2) or, if that command is missing,
    (p-1)/(m+p-1); plus a cost-weighted 1F1B simulation from the measured per-stage F / B times;
  - per-rank peak activation memory and peak RSS, and the loss curve.

  bench/pipeline_1000l.py --config configs/deepnet-1000L.pbtxt --ranks 4 --steps 20
  bench/pipeline_1000l.py --analyze runs/bench-1000L   # re-read a finished run's traces and log

On an oversubscribed CPU a compute span also counts time the rank was descheduled, so measured
bubbles there are a lower bound on the schedule's idle time, not a clean figure.
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPUTE_LANE = 0
STEP_END = "optimizer-step"


def default_binary():
    for build in ("build", "build-engine"):
        path = os.path.join(REPO, build, "launcher", "deepnet")
        if os.path.exists(path):
            return path
    return os.path.join(REPO, "build", "launcher", "deepnet")


def run_training(args):
    os.makedirs(args.out, exist_ok=True)
    trace_dir = os.path.join(args.out, "trace")
    # /usr/bin/time gives each rank's peak RSS (all memory, not only the tracked categories).
    wrap = ('exec /usr/bin/time -f "maxrss rank $OMPI_COMM_WORLD_RANK: %M KB" "$0" "$@"'
            if os.path.exists("/usr/bin/time") else 'exec "$0" "$@"')
    command = ["mpirun", "-np", str(args.ranks), "--allow-run-as-root", "--oversubscribe",
               "--bind-to", "none", "-x", "OMP_NUM_THREADS=%d" % args.threads,
               "sh", "-c", wrap, args.deepnet, "train", "--config", args.config,
               "--set", "train.max_steps=%d" % args.steps,
               "--set", "parallel.pipeline_stages=%d" % args.ranks,
               "--set", "logging.log_every=%d" % args.log_every,
               "--set", 'logging.trace_dir="%s"' % trace_dir,
               "--set", 'checkpoint.dir=""']
    for override in args.set:
        command += ["--set", override]
    print("$ " + " ".join(command), flush=True)
    with open(os.path.join(args.out, "train.log"), "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if code != 0:
        sys.exit("training failed (exit %d): see %s/train.log" % (code, args.out))


def load_rank_events(trace_dir):
    ranks = {}
    for name in sorted(os.listdir(trace_dir)):
        match = re.fullmatch(r"rank-(\d+)\.json", name)
        if not match:
            continue
        with open(os.path.join(trace_dir, name)) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
        ranks[int(match.group(1))] = sorted(events, key=lambda e: e["ts"])
    if not ranks:
        sys.exit("no rank-<r>.json in " + trace_dir)
    return ranks


def split_steps(events):
    """This rank's compute events, one list per step (a step ends with its optimizer step)."""
    steps, current = [], []
    for event in events:
        if event["tid"] != COMPUTE_LANE:
            continue
        current.append(event)
        if event["name"] == STEP_END:
            steps.append(current)
            current = []
    return steps


def measure(ranks):
    """Per step: window (start, end) and per rank busy us, F / B means per rank, m."""
    per_rank = {r: split_steps(events) for r, events in ranks.items()}
    num_steps = min(len(s) for s in per_rank.values())
    ends = [max(per_rank[r][k][-1]["ts"] + per_rank[r][k][-1]["dur"] for r in ranks)
            for k in range(num_steps)]
    starts = [min(e["ts"] for events in ranks.values() for e in events)] + ends[:-1]
    steps = []
    for k in range(num_steps):
        busy = {r: sum(e["dur"] for e in per_rank[r][k]) for r in ranks}
        passes = {r: sum(e["dur"] for e in per_rank[r][k] if e["name"] != STEP_END) for r in ranks}
        steps.append({"start": starts[k], "end": ends[k], "busy": busy, "passes": passes})
    durations = collections.defaultdict(lambda: collections.defaultdict(list))
    micro_batches = set()
    for r in ranks:
        for step in per_rank[r][:num_steps]:
            for e in step:
                kind = e["name"][0] if e["name"][0] in "FBW" and e["name"][1:2].isdigit() else None
                if kind:
                    durations[r][kind].append(e["dur"])
                    micro_batches.add(e["args"].get("micro_batch"))
                elif e["name"] == STEP_END:
                    durations[r]["opt"].append(e["dur"])
    means = {r: {k: statistics.mean(v) for k, v in durations[r].items()} for r in ranks}
    return steps, means, len(micro_batches)


def one_f_one_b(p, m, r):
    warmup = min(p - r - 1, m)
    actions = [("F", i) for i in range(warmup)]
    for i in range(m - warmup):
        actions += [("F", warmup + i), ("B", i)]
    return actions + [("B", i) for i in range(m - warmup, m)]


def simulate_1f1b(p, m, cost):
    """Makespan and per-rank busy time of 1F1B with per-stage costs cost[r]['F'/'B'], no comm."""
    queues = [one_f_one_b(p, m, r) for r in range(p)]
    done, free, busy = {}, [0.0] * p, [0.0] * p
    while any(queues):
        progressed = False
        for r in range(p):
            if not queues[r]:
                continue
            kind, i = queues[r][0]
            dep = (r - 1, "F", i) if kind == "F" else (r + 1, "B", i)
            if kind == "F" and r == 0 or kind == "B" and r == p - 1:
                ready = done.get((r, "F", i), 0.0) if kind == "B" else 0.0
            elif dep in done:
                ready = done[dep]
            else:
                continue
            start = max(free[r], ready)
            done[(r, kind, i)] = free[r] = start + cost[r][kind]
            busy[r] += cost[r][kind]
            queues[r].pop(0)
            progressed = True
        if not progressed:
            sys.exit("1F1B simulation deadlocked")
    return max(free), busy


def configured_schedule(overrides):
    """The parallel.schedule of the --set overrides (default 1f1b), as `deepnet schedule` takes it."""
    for override in overrides:
        match = re.fullmatch(r"parallel\.schedule=(\w+)", override)
        if match:
            return match.group(1)
    return "1f1b"


def schedule_prediction(deepnet, p, m, schedule="1f1b"):
    try:
        out = subprocess.run([deepnet, "schedule", "--stages", str(p), "--micro_batches", str(m),
                              "--schedule", schedule], capture_output=True, text=True, timeout=60)
        match = re.search(r"bubble ([\d.]+)%", out.stdout)
        if out.returncode == 0 and match:
            return float(match.group(1)) / 100, "deepnet schedule"
    except OSError:
        pass
    return (p - 1) / (m + p - 1), "(p-1)/(m+p-1)"


def read_log(path):
    text = open(path).read() if os.path.exists(path) else ""
    losses = re.findall(r"step (\d+)/\d+ \| loss (\S+) \| lr (\S+) \| gnorm (\S+) \| (\d+) tok/s",
                        text)
    activations = re.findall(r"peak activation memory: rank (\d+) .*? ([\d.]+) MiB", text)
    rss = re.findall(r"maxrss rank (\d+): (\d+) KB", text)
    return losses, dict(activations), {r: int(kb) / 1024 for r, kb in rss}


def report(args):
    trace_dir = os.path.join(args.out, "trace")
    ranks = load_rank_events(trace_dir)
    p = len(ranks)
    steps, means, m = measure(ranks)
    print("\n== measured (%s, %d ranks, %d micro-batches, %d traced steps) ==" %
          (trace_dir, p, m, len(steps)))
    print("step  rank  step_s   busy_s  bubble  bubble_passes_only")
    for k, step in enumerate(steps):
        window = step["end"] - step["start"]
        optimizer = max(step["busy"][r] - step["passes"][r] for r in ranks)
        for r in sorted(ranks):
            idle = window - step["busy"][r]
            # Bubble of the F/B passes alone: the window less the slowest optimizer step.
            pipe_idle = (window - optimizer) - step["passes"][r]
            print("%4d  %4d  %6.2f  %7.2f  %5.1f%%  %5.1f%%" %
                  (k, r, window / 1e6, step["busy"][r] / 1e6, 100 * idle / window,
                   100 * pipe_idle / (window - optimizer)))
    print("per-stage mean pass time (s): " + "  ".join(
        "r%d F %.3f B %.3f opt %.3f" % (r, means[r].get("F", 0) / 1e6, means[r].get("B", 0) / 1e6,
                                         means[r].get("opt", 0) / 1e6) for r in sorted(ranks)))

    schedule = configured_schedule(args.set)
    unit, source = schedule_prediction(args.deepnet, p, m, schedule)
    cost = [{"F": means[r].get("F", 1.0), "B": means[r].get("B", 2.0)} for r in range(p)]
    makespan, busy = simulate_1f1b(p, m, cost)
    optimizer = max(means[r].get("opt", 0.0) for r in range(p))
    print("\n== predicted (1F1B, p=%d, m=%d) ==" % (p, m))
    print("unit-cost bubble of %s (%s): %.1f%%" % (schedule, source, 100 * unit))
    print("cost-weighted simulation from measured F/B: step %.2f s (+ optimizer %.2f s)" %
          (makespan / 1e6, optimizer / 1e6))
    print("  bubble per rank (passes only): " + "  ".join(
        "r%d %.1f%%" % (r, 100 * (1 - busy[r] / makespan)) for r in range(p)))
    if len(steps) > 1:
        measured = statistics.mean(s["end"] - s["start"] for s in steps[1:]) / 1e6
        print("measured mean step (traced steps after the first): %.2f s" % measured)

    losses, activations, rss = read_log(os.path.join(args.out, "train.log"))
    print("\n== memory per rank (MiB) ==")
    for r in sorted(ranks):
        print("rank %d  peak activations %s  peak RSS %s" %
              (r, activations.get(str(r), "?"), "%.1f" % rss[str(r)] if str(r) in rss else "?"))
    print("\n== loss curve ==")
    for step, loss, lr, gnorm, tokens in losses:
        print("step %4s  loss %s  lr %s  gnorm %s  %s tok/s" % (step, loss, lr, gnorm, tokens))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "deepnet-1000L.pbtxt"))
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--log_every", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS per rank")
    parser.add_argument("--set", action="append", default=[], help="extra train --set override")
    parser.add_argument("--deepnet", default=os.environ.get("DEEPNET", default_binary()))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "bench-pipeline"))
    parser.add_argument("--analyze", metavar="DIR",
                        help="skip training: read DIR/trace/rank-*.json and DIR/train.log")
    args = parser.parse_args()
    if args.analyze:
        args.out = args.analyze
    else:
        run_training(args)
    report(args)


if __name__ == "__main__":
    main()
