#!/usr/bin/env python3
"""The BLAS start-up line of `deepnet profile` (kernels/cpu/blas_core.h) through the real binary.

Usage: blas_core_cli_test.py <deepnet binary> <repository root>
Runs a tiny profile with OPENBLAS_CORETYPE unset (deepnet's own choice), with the test hook that
makes the library's detection look like the generic Prescott core (deepnet must correct it), and
with OPENBLAS_CORETYPE=Prescott set by hand (the user wins; a CPU with AVX2 gets a warning). Checks
the line on stderr, the same report in profile.json and on profile's stdout; and that a training
run records the report in its metrics file (first progress record) and in each rank's trace.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from corpus_slice import write_corpus_slice  # noqa: E402

DEEPNET = None
ROOT = None
GENERIC = re.compile(r"core (Prescott|Nehalem|Core2|Penryn|Sandybridge|Atom|Barcelona)\b")


def cpu_has_avx2_fma():
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    return "avx2" in flags and "fma" in flags


def profile(env_changes, unset=("OPENBLAS_CORETYPE", "DEEPNET_TEST_OPENBLAS_DETECTS")):
    """Runs `deepnet profile` on the tiny config; returns (BLAS line, stdout, profile.json)."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_changes, GLOG_logtostderr="1", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [DEEPNET, "profile", "--config", os.path.join(ROOT, "configs/tiny.pbtxt"), "--stages",
             "2", "--micro-batches", "2", "--reps", "1", "--warmup", "0", "--batch", "2",
             "--src_len", "8", "--tgt_len", "6", "--out", tmp],
            env=env, capture_output=True, text=True, timeout=100)
        if result.returncode != 0:
            raise AssertionError(f"deepnet profile failed ({result.returncode}):\n{result.stderr}")
        with open(os.path.join(tmp, "profile.json")) as f:
            profile_json = json.load(f)
    lines = [l for l in result.stderr.splitlines() if "BLAS: " in l]
    if len(lines) != 1:
        raise AssertionError(f"want one BLAS line on stderr, got {lines}:\n{result.stderr}")
    return lines[0][lines[0].index("BLAS: "):], result.stdout, profile_json


class BlasStartupLineTest(unittest.TestCase):
    def check_common(self, line, stdout, profile_json):
        self.assertRegex(line, r"^BLAS: OpenBLAS \d+\.\d+\.\d+, core \w+ \(")
        self.assertIn(", 1 thread, CPU ", line)
        self.assertRegex(line, r"kernels -march=\S+")
        self.assertIn(line, stdout)  # the profile's own report says it too
        core = re.search(r"core (\w+)", line).group(1)
        self.assertEqual(profile_json["blas"]["core"], core)
        return core

    def test_own_choice_is_not_generic(self):
        line, stdout, profile_json = profile({})
        self.check_common(line, stdout, profile_json)
        if cpu_has_avx2_fma():
            self.assertNotRegex(line, GENERIC)
            self.assertNotIn("WARNING", line)

    def test_simulated_prescott_detection_is_corrected(self):
        line, stdout, profile_json = profile({"DEEPNET_TEST_OPENBLAS_DETECTS": "Prescott"})
        self.check_common(line, stdout, profile_json)
        if not cpu_has_avx2_fma():
            self.skipTest("no AVX2+FMA: deepnet keeps the library's choice")
        self.assertIn("(chosen by deepnet; OpenBLAS alone detected Prescott (simulated", line)
        self.assertNotRegex(line, GENERIC)
        self.assertNotIn("WARNING", line)
        self.assertEqual(profile_json["blas"]["warning"], "")

    def test_generic_core_set_by_hand_wins_and_warns(self):
        line, stdout, profile_json = profile({"OPENBLAS_CORETYPE": "Prescott"})
        core = self.check_common(line, stdout, profile_json)
        self.assertEqual(core, "Prescott")
        self.assertIn("(set by OPENBLAS_CORETYPE)", line)
        if cpu_has_avx2_fma():
            self.assertIn("; WARNING: OpenBLAS runs its generic Prescott core on a CPU with", line)
            self.assertIn("unset OPENBLAS_CORETYPE (deepnet then picks ", line)
            self.assertIn("generic Prescott core", profile_json["blas"]["warning"])

    def test_commands_that_do_not_compute_stay_quiet(self):
        result = subprocess.run(
            [DEEPNET, "config", "--config", os.path.join(ROOT, "configs/tiny.pbtxt")],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("BLAS: ", result.stderr + result.stdout)


class BlasReportInRunRecordsTest(unittest.TestCase):
    """The metrics file and the traces say which core the run's numbers came from."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.config = os.path.join(ROOT, "configs/tiny.pbtxt")
        cls.sets = write_corpus_slice(ROOT, d, train_lines=200, valid_lines=8) + [
            "--set", "train.max_steps=2", "--set", "logging.log_every=1", "--set",
            "checkpoint.every_steps=0"]
        cls.env = dict(os.environ, GLOG_logtostderr="1", OMP_NUM_THREADS="1",
                       OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       OMPI_MCA_rmaps_base_oversubscribe="1")
        subprocess.run([DEEPNET, "prepare", "--config", cls.config] + cls.sets, env=cls.env,
                       check=True, capture_output=True, timeout=100)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def train(self, launcher, name, extra_sets):
        d = os.path.join(self.tmp.name, name)
        result = subprocess.run(
            launcher + [DEEPNET, "train", "--config", self.config, "--checkpoint_dir",
                        os.path.join(d, "ck")] + self.sets + extra_sets,
            env=self.env, capture_output=True, text=True, timeout=100)
        self.assertEqual(result.returncode, 0, result.stderr)
        cores = set(re.findall(r"BLAS: OpenBLAS [0-9.]+, core (\w+)", result.stderr))
        self.assertEqual(len(cores), 1, result.stderr)
        return d, cores.pop()

    def test_metrics_file_records_the_core(self):
        metrics = os.path.join(self.tmp.name, "one", "metrics.jsonl")
        d, core = self.train([], "one", ["--set", f'logging.json_metrics="{metrics}"'])
        with open(metrics) as f:
            records = [json.loads(line) for line in f if line.strip()]
        progress = [r for r in records if "loss" in r]
        self.assertGreaterEqual(len(progress), 2)
        self.assertEqual(progress[0]["blas"]["core"], core)  # the first progress record only
        self.assertNotIn("blas", progress[1])

    @unittest.skipIf(shutil.which("mpirun") is None, "mpirun not installed")
    def test_every_rank_trace_is_labelled(self):
        traces = os.path.join(self.tmp.name, "traces")
        _, core = self.train(["mpirun", "-np", "2", "--bind-to", "none"], "two",
                             ["--set", "parallel.pipeline_stages=2", "--set",
                              f'logging.trace_dir="{traces}"'])
        files = sorted(glob.glob(os.path.join(traces, "rank-*.json")))
        self.assertEqual(len(files), 2)
        for path in files:
            with open(path) as f:
                trace = json.load(f)
            events = trace["traceEvents"] if isinstance(trace, dict) else trace
            labels = [e["args"]["labels"] for e in events if e.get("name") == "process_labels"]
            self.assertEqual(len(labels), 1, path)
            self.assertIn(f"BLAS: OpenBLAS", labels[0])
            self.assertIn(f", core {core} (", labels[0])


if __name__ == "__main__":
    DEEPNET, ROOT = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
