#!/usr/bin/env python3
"""Compares the parameters of two deepnet checkpoints element by element.

Usage: compare_checkpoints.py A B [--rtol R] [--atol T] [--kind params|optimizer] [--all]

A and B are each a checkpoint root (it holds `latest`, which names the step directory), a step
directory (step-NNNNNNN/), or one .safetensors file. A step directory holds params.safetensors, or
one file per pipeline stage (params-stage-0.safetensors, params-stage-1.safetensors, ...; see
train/checkpoint.h), which are merged. B is the reference: element i passes when

    |a_i − b_i| ≤ atol + rtol·|b_i|

(NaN never passes unless both sides hold the same bits). With --rtol 0 --atol 0 the tensors must
be bit-identical: same dtype, same bytes.

Prints one line per tensor (max |a − b|, max relative difference, elements over the bound; only
the tensors over it unless --all) and a summary line

    compare_checkpoints: PASS|FAIL tensors=N elements=M max_abs=X max_rel=Y failing_tensors=K ...

where max_rel is the largest |a − b| / |b| over elements with |b| > atol (near-zero elements are
held by atol instead). Exit status: 0 when every tensor is within the bound, 1 when one is not
(or the two sets of names or shapes differ), 2 on a usage or read error.

Needs only the standard library; uses numpy when it is installed (faster on large checkpoints).
"""

import argparse
import array
import json
import math
import os
import re
import struct
import sys

try:
    import numpy as np
except ImportError:  # the pure-Python path below does the same, more slowly
    np = None

# safetensors dtype -> (struct / array code, bytes per element)
_DTYPES = {
    "F64": ("d", 8),
    "F32": ("f", 4),
    "F16": ("e", 2),
    "BF16": ("H", 2),  # the upper half of an f32
    "I64": ("q", 8),
    "I32": ("i", 4),
    "I16": ("h", 2),
    "I8": ("b", 1),
    "U8": ("B", 1),
    "BOOL": ("?", 1),
}


class CheckpointError(Exception):
    pass


class Tensor:
    """One tensor of a safetensors file: dtype, shape and raw little-endian bytes."""

    def __init__(self, name, dtype, shape, raw, source):
        self.name, self.dtype, self.shape, self.raw, self.source = name, dtype, shape, raw, source

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def values(self):
        """The elements as float64 (numpy array) or a list of Python floats."""
        code, _ = _DTYPES[self.dtype]
        if np is not None:
            if self.dtype == "BF16":
                bits = np.frombuffer(self.raw, dtype="<u2").astype(np.uint32) << 16
                return bits.view(np.float32).astype(np.float64)
            return np.frombuffer(self.raw, dtype="<" + code).astype(np.float64)
        if self.dtype == "BF16":
            halves = struct.unpack("<%dH" % self.numel(), self.raw)
            return list(struct.unpack("<%df" % len(halves), struct.pack("<%dI" % len(halves),
                                                                         *(h << 16 for h in halves))))
        return [float(v) for v in struct.unpack("<%d%s" % (self.numel(), code), self.raw)]


