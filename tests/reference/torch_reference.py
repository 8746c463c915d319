#!/usr/bin/env python3
"""deepnet against PyTorch: one forward + backward of a tiny encoder-decoder, rebuilt from
deepnet's safetensors export (docs/design.md#export-format) by following docs/design.md
(DeepNorm LN(a*x + G(x)), Post-LN, Pre-LN, sinusoidal positions, embeddings * sqrt(d), attention
masks, tied or untied output projection, CrossEntropyLoss(label_smoothing, ignore_index=pad)
averaged over non-pad tokens),
in float64. Compares the loss (relative 1e-9) and every parameter gradient (relative to the
tensor's largest entry, 1e-7; see GRAD_FLOOR) with what dump_reference wrote, for several model
variants.

  torch_reference.py --dumper PATH/dump_reference --workdir DIR

Exit codes: 0 all match, 1 a mismatch (per-tensor report), 77 torch or numpy is missing (skip).
The safetensors files are parsed by hand (struct + json + numpy); no safetensors package.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as error:  # ctest: SKIP_RETURN_CODE 77
    print(f"skipped: {error}")
    sys.exit(77)

LOSS_RTOL = 1e-9
GRAD_RTOL = 1e-7
# Gradients that vanish analytically (k_proj.bias: softmax ignores a shift shared by all keys) are
# rounding noise on both sides (~1e-17); they are compared against this floor instead.
GRAD_FLOOR = 1e-8
VARIANTS = [  # (norm, tied, activation, size)
    ("deepnorm", "tied", "relu", "small"),
    ("deepnorm", "untied", "gelu", "small"),
    ("postln", "tied", "gelu", "small"),
    ("preln", "untied", "relu", "small"),
    ("preln", "tied", "gelu", "small"),
    ("deepnorm", "tied", "relu", "large"),  # d 64, S 45, T 37, V 301: blocked and threaded paths
]
DTYPES = {"F64": np.float64, "F32": np.float32, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    """Returns ({name: numpy array}, metadata dict)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"]).copy()
    return tensors, metadata


def deepnorm_alphas(config):
    """(encoder alpha, decoder alpha) for the residual x*alpha (docs/design.md#deepnorm)."""
    if config["norm"] != "DEEPNORM":
        return 1.0, 1.0
    n, m = config["encoder_layers"], config["decoder_layers"]
    return 0.81 * (n**4 * m) ** (1 / 16), (3 * m) ** 0.25


def positions(length, d):
    pe = torch.zeros(length, d, dtype=torch.float64)
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), i / d)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


