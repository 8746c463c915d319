"""The first lines of the bundled corpus (data/*.tsv.xz) as a small prepared-data config.

Shared by the Python CLI tests that need a real `deepnet prepare` run on a few hundred verses.
"""

import lzma
import os


def write_corpus_slice(root, out_dir, train_lines, valid_lines):
    """Writes train.tsv and valid.tsv into out_dir; returns the `--set` flags that point
    `deepnet` at them (data_dir out_dir/data, a 200-piece vocabulary)."""
    for name, count in (("train.tsv", train_lines), ("valid.tsv", valid_lines)):
        with lzma.open(os.path.join(root, "data", name + ".xz"), "rt") as src, \
                open(os.path.join(out_dir, name), "w") as dst:
            dst.writelines(line for _, line in zip(range(count), src))
    data = (f'data {{ train_tsv: "{out_dir}/train.tsv" valid_tsv: "{out_dir}/valid.tsv" '
            f'data_dir: "{out_dir}/data" spm_vocab_size: 200 }}')
    return ["--set", data, "--set", "model.vocab_size=200"]