def read_safetensors(path):
    """name -> Tensor for every tensor of one file (the __metadata__ entry is skipped)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError("%s: %s" % (path, e.strerror))
    if len(data) < 8:
        raise CheckpointError("%s: too short for a safetensors file" % path)
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise CheckpointError("%s: header length %d exceeds the file" % (path, header_len))
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError("%s: bad header: %s" % (path, e))
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info.get("dtype")
        if dtype not in _DTYPES:
            raise CheckpointError("%s: %s has unsupported dtype %s" % (path, name, dtype))
        shape = [int(d) for d in info.get("shape", [])]
        begin, end = (int(o) for o in info["data_offsets"])
        tensor = Tensor(name, dtype, shape, data[base + begin:base + end], path)
        if end > len(data) - base or end - begin != tensor.numel() * _DTYPES[dtype][1]:
            raise CheckpointError("%s: %s: data_offsets [%d, %d) do not fit %s %s" %
                                  (path, name, begin, end, dtype, shape))
        tensors[name] = tensor
    return tensors


def checkpoint_files(path, kind):
    """The safetensors files `path` stands for (see the module doc), in stage order."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise CheckpointError("%s: no such file or directory" % path)
    latest = os.path.join(path, "latest")
    if os.path.isfile(latest) and not os.path.isfile(os.path.join(path, "state.json")):
        with open(latest) as f:
            name = f.read().strip()
        step_dir = os.path.join(path, name)
        if not name or not os.path.isdir(step_dir):
            raise CheckpointError("%s names %r, which is no directory" % (latest, name))
        path = step_dir
    whole = os.path.join(path, kind + ".safetensors")
    if os.path.isfile(whole):
        return [whole]
    stage_re = re.compile(r"^%s-stage-(\d+)\.safetensors$" % re.escape(kind))
    stages = sorted((int(m.group(1)), m.group(0))
                    for m in map(stage_re.match, os.listdir(path)) if m)
    if not stages:
        raise CheckpointError("%s: neither %s.safetensors nor %s-stage-N.safetensors" %
                              (path, kind, kind))
    numbers = [s for s, _ in stages]
    if numbers != list(range(len(numbers))):
        raise CheckpointError("%s: stage files %s are not 0..%d" % (path, numbers, len(numbers) - 1))
    return [os.path.join(path, f) for _, f in stages]


def load_checkpoint(path, kind):
    """(files, name -> Tensor) with the per-stage files merged."""
    files = checkpoint_files(path, kind)
    merged = {}
    for file in files:
        for name, tensor in read_safetensors(file).items():
            if name in merged:
                raise CheckpointError("%s is in both %s and %s" % (name, merged[name].source, file))
            merged[name] = tensor
    return files, merged


def compare_tensor(a, b, atol, rtol):
    """dict n, max_abs, max_rel, failing, worst (index), worst_a, worst_b for a against the
    reference b. An element passes when its bits are equal, when a == b (equal infinities, ±0), or
    when both are finite and |a − b| ≤ atol + rtol·|b|; with atol = rtol = 0 only equal bits pass."""
    exact = atol == 0 and rtol == 0
    same_dtype = a.dtype == b.dtype
    width = _DTYPES[a.dtype][1]
    va, vb = a.values(), b.values()
    if np is not None:
        if same_dtype:
            raw_eq = (np.frombuffer(a.raw, dtype="<u%d" % width) ==
                      np.frombuffer(b.raw, dtype="<u%d" % width))
        else:
            raw_eq = np.zeros(len(va), dtype=bool)
        with np.errstate(invalid="ignore", over="ignore"):
            finite = np.isfinite(va) & np.isfinite(vb)
            diff = np.where(finite, np.abs(va - vb), np.inf)
            if exact:
                bad = ~raw_eq
            else:
                bad = ~(raw_eq | (va == vb) | (finite & (diff <= atol + rtol * np.abs(vb))))
            fd = np.where(finite, diff, 0.0)
            big = finite & (np.abs(vb) > atol)
            rel = np.where(big, fd / np.where(big, np.abs(vb), 1.0), 0.0)
        failing = int(bad.sum())
        max_abs = float(fd.max()) if fd.size else 0.0
        if failing and not finite[bad].all():
            max_abs = math.inf
        worst = int(np.argmax(np.where(bad, diff, -1.0))) if failing else 0
        return {"n": len(va), "max_abs": max_abs, "max_rel": float(rel.max()) if rel.size else 0.0,
                "failing": failing, "worst": worst,
                "worst_a": float(va[worst]) if len(va) else 0.0,
                "worst_b": float(vb[worst]) if len(vb) else 0.0}
    # Pure Python: the same rules, element by element.
    max_abs = max_rel = 0.0
    failing, worst, worst_diff = 0, 0, -1.0
    for i, (x, y) in enumerate(zip(va, vb)):
        raw_eq = same_dtype and a.raw[i * width:(i + 1) * width] == b.raw[i * width:(i + 1) * width]
        both_finite = math.isfinite(x) and math.isfinite(y)
        d = abs(x - y) if both_finite else math.inf
        if exact:
            bad = not raw_eq
        else:
            bad = not (raw_eq or x == y or (both_finite and d <= atol + rtol * abs(y)))
        if both_finite:
            max_abs = max(max_abs, d)
            if abs(y) > atol:
                max_rel = max(max_rel, d / abs(y))
        if bad:
            failing += 1
            if not both_finite:
                max_abs = math.inf
            if d > worst_diff:
                worst, worst_diff = i, d
    return {"n": len(va), "max_abs": max_abs, "max_rel": max_rel, "failing": failing,
            "worst": worst, "worst_a": va[worst] if va else 0.0, "worst_b": vb[worst] if vb else 0.0}


