#!/usr/bin/env python3
"""One training step of the demo's encoder-decoder in deepnet and in PyTorch eager, same shapes.

The step: zero grads, forward + backward (label-smoothed cross-entropy), gradient clipping at 1.0,
Adam. Model: DeepNorm encoder-decoder, 6+6 layers, d_model 256, 4 heads, FFN 1024, vocabulary
8000, tied embeddings, ReLU, dropout 0.1 (configs/demo.pbtxt). Batch: B sentences of S source and
T target tokens, no padding (default 64 x 32 + 64 x 32: 2048 target tokens).

deepnet's side is tests/reference/step_timer (built with the tests); PyTorch's runs here, fp32,
with torch.set_num_threads(threads) and OMP_NUM_THREADS=threads for both (OpenBLAS under both).
Prints the median seconds per step of each (over --rounds alternating runs of --steps timed steps
after --warmup) and the speed-up (PyTorch time / deepnet time).

OpenBLAS core: both sides run the same one, stated in the output. Unless OPENBLAS_CORETYPE is set,
it is the core deepnet picks for this CPU (kernels/cpu/blas_core.h), as printed by
`gemm_bench --peak`, which also measures the machine's sgemm peak (2048^3, same threads, same
core). deepnet's model GFLOP/s (matrix products of forward + backward, 3x the forward's) is printed
as a fraction of that peak.

OpenMP wait policy: each side runs as it runs best. PyTorch gets OMP_WAIT_POLICY=passive: with
the default (spinning) policy its OpenMP threads and its OpenBLAS threads fight over the cores and
a step takes about twice as long. deepnet runs with the default, as the deepnet binary does, and
is also timed under passive, which is printed as a second ratio.

  OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_step_bench.py \
      --step_timer build/tests/reference/step_timer --gemm_bench build/bench/gemm_bench \
      [--threads 2] [--steps 5] \
      [--B 64 --S 32 --T 32]
"""
import argparse
import ctypes
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.dropout = dropout

    def forward(self, xq, xkv, causal):
        b, tq, tk, d = xq.shape[0], xq.shape[1], xkv.shape[1], xq.shape[2]
        hd = d // self.heads
        split = lambda t, n: t.view(b, n, self.heads, hd).transpose(1, 2)
        q = split(self.q_proj(xq), tq)
        k, v = split(self.k_proj(xkv), tk), split(self.v_proj(xkv), tk)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        if causal:
            mask = torch.triu(torch.ones(tq, tk, dtype=torch.bool), diagonal=1)
            scores = scores.masked_fill(mask, float("-inf"))
        probs = F.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training)
        return self.out_proj((probs @ v).transpose(1, 2).reshape(b, tq, d))


class Layer(nn.Module):
    """DeepNorm layer: every sublayer x <- LN(alpha * x + dropout(G(x)))."""

    def __init__(self, d, heads, ffn, dropout, alpha, cross):
        super().__init__()
        self.alpha, self.dropout = alpha, dropout
        self.self_attn, self.self_attn_layer_norm = Attention(d, heads, 0.0), nn.LayerNorm(d)
        self.encoder_attn = Attention(d, heads, 0.0) if cross else None
        self.encoder_attn_layer_norm = nn.LayerNorm(d) if cross else None
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def residual(self, x, g, norm):
        return norm(self.alpha * x + F.dropout(g, self.dropout, self.training))

    def forward(self, x, memory=None, causal=False):
        x = self.residual(x, self.self_attn(x, x, causal), self.self_attn_layer_norm)
        if self.encoder_attn is not None:
            x = self.residual(x, self.encoder_attn(x, memory, False), self.encoder_attn_layer_norm)
        return self.residual(x, self.fc2(F.relu(self.fc1(x))), self.final_layer_norm)


