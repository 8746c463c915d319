#!/usr/bin/env python3
"""`deepnet schedule` and `deepnet profile` end to end, and scripts/merge_traces.py.

Usage: profile_cli_test.py <deepnet binary> <repository root>
Checks that the written traces are valid JSON with one complete event per pass, that the profile
of the tiny config has positive times and a stage table, that per-rank traces merge back, and that
the profile runs on the strict test device (parallel.backend=STRICT: memory the host cannot read,
so a host dereference would crash it), in fp32 and bf16, naming the device it measured.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

DEEPNET = None
ROOT = None


def run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=100, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def complete_events(trace):
    return [e for e in trace["traceEvents"] if e.get("ph") == "X"]


class ScheduleCommandTest(unittest.TestCase):
    def test_trace_and_svg(self):
        with tempfile.TemporaryDirectory() as tmp:
            trace_path = os.path.join(tmp, "sub", "1f1b.json")
            svg_path = os.path.join(tmp, "1f1b.svg")
            out = run([DEEPNET, "schedule", "--stages", "4", "--micro-batches", "8",
                       "--schedule", "1f1b", "--trace", trace_path, "--svg", svg_path])
            self.assertIn("makespan 33", out)
            self.assertIn("bubble 27.27%", out)
            with open(trace_path) as f:
                trace = json.load(f)
            events = complete_events(trace)
            forwards = [e for e in events if e["name"].startswith("F")]
            backwards = [e for e in events if e["name"].startswith("B")]
            self.assertEqual(len(forwards), 32)
            self.assertEqual(len(backwards), 32)
            self.assertEqual({e["pid"] for e in forwards}, {0, 1, 2, 3})
            self.assertTrue(all(e["dur"] == 1000.0 for e in forwards))  # one unit = 1 ms
            self.assertTrue(all(e["dur"] == 2000.0 for e in backwards))
            self.assertEqual(sorted(e["args"]["micro_batch"] for e in forwards if e["pid"] == 2),
                             list(range(8)))
            names = [e["args"]["name"] for e in trace["traceEvents"]
                     if e.get("name") == "process_name"]
            self.assertEqual(names, [f"rank {r} (stage {r})" for r in range(4)])
            with open(svg_path) as f:
                self.assertTrue(f.read().startswith("<svg"))

    def test_iterations_overlap_steps_under_post_validation(self):
        with tempfile.TemporaryDirectory() as tmp:
            trace_path = os.path.join(tmp, "zb-h2.json")
            out = run([DEEPNET, "schedule", "--schedule", "zb-h2", "--iterations", "8",
                       "--trace", trace_path])
            self.assertIn("makespan 27  bubble 11.11%", out)  # one synchronised step, as before
            self.assertIn("step ends 27 51 75 99 123 147 171 195\n", out)
            self.assertIn("steady state: period 24  bubble 0%", out)
            with open(trace_path) as f:
                forwards = [e for e in complete_events(json.load(f)) if e["name"][0] == "F"]
            self.assertEqual(len(forwards), 8 * 4 * 8)  # steps × ranks × micro-batches
            self.assertEqual(sorted({e["args"]["micro_batch"] for e in forwards}), list(range(64)))
        h1 = run([DEEPNET, "schedule", "--schedule", "zb-h1", "--iterations", "8"])
        self.assertIn("steady state: period 27  bubble 11.11%", h1)
        # The pass costs apply to every step: ZB-H1 idles (p−1)(F+B−W) = 6 beside 8·(1+2+1).
        costed = run([DEEPNET, "schedule", "--schedule", "zb-h1", "--costs", "1,2,1",
                      "--iterations", "4"])
        self.assertIn("step ends 38 76 114 152\n", costed)
        self.assertIn("steady state: period 38  bubble 15.79%", costed)
        self.assertNotIn("steady state", run([DEEPNET, "schedule", "--schedule", "zb-h2"]))
        bad = subprocess.run([DEEPNET, "schedule", "--iterations", "0"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("--iterations 0", bad.stderr)

    def test_bad_schedule_is_an_error(self):
        result = subprocess.run([DEEPNET, "schedule", "--schedule", "nope"], capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertIn("nope", result.stderr)


class ProfileCommandTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out_dir = os.path.join(cls.tmp.name, "profile")
        cls.stdout = run([DEEPNET, "profile", "--config", os.path.join(ROOT, "configs/tiny.pbtxt"),
                          "--data_dir", os.path.join(cls.tmp.name, "no-data"), "--stages", "2",
                          "--micro-batches", "4", "--reps", "3", "--warmup", "1", "--batch", "4",
                          "--src_len", "16", "--tgt_len", "12", "--out", cls.out_dir])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def load(self, name):
        with open(os.path.join(self.out_dir, name)) as f:
            return json.load(f)

    def test_printed_tables(self):
        self.assertIn("device cpu (", self.stdout)
        self.assertIn("micro-batch B=4 S=16 T=12", self.stdout)
        self.assertIn("stages under 1f1b", self.stdout)
        for schedule in ("gpipe", "1f1b", "interleaved (v=2)", "zb-h1", "zb-h2", "zb-v"):
            self.assertIn(schedule, self.stdout)

    def test_profile_json(self):
        profile = self.load("profile.json")
        self.assertEqual(profile["shape"], {"batch": 4, "source_len": 16, "target_len": 12})
        self.assertTrue(profile["device"].startswith("cpu ("), profile["device"])
        self.assertEqual(profile["compute_dtype"], "f32")
        kinds = [u["kind"] for u in profile["units"]]
        self.assertEqual(kinds, ["embedding", "encoder_layer", "decoder_layer", "output"])
        for unit in profile["units"]:
            self.assertGreater(unit["forward"]["median_s"], 0)
            self.assertGreater(unit["backward"]["median_s"], 0)
            self.assertGreater(unit["param_bytes"], 0)

    def test_predictions(self):
        predictions = self.load("predictions.json")
        self.assertEqual([p["schedule"] for p in predictions],
                         ["gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "zb-v"])
        for p in predictions:
            self.assertNotIn("error", p)
            self.assertGreater(p["step_s"], 0)
            self.assertTrue(0 <= p["bubble"] < 1)
            self.assertEqual(p["stages"][0]["first_unit"], 0)
            self.assertEqual(p["stages"][-1]["last"], "output")
        one_f_one_b = self.load("predicted_1f1b.json")
        events = complete_events(one_f_one_b)
        self.assertEqual(len([e for e in events if e["name"][0] == "F"]), 2 * 4)
        self.assertTrue(os.path.exists(os.path.join(self.out_dir, "predicted_zb-h1.svg")))

    def test_merge_per_rank_files(self):
        trace = self.load("predicted_1f1b.json")
        ranks_dir = os.path.join(self.tmp.name, "ranks")
        os.makedirs(ranks_dir, exist_ok=True)
        for rank in (0, 1):
            mine = [e for e in trace["traceEvents"] if e["pid"] == rank]
            if rank == 0:
                with open(os.path.join(ranks_dir, "rank-0.json"), "w") as f:
                    json.dump({"traceEvents": mine}, f)
            else:  # array form cut short, as a crashed rank leaves it
                with open(os.path.join(ranks_dir, "rank-1.json"), "w") as f:
                    f.write("[\n" + ",\n".join(json.dumps(e) for e in mine) + ",\n")
        merged_path = os.path.join(self.tmp.name, "merged.json")
        script = os.path.join(ROOT, "scripts/merge_traces.py")
        out = run([sys.executable, script, "-o", merged_path, ranks_dir])
        self.assertIn("merged 2 files", out)
        with open(merged_path) as f:
            merged = json.load(f)
        original = complete_events(trace)
        events = complete_events(merged)
        self.assertEqual(len(events), len(original))
        self.assertEqual([e["ts"] for e in events], sorted(e["ts"] for e in original))
        metadata = [e for e in merged["traceEvents"] if e.get("ph") == "M"]
        self.assertEqual(len(metadata), len([e for e in trace["traceEvents"] if e["ph"] == "M"]))
        self.assertTrue(merged["traceEvents"][0]["ph"] == "M")

        run([sys.executable, script, "--pid-by-file", "--align", "-o", merged_path,
             os.path.join(ranks_dir, "rank-1.json"), os.path.join(ranks_dir, "rank-0.json")])
        with open(merged_path) as f:
            renumbered = complete_events(json.load(f))
        self.assertEqual(min(e["ts"] for e in renumbered if e["pid"] == 0), 0)
        self.assertEqual({e["pid"] for e in renumbered}, {0, 1})

    def test_merge_rejects_garbage(self):
        bad = os.path.join(self.tmp.name, "bad.json")
        with open(bad, "w") as f:
            f.write("{not json")
        result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/merge_traces.py"),
                                 "-o", os.path.join(self.tmp.name, "m.json"), bad],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertIn("bad.json", result.stderr)


class ProfileOnStrictDeviceTest(unittest.TestCase):
    """`deepnet profile --set parallel.backend=STRICT`: units, inputs and the optimizer live on the
    strict device; the run completes (no host read of device memory) and the files name it."""

    def profile(self, tmp, *overrides):
        out_dir = os.path.join(tmp, "profile")
        args = [DEEPNET, "profile", "--config", os.path.join(ROOT, "configs/tiny.pbtxt"),
                "--data_dir", os.path.join(tmp, "no-data"), "--stages", "2",
                "--micro-batches", "2", "--reps", "2", "--warmup", "1", "--batch", "2",
                "--src_len", "8", "--tgt_len", "6", "--out", out_dir]
        for override in overrides:
            args += ["--set", override]
        stdout = run(args)
        with open(os.path.join(out_dir, "profile.json")) as f:
            return stdout, json.load(f)

    def check(self, stdout, profile, dtype):
        self.assertIn("on strict (CPU-emulated device)", stdout)
        self.assertIn("device strict (CPU-emulated device), compute dtype " + dtype, stdout)
        self.assertEqual(profile["device"], "strict (CPU-emulated device)")
        self.assertEqual(profile["compute_dtype"], dtype)
        kinds = [u["kind"] for u in profile["units"]]
        self.assertEqual(kinds, ["embedding", "encoder_layer", "decoder_layer", "output"])
        for unit in profile["units"]:
            self.assertGreater(unit["forward"]["median_s"], 0)
            self.assertGreater(unit["backward"]["median_s"], 0)
            self.assertGreater(unit["optimizer"]["median_s"], 0)
            # Memory comes from the strict device's allocator: the passes allocate there (the
            # embedding's backward only accumulates into its gradient).
            self.assertGreater(unit["forward_peak_bytes"], 0)
            if unit["kind"] != "embedding":
                self.assertGreater(unit["backward_peak_bytes"], 0)

    def test_fp32(self):
        with tempfile.TemporaryDirectory() as tmp:
            stdout, profile = self.profile(tmp, "parallel.backend=STRICT")
            self.check(stdout, profile, "f32")

    def test_bf16_mixed_precision(self):
        with tempfile.TemporaryDirectory() as tmp:
            stdout, profile = self.profile(tmp, "parallel.backend=STRICT",
                                           "parallel.precision=BF16")
            self.check(stdout, profile, "bf16")

    def test_cuda_runs_or_is_an_error_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = subprocess.run(
                [DEEPNET, "profile", "--config", os.path.join(ROOT, "configs/tiny.pbtxt"),
                 "--data_dir", os.path.join(tmp, "no-data"), "--reps", "1", "--warmup", "0",
                 "--batch", "4", "--src_len", "16", "--tgt_len", "12", "--out",
                 os.path.join(tmp, "p"), "--set", "parallel.backend=CUDA"],
                capture_output=True, text=True, timeout=100)
            if result.returncode == 0:  # a CUDA build on a machine with a GPU
                self.assertIn("device cuda:", result.stdout)
            else:
                self.assertEqual(result.returncode, 1, result.stderr)
                self.assertIn("cuda", result.stderr)


if __name__ == "__main__":
    DEEPNET, ROOT = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