def main(argv):
    parser = argparse.ArgumentParser(
        description="Compare two deepnet checkpoints element by element "
                    "(|a − b| ≤ atol + rtol·|b|, b the reference).")
    parser.add_argument("a", help="checkpoint root, step directory or .safetensors file")
    parser.add_argument("b", help="the reference: checkpoint root, step directory or file")
    parser.add_argument("--rtol", type=float, default=1e-5, help="relative bound (default 1e-5)")
    parser.add_argument("--atol", type=float, default=1e-7,
                        help="absolute floor for near-zero elements (default 1e-7)")
    parser.add_argument("--kind", default="params", choices=["params", "optimizer"],
                        help="which files of a step directory (default params)")
    parser.add_argument("--all", action="store_true", help="print every tensor, not only failures")
    args = parser.parse_args(argv)
    if args.rtol < 0 or args.atol < 0:
        parser.error("--rtol and --atol must be ≥ 0")

    try:
        files_a, a = load_checkpoint(args.a, args.kind)
        files_b, b = load_checkpoint(args.b, args.kind)
    except CheckpointError as e:
        print("compare_checkpoints: error: %s" % e, file=sys.stderr)
        return 2
    print("compare_checkpoints: A = %s" % ", ".join(files_a))
    print("compare_checkpoints: B = %s (reference)" % ", ".join(files_b))
    print("compare_checkpoints: bound |a − b| ≤ %g + %g·|b|%s; numpy %s" %
          (args.atol, args.rtol, " (bit-identical)" if args.atol == 0 and args.rtol == 0 else "",
           "yes" if np is not None else "no (pure Python)"))

    problems = []
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    for name in only_a:
        problems.append("only in A: %s" % name)
    for name in only_b:
        problems.append("only in B: %s" % name)

    total = failing_tensors = failing_elements = 0
    max_abs = max_rel = 0.0
    worst_name = None
    print("%-60s %-5s %12s %12s %10s" % ("tensor", "dtype", "max|a-b|", "max rel", "over"))
    for name in sorted(set(a) & set(b)):
        ta, tb = a[name], b[name]
        if ta.shape != tb.shape:
            problems.append("%s: shape %s vs %s" % (name, ta.shape, tb.shape))
            failing_tensors += 1
            continue
        r = compare_tensor(ta, tb, args.atol, args.rtol)
        total += r["n"]
        failing_elements += r["failing"]
        if worst_name is None or r["max_abs"] > max_abs:
            worst_name, max_abs = name, r["max_abs"]
        max_rel = max(max_rel, r["max_rel"])
        if r["failing"]:
            failing_tensors += 1
        if r["failing"] or args.all:
            dtype = ta.dtype if ta.dtype == tb.dtype else "%s/%s" % (ta.dtype, tb.dtype)
            line = "%-60s %-5s %12.4g %12.4g %10d" % (name, dtype, r["max_abs"], r["max_rel"],
                                                      r["failing"])
            if r["failing"]:
                line += "  (worst [%d]: %.9g vs %.9g)" % (r["worst"], r["worst_a"], r["worst_b"])
            print(line)
    for p in problems:
        print("compare_checkpoints: " + p)
    ok = not problems and failing_tensors == 0
    print("compare_checkpoints: %s tensors=%d elements=%d max_abs=%.6g max_rel=%.6g "
          "failing_tensors=%d failing_elements=%d largest_diff_in=%s" %
          ("PASS" if ok else "FAIL", len(set(a) & set(b)), total, max_abs, max_rel,
           failing_tensors, failing_elements, worst_name if max_abs > 0 else "-"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
