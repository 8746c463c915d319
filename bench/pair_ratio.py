#!/usr/bin/env python3
"""Ratios between the variants of a Google Benchmark JSON output (--benchmark_out=FILE.json).

Benchmarks are named ".../<variant>"; every group sharing the prefix is compared with one
reference variant, using the median real time over repetitions (or the single run without them).

  pair_ratio.py gemm.json --reference raw        # gemm/linear time ÷ raw time (≤ 1.05 wanted)
  pair_ratio.py deepnorm.json --reference fused  # unfused time ÷ fused time = fused speed-up
"""
import argparse
import collections
import json
import re
import statistics


def median_times(path, metric):
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    times = collections.defaultdict(list)
    for run in runs:
        if run.get("run_type") == "aggregate":
            continue
        name = re.sub(r"/(iterations:\d+|real_time)", "", run["run_name"])
        times[name].append(run[metric])
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--reference", required=True, help="variant the others are divided by")
    parser.add_argument("--metric", default="real_time", choices=["real_time", "cpu_time"])
    args = parser.parse_args()
    groups = collections.defaultdict(dict)
    for name, time in median_times(args.json, args.metric).items():
        prefix, variant = name.rsplit("/", 1)
        groups[prefix][variant] = time
    def natural(prefix):  # N:512 before N:2048
        return [(0, int(s), "") if s.isdigit() else (1, 0, s)
                for s in prefix.replace(":", "/").split("/")]

    for prefix in sorted(groups, key=natural):
        variants = groups[prefix]
        reference = variants.get(args.reference)
        if reference is None:
            continue
        cells = [f"{args.reference} {reference:10.3f}"]
        for variant, time in sorted(variants.items()):
            if variant != args.reference:
                cells.append(f"{variant} {time:10.3f} ratio {time / reference:5.3f}")
        print(f"{prefix:40s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