class EncoderDecoder(nn.Module):
    def __init__(self, layers, d, heads, ffn, vocab, dropout, max_positions):
        super().__init__()
        n = m = layers
        enc_alpha, dec_alpha = 0.81 * (n**4 * m) ** (1 / 16), (3 * m) ** 0.25
        self.d, self.dropout = d, dropout
        self.embed_tokens = nn.Embedding(vocab, d)
        nn.init.normal_(self.embed_tokens.weight, 0, d**-0.5)
        self.encoder = nn.ModuleList(
            Layer(d, heads, ffn, dropout, enc_alpha, False) for _ in range(n))
        self.decoder = nn.ModuleList(
            Layer(d, heads, ffn, dropout, dec_alpha, True) for _ in range(m))
        pos = torch.arange(max_positions, dtype=torch.float32)[:, None]
        angle = pos / torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float32) / d)
        pe = torch.zeros(max_positions, d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
        self.register_buffer("pe", pe)

    def embed(self, tokens):
        x = self.embed_tokens(tokens) * math.sqrt(self.d) + self.pe[: tokens.shape[1]]
        return F.dropout(x, self.dropout, self.training)

    def forward(self, source, target_input):
        x = self.embed(source)
        for layer in self.encoder:
            x = layer(x)
        y = self.embed(target_input)
        for layer in self.decoder:
            y = layer(y, x, causal=True)
        return y @ self.embed_tokens.weight.t()  # tied output projection


def torch_step_times(args):
    torch.manual_seed(1)
    model = EncoderDecoder(args.layers, args.d_model, args.heads, args.ffn, args.vocab,
                           args.dropout, max(args.S, args.T))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-8)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0)
    source = torch.randint(4, args.vocab, (args.B, args.S))
    target_input = torch.randint(4, args.vocab, (args.B, args.T))
    target = torch.randint(4, args.vocab, (args.B, args.T))
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        logits = model(source, target_input)
        loss = loss_fn(logits.view(-1, args.vocab), target.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return times


def deepnet_step_times(args, env, wait_policy):
    env = dict(env)
    if wait_policy == "default":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = wait_policy
    command = [args.step_timer] + [f"{k}={getattr(args, k)}" for k in
                                   ("B", "S", "T", "steps", "warmup", "layers", "d_model", "heads",
                                    "ffn", "vocab", "dropout")]
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(result.stdout)["times_s"]


def core_and_peak(gemm_bench, env):
    """(core, sgemm peak GFLOP/s, BLAS line) as gemm_bench --peak reports them under `env`."""
    out = subprocess.run([gemm_bench, "--peak"], env=env, check=True, capture_output=True,
                         text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BLAS: "))
    core = re.search(r", core (\w+) \(", line).group(1)
    peak = float(re.search(r"sgemm peak: ([\d.]+) GFLOP/s", out).group(1))
    return core, peak, line


def torch_blas_core():
    """The core of the OpenBLAS that torch loaded (libblas.so.3), or why it cannot be told."""
    try:
        library = ctypes.CDLL("libblas.so.3")
        library.openblas_get_corename.restype = ctypes.c_char_p
        return library.openblas_get_corename().decode()
    except (OSError, AttributeError) as error:
        return f"unknown ({error})"


def model_step_flops(args):
    """Matrix-product FLOPs of one training step: forward (linear layers, attention products,
    output projection) times 3 (backward = 2x forward)."""
    d, ffn = args.d_model, args.ffn
    ns, nt = args.B * args.S, args.B * args.T
    linear = lambda tokens, inputs, outputs: 2 * tokens * inputs * outputs
    attention = lambda tq, tk: 2 * 2 * args.B * tq * tk * d  # scores and probs @ v
    encoder = 4 * linear(ns, d, d) + attention(args.S, args.S) + 2 * linear(ns, d, ffn)
    decoder = (4 * linear(nt, d, d) + attention(args.T, args.T) + 2 * linear(nt, d, d)
               + 2 * linear(ns, d, d) + attention(args.T, args.S) + 2 * linear(nt, d, ffn))
    forward = args.layers * (encoder + decoder) + linear(nt, d, args.vocab)
    return 3 * forward


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step_timer", default="build/tests/reference/step_timer")
    parser.add_argument("--gemm_bench", default="build/bench/gemm_bench",
                        help="prints the OpenBLAS core deepnet picks and the sgemm peak")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each side")
    parser.add_argument("--B", type=int, default=64)
    parser.add_argument("--S", type=int, default=32)
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d_model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--dropout", type=float, default=0.1)
    args = parser.parse_args()
    wanted = {"OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "passive"}
    if not os.environ.get("OPENBLAS_CORETYPE"):
        # deepnet's own choice for this CPU, for both sides (torch's OpenBLAS reads it at start).
        core, _, _ = core_and_peak(args.gemm_bench, dict(os.environ, **wanted))
        wanted["OPENBLAS_CORETYPE"] = core
        wanted["TORCH_STEP_BENCH_CORE"] = "deepnet's choice for this CPU"
    if any(os.environ.get(k) != v for k, v in wanted.items()):
        # PyTorch reads these at start-up (OpenMP, OpenBLAS): re-run this script with them set.
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **wanted))
    torch.set_num_threads(args.threads)
    env = dict(os.environ, GLOG_logtostderr="1")
    core, peak, _ = core_and_peak(args.gemm_bench, env)

    # Alternate the runs, so that a shared machine's changing load falls on all alike.
    deepnet, deepnet_passive, pytorch = [], [], []
    for _ in range(args.rounds):
        deepnet += deepnet_step_times(args, env, "default")
        pytorch += torch_step_times(args)
        deepnet_passive += deepnet_step_times(args, env, "passive")
    d, t = statistics.median(deepnet), statistics.median(pytorch)
    d_passive = statistics.median(deepnet_passive)
    print(f"shape: B={args.B} S={args.S} T={args.T} ({args.B * args.T} target tokens), "
          f"{args.layers}+{args.layers} layers, d_model {args.d_model}, FFN {args.ffn}, "
          f"vocab {args.vocab}, {args.threads} threads, torch {torch.__version__}")
    listed = lambda times: ", ".join(f"{x:.3f}" for x in times)
    print(f"deepnet: median {d:.3f} s/step  ({listed(deepnet)})")
    print(f"pytorch: median {t:.3f} s/step  ({listed(pytorch)})  [OMP_WAIT_POLICY=passive]")
    print(f"deepnet under OMP_WAIT_POLICY=passive: median {d_passive:.3f} s/step  "
          f"({listed(deepnet_passive)})")
    print(f"speed-up (pytorch / deepnet): {t / d:.2f}x  (target >= 1.5x); "
          f"both under passive: {t / d_passive:.2f}x")
    origin = os.environ.get("TORCH_STEP_BENCH_CORE", "OPENBLAS_CORETYPE set by the user")
    print(f"OpenBLAS core: {core} for both sides ({origin}; torch's OpenBLAS reports "
          f"{torch_blas_core()})")
    gflops, gflops_passive = (model_step_flops(args) / x * 1e-9 for x in (d, d_passive))
    print(f"sgemm peak: {peak:.1f} GFLOP/s ({args.threads} threads, core {core}); deepnet model "
          f"{gflops:.1f} GFLOP/s = {gflops / peak:.0%} of peak, under passive "
          f"{gflops_passive:.1f} GFLOP/s = {gflops_passive / peak:.0%} "
          f"({model_step_flops(args) * 1e-9:.1f} GFLOP of matrix products per step)")


if __name__ == "__main__":
    main()
