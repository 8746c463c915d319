#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (run once; the output is committed).

A few valid inputs per target, plus a few near misses, so that fuzzing starts from the formats
the readers accept. Run from anywhere: python3 tests/fuzz/corpus/make_seeds.py
"""
import json
import lzma
import pathlib
import struct
import zlib

corpus = pathlib.Path(__file__).resolve().parent
root = corpus.parents[2]


def write(target, name, data):
    path = corpus / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def valid_pairs(n):
    text = lzma.open(root / "data" / "valid.tsv.xz", "rt", encoding="utf-8").read()
    return text.splitlines()[:n]


# --- config: the file's text, then --set values, NUL-separated ---
tiny = (root / "configs" / "tiny.pbtxt").read_text()
write("config", "tiny", tiny)
write("config", "decoder-lm", (root / "configs" / "decoder-lm.pbtxt").read_text())
write("config", "encoder-only", (root / "configs" / "encoder-only.pbtxt").read_text())
write("config", "tiny-with-sets",
      tiny + "\0train.max_steps=5\0model { d_model: 64 heads: 2 }\0optimizer.lr: 3e-4"
      "\0data.data_dir=runs/x\0lr_schedule.type=INVERSE_SQRT")
write("config", "sets-only", "\0model.dropout=0.1\0parallel.pipeline_stages=2\0checkpoint.dir='c'")
write("config", "problems", "model {\n  dropout: 1.5\n  heads: 3\n}\noptimizer { lr: 0 }\n"
      "parallel { precision: BF16 }\n\0model.nope=1\0model=1\0train.max_steps.x=2")
write("config", "syntax-errors", "model { d_modl: 32 norm: DEEPNROM }\ntrain { max_steps: -1 }\n"
      "data { data_dir: \"a\\n\\x41\" }\n}")

# --- tsv: one byte of columns (low nibble source, high nibble target), then the file ---
lines = valid_pairs(6)
tsv = "\n".join(lines) + "\n"
write("tsv", "valid-1-2", b"\x21" + tsv.encode())
write("tsv", "crlf-2-1", b"\x12" + tsv.replace("\n", "\r\n").encode())
write("tsv", "malformed-0-1", b"\x10" + ("a\tb\n\n \t \r\nonly\n\tx\ny\t\n" + lines[0] + "\n"
                                         "c\td\te\n\xc3\x28\t\xff\n").encode("utf-8", "surrogateescape"))
write("tsv", "xz-1-2", b"\x21" + lzma.compress(tsv.encode(), format=lzma.FORMAT_XZ))

# --- shard: text/shard.h's layout; version 1 without checksums, version 2 with them ---
def shard(examples, vocab=16, pad=0, unk=1, bos=2, eos=3, version=1, block=64 << 10,
          checksums=True):
    """checksums=False writes a v2 shard with every CRC 0: the fuzz target fills them in."""
    src_off, tgt_off, src, tgt = [0], [0], [], []
    for s, t in examples:
        src += s
        tgt += t
        src_off.append(len(src))
        tgt_off.append(len(tgt))
    body = struct.pack(f"<{len(src_off)}Q", *src_off) + struct.pack(f"<{len(tgt_off)}Q", *tgt_off)
    body += struct.pack(f"<{len(src)}i", *src) + struct.pack(f"<{len(tgt)}i", *tgt)

    def header(crc):
        return struct.pack("<4sIIiiiiIQQQQ", b"DNTK", version, vocab, pad, bos, eos, unk, crc,
                           len(examples), len(src), len(tgt), block if version >= 2 else 0)

    assert len(header(0)) == 64
    if version < 2:
        return header(0) + body
    blocks = [body[i:i + block] for i in range(0, len(body), block)]
    table = b"".join(struct.pack("<I", zlib.crc32(b) if checksums else 0) for b in blocks)
    return header(zlib.crc32(header(0)) if checksums else 0) + body + table

write("shard", "three-examples", shard([([5, 6, 3], [7, 3]), ([8, 3], [9, 10, 11, 3]), ([3], [3])]))
write("shard", "one-example", shard([([4, 15, 3], [3])], vocab=16))
write("shard", "empty", shard([]))
write("shard", "bad-token", shard([([4, 16, 3], [3])], vocab=16))
write("shard", "v2-two-examples", shard([([5, 6, 3], [7, 3]), ([8, 3], [9, 3])], version=2))
write("shard", "v2-fill-in-crcs", shard([([5, 6, 3], [7, 3]), ([8, 3], [9, 10, 11, 3])],
                                        version=2, block=24, checksums=False))

# --- safetensors: 8-byte header length, JSON header (space-padded to 8), data ---
def safetensors(tensors, metadata=None, checksums=False):
    """checksums=True adds the "crc32:<name>" and "crc32.header" metadata runtime/safetensors.h
    describes."""
    header, data = {}, b""
    if checksums:
        metadata = dict(metadata or {})
        offset, lines = 0, []
        for name, dtype, shape, payload in tensors:
            metadata["crc32:" + name] = "%08x" % zlib.crc32(payload)
            lines.append(b"\0".join([name.encode(), dtype.encode(),
                                     ",".join(map(str, shape)).encode(), str(offset).encode(),
                                     str(offset + len(payload)).encode()]) + b"\n")
            offset += len(payload)
        content = b"".join(sorted(lines))  # by name (names hold no NUL)
        for key in sorted(metadata):
            content += key.encode() + b"\0" + metadata[key].encode() + b"\n"
        metadata["crc32.header"] = "%08x" % zlib.crc32(content)
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data

write("safetensors", "params", safetensors(
    [("enc.0.w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
     ("enc.0.b", "BF16", [3], b"\x80\x3f" * 3),
     ("step", "I32", [], struct.pack("<i", 7))],
    {"step": "100", "loss_scale": "65536", "format": "pt"}))
write("safetensors", "all-dtypes", safetensors(
    [("a", "F64", [1], struct.pack("<d", 0.5)), ("b", "F16", [2], b"\x00\x3c\x00\x40"),
     ("c", "U8", [1, 3], b"abc"), ("d", "I32", [0, 4], b"")]))
write("safetensors", "empty", safetensors([]))
write("safetensors", "checksummed", safetensors(
    [("dec.1.w", "F32", [3], struct.pack("<3f", 0.5, -1, 2)), ("a", "U8", [2], b"xy")],
    {"step": "12"}, checksums=True))
write("safetensors", "metadata-only", safetensors([], {"k": "v"}))

# --- json: state.json, a safetensors header, the corners of the grammar ---
state = {"step": 100, "seed": 18446744073709551615, "data_position": {"epoch": 1, "batch": 37},
         "vocab_size": 256, "pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3, "config": tiny}
write("json", "state", json.dumps(state, separators=(",", ":")) + "\n")
write("json", "header", '{"__metadata__":{"step":"5"},"w":{"dtype":"F32","shape":[2,3],'
      '"data_offsets":[0,24]}}')
write("json", "corners", ' [ -0, 0.5e-7, 1E+400, -9223372036854775808, 18446744073709551616, '
      'true, false, null, "\\u00e9\\ud83d\\ude00\\"\\\\\\/\\b\\f\\n\\r\\t", "\xc3\xa9", {}, [[]] ]\r\n')
write("json", "deep", "[" * 64 + "]" * 64)

# --- tokenizer: text to encode (also read as ids) ---
write("tokenizer", "english", lines[0].split("\t")[1])
write("tokenizer", "spanish", lines[1].split("\t")[2])
write("tokenizer", "mixed", "¿Qué? «Dios» — 1:11\t\u00a0ﬁ 中文 😀\n".encode())
write("tokenizer", "invalid-utf8", b"fine \xc3\x28 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xff\xfe end")