class Reference:
    def __init__(self, params, config):
        self.p = params
        self.c = config
        self.d = config["d_model"]
        self.h = config["heads"]
        self.eps = config["layernorm_eps"]
        self.pre_ln = config["norm"] == "PRELN"
        self.enc_alpha, self.dec_alpha = deepnorm_alphas(config)
        self.act = F.gelu if config["activation"] == "GELU" else F.relu

    def linear(self, x, name, bias=True):
        return F.linear(x, self.p[name + ".weight"], self.p[name + ".bias"] if bias else None)

    def norm(self, x, name):
        weight, bias = self.p[name + ".weight"], self.p[name + ".bias"]
        return F.layer_norm(x, (self.d,), weight, bias, self.eps)

    def embed(self, tokens):
        x = self.p["embed_tokens.weight"][tokens] * math.sqrt(self.d)
        return x + positions(tokens.shape[1], self.d)[None]

    def attention(self, name, xq, xkv, key_pad, causal):
        b, tq, tk, hd = xq.shape[0], xq.shape[1], xkv.shape[1], self.d // self.h
        split = lambda t, n: t.view(b, n, self.h, hd).transpose(1, 2)
        q = split(self.linear(xq, name + ".q_proj"), tq)
        k = split(self.linear(xkv, name + ".k_proj"), tk)
        v = split(self.linear(xkv, name + ".v_proj"), tk)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        masked = key_pad[:, None, None, :].expand(b, self.h, tq, tk)
        if causal:
            future = torch.triu(torch.ones(tq, tk, dtype=torch.bool), diagonal=1)
            masked = masked | future[None, None]
        probs = torch.softmax(scores.masked_fill(masked, float("-inf")), dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(b, tq, self.d)
        return self.linear(context, name + ".out_proj")

    def sublayer(self, x, norm_name, alpha, g):
        """DeepNorm / Post-LN: LN(alpha*x + G(x)); Pre-LN: x + G(LN(x))."""
        if self.pre_ln:
            return x + g(self.norm(x, norm_name))
        return self.norm(alpha * x + g(x), norm_name)

    def ffn(self, prefix):
        return lambda x: self.linear(self.act(self.linear(x, prefix + ".fc1")), prefix + ".fc2")

    def forward(self, batch):
        src_pad = torch.from_numpy(batch["source_mask"]).bool()
        tgt_pad = torch.from_numpy(batch["target_mask"]).bool()
        x = self.embed(torch.from_numpy(batch["source"]).long())
        for i in range(self.c["encoder_layers"]):
            pre = f"encoder.layers.{i}"
            x = self.sublayer(x, pre + ".self_attn_layer_norm", self.enc_alpha,
                              lambda y: self.attention(pre + ".self_attn", y, y, src_pad, False))
            x = self.sublayer(x, pre + ".final_layer_norm", self.enc_alpha, self.ffn(pre))
        if self.pre_ln:
            x = self.norm(x, "encoder.layer_norm")
        memory = x
        y = self.embed(torch.from_numpy(batch["target_input"]).long())
        for j in range(self.c["decoder_layers"]):
            pre = f"decoder.layers.{j}"
            y = self.sublayer(y, pre + ".self_attn_layer_norm", self.dec_alpha,
                              lambda z: self.attention(pre + ".self_attn", z, z, tgt_pad, True))
            y = self.sublayer(y, pre + ".encoder_attn_layer_norm", self.dec_alpha,
                              lambda z: self.attention(pre + ".encoder_attn", z, memory, src_pad,
                                                       False))
            y = self.sublayer(y, pre + ".final_layer_norm", self.dec_alpha, self.ffn(pre))
        if self.pre_ln:
            y = self.norm(y, "decoder.layer_norm")
        out = self.p["embed_tokens.weight" if self.c["tied_embeddings"] else
                     "output_projection.weight"]
        return y @ out.t()


def parse_config(metadata):
    ints = ["encoder_layers", "decoder_layers", "d_model", "heads", "ffn_dim", "vocab_size"]
    config = {k: int(metadata[k]) for k in ints}
    config["layernorm_eps"] = float(metadata.get("layernorm_eps", "1e-05"))
    config["norm"] = metadata["norm"]
    config["activation"] = metadata["activation"]
    config["tied_embeddings"] = metadata.get("tied_embeddings", "false") == "true"
    assert metadata["architecture"] == "ENCODER_DECODER", metadata["architecture"]
    return config


def check_variant(dumper, workdir, variant):
    out = os.path.join(workdir, "-".join(variant))
    os.makedirs(out, exist_ok=True)
    subprocess.run([dumper, out, *variant], check=True)
    weights, metadata = read_safetensors(os.path.join(out, "model.safetensors"))
    batch, batch_meta = read_safetensors(os.path.join(out, "batch.safetensors"))
    grads, _ = read_safetensors(os.path.join(out, "grads.safetensors"))
    config = parse_config(metadata)
    params = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in weights.items()}
    logits = Reference(params, config).forward(batch)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=float(batch_meta["label_smoothing"]),
                                        ignore_index=int(batch_meta["pad_id"]))
    target = torch.from_numpy(batch["target"]).long()
    loss = loss_fn(logits.reshape(-1, config["vocab_size"]), target.reshape(-1))
    loss.backward()

    failures = []
    theirs = float(batch_meta["loss"])
    loss_err = abs(loss.item() - theirs) / abs(loss.item())
    print(f"{'/'.join(variant)}: loss torch {loss.item():.15f} deepnet {theirs:.15f} "
          f"rel {loss_err:.2e}")
    if loss_err > LOSS_RTOL:
        failures.append(f"loss: relative error {loss_err:.3e} > {LOSS_RTOL}")
    if set(grads) != set(params):
        failures.append(f"gradient names differ: {sorted(set(grads) ^ set(params))}")
    worst = 0.0
    for name in sorted(set(grads) & set(params)):
        expected = params[name].grad.numpy()
        got = grads[name]
        scale = max(np.abs(expected).max(), GRAD_FLOOR)
        err = float(np.abs(expected - got).max() / scale)
        worst = max(worst, err)
        status = "ok" if err <= GRAD_RTOL else "MISMATCH"
        if err > GRAD_RTOL:
            failures.append(f"{name}: relative error {err:.3e} > {GRAD_RTOL}")
        print(f"  {status:8s} {name:45s} max|g| {scale:.3e} rel err {err:.2e}")
    print(f"  {len(grads)} gradients, worst relative error {worst:.2e}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dumper", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    failures = []
    for variant in VARIANTS:
        failures += [f"{'/'.join(variant)}: {f}" for f in check_variant(args.dumper, args.workdir,
                                                                         variant)]
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nall {len(VARIANTS)} variants match PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
