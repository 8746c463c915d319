#!/usr/bin/env python3
"""`deepnet plan` end to end on the tiny config.

Usage: plan_cli_test.py <deepnet binary> <repository root>
Checks the table and the `--set` fragment it prints and writes, that `deepnet config` accepts the
fragment, that a 2-rank `deepnet train` with it runs the planner's split (when mpirun exists),
and the errors: a memory limit nothing fits (by how much), a bad parallel.stage_units, no --ranks.
"""

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


def run(args, expect=0, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=100, **kwargs)
    if result.returncode != expect:
        raise AssertionError(f"{args} exited {result.returncode}, expected {expect}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


class PlanCommandTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.config = os.path.join(ROOT, "configs/tiny.pbtxt")
        cls.sets = write_corpus_slice(ROOT, d, train_lines=300, valid_lines=12)
        run([DEEPNET, "prepare", "--config", cls.config] + cls.sets)
        cls.fragment_path = os.path.join(d, "plan.pbtxt")
        cls.result = run([DEEPNET, "plan", "--config", cls.config, "--ranks", "2", "--reps", "2",
                          "--warmup", "1", "--micro_batch_counts", "1,2,4", "--top", "5",
                          "--out", cls.fragment_path] + cls.sets)
        with open(cls.fragment_path) as f:
            cls.fragment = f.read().strip()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_table_and_progress(self):
        out = self.result.stdout
        self.assertIn("on 2 ranks, 512 tokens per flush", out)
        for m in (1, 2):
            self.assertIn(f"m={m}: micro-batch B=", out)
        # Some batch of this corpus has 3 rows: 4 micro-batches cannot split it.
        self.assertIn("m=4: skipped, a batch of the data has only 3 rows", out)
        table = out[out.index("best first:"):out.index("chosen:")]
        rows = [line for line in table.splitlines()[2:] if line.strip()]
        self.assertEqual(len(rows), 5)  # --top
        steps = [float(re.search(r"([0-9.]+) (ms|us|s) ", row).group(1)) for row in rows]
        self.assertTrue(all(step > 0 for step in steps))
        # The chosen split simulated at every sampled step of the data as well as at the mean.
        self.assertRegex(out, r"predicted per step: [0-9.]+ (ms|us|s) \(mean over \d+ steps of the "
                              r"data; [0-9.]+ (ms|us|s) at the mean micro-batch\)")
        self.assertIn("(work-weighted mean)", out)
        self.assertIn("plan: [1/", self.result.stderr)  # progress, one line per combination
        self.assertIn("zb-v m=2", self.result.stderr)  # every listed schedule is searched

    def test_fragment_is_printed_written_and_accepted(self):
        self.assertIn("--set '" + self.fragment + "'", self.result.stdout)
        self.assertRegex(self.fragment, r'stage_units: "\d+(,\d+)+"')
        self.assertIn("data { max_tokens_per_batch: ", self.fragment)
        config = run([DEEPNET, "config", "--config", self.config, "--set", self.fragment]).stdout
        self.assertIn("pipeline_stages: 2", config)
        units = re.search(r'stage_units: "([0-9,]+)"', self.fragment).group(1)
        self.assertIn(f'stage_units: "{units}"', config)
        # The split covers the tiny model's 6 units (embedding, 2 + 2 layers, output).
        self.assertEqual(sum(int(u) for u in units.split(",")), 6)

    @unittest.skipIf(shutil.which("mpirun") is None, "mpirun not installed")
    def test_training_runs_the_planned_split(self):
        d = self.tmp.name
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1")
        train = run(["mpirun", "-np", "2", "--bind-to", "none", DEEPNET, "train", "--config",
                     self.config, "--checkpoint_dir", os.path.join(d, "ck"), "--set",
                     self.fragment, "--set", "train.max_steps=1", "--set",
                     "checkpoint.every_steps=0"] + self.sets, env=env)
        units = [int(u) for u in re.search(r'stage_units: "([0-9,]+)"', self.fragment).group(1)
                 .split(",")]
        log = train.stdout + train.stderr
        first = 0
        for count in units:  # the grid line of each chunk's rank names its unit range
            self.assertIn(f"units [{first}, {first + count})", log)
            first += count
        self.assertIn("step 1/1", log)

    def test_memory_limit_nothing_fits(self):
        result = run([DEEPNET, "plan", "--config", self.config, "--ranks", "2", "--reps", "1",
                      "--warmup", "0", "--micro_batch_counts", "2", "--memory_per_rank", "1000"]
                     + self.sets, expect=1)
        self.assertIn("no plan fits the memory limit", result.stderr)
        self.assertRegex(result.stderr, r"\(\d+ bytes\) over")

    def test_bad_stage_units(self):
        result = run([DEEPNET, "config", "--config", self.config, "--set",
                      "parallel.stage_units=2,x,2"], expect=1)
        self.assertIn("parallel.stage_units", result.stderr)
        self.assertIn('item 2 "x"', result.stderr)

    def test_ranks_required(self):
        result = run([DEEPNET, "plan", "--config", self.config], expect=1)
        self.assertIn("--ranks", result.stderr)


if __name__ == "__main__":
    DEEPNET, ROOT = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
