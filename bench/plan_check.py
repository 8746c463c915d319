#!/usr/bin/env python3
"""Checks `deepnet plan`'s predicted step time against a training run of its own top choice.

    bench/plan_check.py --ranks 2 --steps 12 [--data_dir DIR] [--set OVERRIDE ...]

Runs `deepnet plan --config C --ranks P --out DIR/plan.pbtxt`, then `mpirun -np P deepnet train`
with that fragment (one thread per rank, no checkpoints, a progress line every step), and prints
the predicted step, the median of the steady-state steps 3..N (step 1 warms up allocators and
caches, step 2 may still), their ratio, every step's time and the load average before and after.
A step's time is the gap between consecutive progress lines of rank 0 (the `training ... steps`
line starts step 1). Wall-clock figures: run it on an otherwise idle machine; load shows up as a
spread of step times, which the printed list makes visible.
"""

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_TIME = re.compile(r"^I\d{8} (\d\d):(\d\d):(\d\d\.\d+) .*?\] (training \d+ units|step (\d+)/)")
PREDICTED = re.compile(r"predicted per step: ([0-9.]+) s")


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def seconds_of(match):
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))


def step_times(log_text):
    """Seconds per step from the progress lines' timestamps, in step order."""
    times, last = [], None
    for line in log_text.splitlines():
        match = LOG_TIME.match(line)
        if not match:
            continue
        now = seconds_of(match)
        if last is not None and match.group(5):
            times.append((now - last) % 86400)  # a run across midnight
        last = now
    return times


def run(command, env=None):
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "deepnet-1000L.pbtxt"))
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--data_dir", default="", help="prepared data (deepnet prepare)")
    parser.add_argument("--plan_flag", action="append", default=[],
                        help="extra `deepnet plan` flag, e.g. --plan_flag=--micro_batch_counts=2,4")
    parser.add_argument("--set", action="append", default=[], help="extra train --set override")
    parser.add_argument("--deepnet", default=os.path.join(REPO, "build", "launcher", "deepnet"))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "plan-check"))
    args = parser.parse_args()
    if args.steps < 4:
        sys.exit("--steps: at least 4 (steps 3..N are the steady state)")
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    data = ["--data_dir", args.data_dir] if args.data_dir else []
    fragment_path = os.path.join(args.out, "plan.pbtxt")
    load_before = load_average()
    plan_log = run([args.deepnet, "plan", "--config", args.config, "--ranks", str(args.ranks),
                    "--out", fragment_path] + data + args.plan_flag, env)
    with open(os.path.join(args.out, "plan.log"), "w") as f:
        f.write(plan_log)
    predicted = PREDICTED.search(plan_log)
    if not predicted:
        sys.exit("no 'predicted per step' line in the plan output")
    with open(fragment_path) as f:
        fragment = f.read().strip()
    train = ["mpirun", "-np", str(args.ranks), "--bind-to", "none", "-x", "OMP_NUM_THREADS=1",
             args.deepnet, "train", "--config", args.config] + data + [
        "--checkpoint_dir", os.path.join(args.out, "checkpoints"), "--set", fragment,
        "--set", f"train.max_steps={args.steps}", "--set", "logging.log_every=1",
        "--set", "checkpoint.every_steps=0", "--set", "checkpoint.restart=true"]
    for override in args.set:
        train += ["--set", override]
    train_log = run(train, env)
    with open(os.path.join(args.out, "train.log"), "w") as f:
        f.write(train_log)
    times = step_times(train_log)
    if len(times) < args.steps:
        sys.exit(f"found {len(times)} of {args.steps} progress lines in {args.out}/train.log")
    steady = statistics.median(times[2:])
    expected = float(predicted.group(1))
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
          f"{load_before} before, {load_average()} after")
    print(f"plan fragment: {fragment}")
    print(f"steps (s): {' '.join(f'{t:.2f}' for t in times)}")
    print(f"predicted {expected:.2f} s, measured median of steps 3..{len(times)} {steady:.2f} s, "
          f"measured / predicted {steady / expected:.3f}")


if __name__ == "__main__":
    main()
