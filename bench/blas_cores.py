#!/usr/bin/env python3
"""gemm_bench under deepnet's own OpenBLAS core choice against every core forced by hand.

Runs bench/gemm_bench (our `gemm`, the model's linear-layer products) with OPENBLAS_CORETYPE unset
(deepnet's choice), with the test hook that makes the library's detection look like Prescott
(DEEPNET_TEST_OPENBLAS_DETECTS: the mis-detection of a CPU newer than the library), and with each
core set by hand. Rounds alternate the variants so a shared machine's load falls on all alike.
Prints per variant the core it ran, the median over rounds of the summed time of the selected
products, and that time relative to the fastest core set by hand (the bar: own choice within 10 %).

  bench/blas_cores.py --gemm_bench build/bench/gemm_bench --threads 2 --rounds 3 \
      [--filter '/N:2048/d:256/gemm/'] [--cores Haswell,Zen,SkylakeX,Cooperlake,Prescott]
"""
import argparse
import json
import os
import statistics
import subprocess


def run(args, env_changes, unset):
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_changes, OMP_NUM_THREADS=str(args.threads))
    result = subprocess.run(
        [args.gemm_bench, f"--benchmark_filter={args.filter}", "--benchmark_format=json",
         f"--benchmark_min_time={args.min_time}"],
        env=env, capture_output=True, text=True, check=True)
    text = result.stdout
    header, body = text[:text.index("{")], text[text.index("{"):]
    report = json.loads(body)
    core = report["context"].get("blas_core", "?")
    time_key = "cpu_time" if args.cpu_time else "real_time"
    seconds = sum(b[time_key] for b in report["benchmarks"]) / 1e3  # ms -> s
    peak = float(report["context"].get("sgemm_peak_gflops", "nan"))
    return core, seconds, peak, header.strip().splitlines()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gemm_bench", default="build/bench/gemm_bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min_time", default="0.2")
    parser.add_argument("--filter", default="/N:2048/d:256/gemm/")
    parser.add_argument("--cpu_time", action="store_true",
                        help="sum CPU time of the main thread instead of wall time (1 thread on "
                             "a loaded machine)")
    parser.add_argument("--cores", default="Haswell,Zen,SkylakeX,Cooperlake,Prescott")
    args = parser.parse_args()
    unset = ("OPENBLAS_CORETYPE", "DEEPNET_TEST_OPENBLAS_DETECTS")
    variants = [("deepnet's choice", {}),
                ("deepnet's choice, library detects Prescott (hook)",
                 {"DEEPNET_TEST_OPENBLAS_DETECTS": "Prescott"})]
    variants += [(f"OPENBLAS_CORETYPE={c}", {"OPENBLAS_CORETYPE": c})
                 for c in args.cores.split(",")]
    results = {name: [] for name, _ in variants}
    lines = {}
    for _ in range(args.rounds):
        for name, env in variants:
            core, seconds, peak, line = run(args, env, unset)
            results[name].append((core, seconds, peak))
            lines[name] = line
    medians = {n: statistics.median(s for _, s, _ in r) for n, r in results.items()}
    by_hand = [n for n in medians if n.startswith("OPENBLAS_CORETYPE=")]
    best = min(by_hand, key=medians.get)
    print(f"gemm_bench filter {args.filter!r}, {args.threads} threads, {args.rounds} rounds, "
          f"{'CPU' if args.cpu_time else 'wall'} time; load {os.getloadavg()[0]:.1f}")
    print(f"{lines[variants[0][0]]}")
    print(f"| variant | core | time (ms, median of rounds) | vs best by hand ({best}) | sgemm peak GFLOP/s |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        peak = statistics.median(p for _, _, p in r)
        print(f"| {name} | {r[0][0]} | {medians[name] * 1e3:.2f} | "
              f"{medians[name] / medians[best]:.3f} | {peak:.1f} |")


if __name__ == "__main__":
    main()
