#!/usr/bin/env python3
"""Tables and figures of the depth study (scripts/depth_study.sh, scripts/depth_sweep.sh).

Reads OUT/metrics/<layers>-<NORM>.jsonl (a run that stopped early: <layers>-<NORM>.failed.jsonl),
the JSON lines `deepnet train` writes (logging.json_metrics): per-step loss and grad_norm, the
final valid_loss, and update_norm every train.update_norm_every steps; and OUT/eval/<name>.txt,
what `deepnet eval` printed for the run's final checkpoint (validation loss and BLEU). Writes
OUT/summary.md (the table), OUT/summary.json and
OUT/figures/depth_study_{loss,update_norm,final}.{png,svg}.

Exits 1 when a run of the grid has no metrics, or a finished run logged a value that is not
finite or has no evaluation: the study's outputs are then incomplete. A run that stopped early
(diverged) is a result and is reported, unless --require-complete.

With --compare OUT OTHER: whether every run in both has the same per-step loss, learning rate,
gradient norm, update norm and validation loss (bit for bit: the study's determinism check).

With --sweep OUT NAME...: one table of the settings OUT/NAME (each a depth_study.sh output folder)
× norm, OUT/summary.md, and their loss curves, OUT/figures/depth_study_sweep_loss.{png,svg}.
"""
import argparse
import json
import math
import pathlib
import re
import sys

NORM_LABELS = {"DEEPNORM": "DeepNorm", "POSTLN": "Post-LN", "PRELN": "Pre-LN"}
NORM_COLORS = {"DEEPNORM": "tab:blue", "POSTLN": "tab:red", "PRELN": "tab:green"}
FINAL_WINDOW = 10  # the final loss is the mean of the last this many steps (one batch is noisy)
# The summary line of `deepnet eval` (launcher/cmd_eval.cc).
EVAL_LINE = re.compile(r"eval step (\d+) \| (\d+) sentences \| valid loss (\S+) .*\| BLEU (\S+) ")
PRECISION_LINE = re.compile(r"BLEU = \S+ ([0-9.]+)/")  # the next line: n-gram precisions, 1-gram first


def read_run(path):
    steps, valid, update = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SystemExit(f"{path}:{number}: not JSON: {error}")
            if "loss" in record:
                steps.append(record)
            elif "valid_loss" in record:
                valid.append(record)
            elif "update_norm" in record:
                update.append(record)
    return {"steps": steps, "valid": valid, "update": update}


def read_eval(path):
    """The step, sentence count, loss and BLEU `deepnet eval` printed, or None without a file."""
    if not path.exists():
        return None
    result = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = EVAL_LINE.match(line)
        if match:
            result = {"eval_step": int(match[1]), "eval_sentences": int(match[2]),
                      "eval_loss": float(match[3]), "bleu": float(match[4])}
        match = PRECISION_LINE.match(line)
        if match and result:
            result["unigram_precision"] = float(match[1])
            return result
    raise SystemExit(f"{path}: no 'eval step ... BLEU' line followed by 'BLEU = ...'")


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def summarize(run, finished, evaluation):
    losses = [r["loss"] for r in run["steps"]]
    norms = [r["grad_norm"] for r in run["steps"]]
    update = run["update"]
    tail = losses[-FINAL_WINDOW:]
    return {
        "finished": finished,
        "steps": run["steps"][-1]["step"] if run["steps"] else 0,
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail) if tail else None,
        "first_grad_norm": norms[0] if norms else None,
        "max_grad_norm": max(norms) if norms else None,
        "valid_loss": run["valid"][-1]["valid_loss"] if run["valid"] else None,
        "first_update_step": update[0]["step"] if update else None,
        "first_update_norm": update[0]["update_norm"] if update else None,
        "final_update_norm": update[-1]["update_norm"] if update else None,
        "min_loss": min(losses) if losses else None,
        **(evaluation or {"eval_step": None, "eval_sentences": None, "eval_loss": None,
                          "bleu": None, "unigram_precision": None}),
    }


def fmt(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def write_table(out, depths, norms, summary):
    sentences = {s["eval_sentences"] for s in summary.values() if s["eval_sentences"]}
    pairs = f", {'/'.join(map(str, sorted(sentences)))} pairs" if sentences else ""
    lines = [
        f"| layers | norm | first loss | final loss (last {FINAL_WINDOW} steps) | valid loss | "
        f"eval loss{pairs} | BLEU (1-gram precision), greedy | "
        "first grad norm | max grad norm | first update norm (step) | final update norm |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layers in depths:
        for norm in norms:
            s = summary.get(f"{layers}-{norm}")
            if s is None:
                lines.append(f"| {layers}+{layers} | {NORM_LABELS[norm]} | not run |||||||||")
                continue
            label = NORM_LABELS[norm] + ("" if s["finished"] else f" (step {s['steps']} only)")
            lines.append(
                f"| {layers}+{layers} | {label} | {fmt(s['first_loss'])} | {fmt(s['final_loss'])} | "
                f"{fmt(s['valid_loss'])} | {fmt(s['eval_loss'])} | {fmt(s['bleu'], 2)} ({fmt(s['unigram_precision'], 1)}) | "
                f"{fmt(s['first_grad_norm'], 2)} | "
                f"{fmt(s['max_grad_norm'], 2)} | {fmt(s['first_update_norm'], 0)} ({s['first_update_step']}) | "
                f"{fmt(s['final_update_norm'], 0)} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))


def save(figure, out, name):
    for ext in ("png", "svg"):
        figure.savefig(out / f"{name}.{ext}", dpi=110, bbox_inches="tight",
                       metadata={"Date": None} if ext == "svg" else None)


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("depth_plots: matplotlib is missing; run scripts/setup.sh "
                         "(Debian package python3-matplotlib)")
    plt.rcParams["svg.hashsalt"] = "deepnet-depth-study"  # the same SVG for the same numbers
    return plt


def plot(out, depths, norms, runs, summary):
    plt = pyplot()
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    shown = sorted(depths)

    def per_depth(title, key, field, ylabel, log):
        figure, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), squeeze=False)
        for axis, layers in zip(axes[0], shown):
            for norm in norms:
                run = runs.get(f"{layers}-{norm}")
                if not run or not run[key]:
                    continue
                axis.plot([r["step"] for r in run[key]], [r[field] for r in run[key]],
                          color=NORM_COLORS[norm], label=NORM_LABELS[norm], linewidth=1.2)
            axis.set_title(f"{layers}+{layers} layers")
            axis.set_xlabel("step")
            if log:
                axis.set_yscale("log")
            axis.grid(alpha=0.3)
        axes[0][0].set_ylabel(ylabel)
        if axes[0][0].get_legend_handles_labels()[0]:
            axes[0][0].legend()
        figure.suptitle(title, y=1.02)
        save(figure, figures, f"depth_study_{field}")
        plt.close(figure)

    per_depth("Training loss per token (label-smoothed)", "steps", "loss", "loss", False)
    per_depth("Model update ||F(x; θ_t) − F(x; θ_0)|| on a fixed batch", "update", "update_norm",
              "update norm (logits, L2)", True)

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for axis, field, ylabel in ((axes[0], "valid_loss", "validation loss after the last step"),
                                (axes[1], "bleu", "BLEU of the last step (greedy)")):
        for norm in norms:
            points = [(layers, summary[f"{layers}-{norm}"][field]) for layers in shown
                      if f"{layers}-{norm}" in summary and summary[f"{layers}-{norm}"][field]
                      is not None]
            if points:
                axis.plot([2 * p[0] for p in points], [p[1] for p in points], marker="o",
                          color=NORM_COLORS[norm], label=NORM_LABELS[norm])
        axis.set_xscale("log")
        axis.set_xlim(2 * shown[0] / 1.3, 2 * shown[-1] * 1.3)  # the same on both panels
        axis.set_xticks([2 * layers for layers in shown])
        axis.set_xticklabels([f"{layers}+{layers}" for layers in shown])
        axis.minorticks_off()
        axis.set_xlabel("layers (encoder + decoder)")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend()
    save(figure, figures, "depth_study_final")
    plt.close(figure)


def sweep_cell(path, steps_planned):
    """One setting × norm of the sweep: the run's final and lowest loss, or where it stopped."""
    if path is None:
        return "not run", None
    run = read_run(path)
    if not run["steps"]:
        return "no steps logged", run
    losses = [r["loss"] for r in run["steps"]]
    finite_losses = [x for x in losses if finite(x)]
    tail = losses[-FINAL_WINDOW:]
    final = sum(tail) / len(tail)
    grad = max((r["grad_norm"] for r in run["steps"] if finite(r["grad_norm"])), default=None)
    text = (f"{fmt(final)} (first {fmt(losses[0])}, min {fmt(min(finite_losses, default=None))}, "
            f"max grad {fmt(grad, 1)})")
    if path.name.endswith(".failed.jsonl") or path.name.endswith(".tmp"):
        last = run["steps"][-1]["step"]
        what = "stopped" if path.name.endswith(".failed.jsonl") else "unfinished"
        text = f"**{what} at step {last}** of {steps_planned}; " + text
    return text, run


def sweep(out, names):
    """The table and loss curves of scripts/depth_sweep.sh's settings."""
    norms = list(NORM_LABELS)
    lines = ["| setting | layers | settings | steps | " + " | ".join(
        f"{NORM_LABELS[n]}: loss, last {FINAL_WINDOW} steps" for n in norms) + " |",
             "|---|---|---|---|" + "---|" * len(norms)]
    panels = []
    for name in names:
        folder = out / name
        metrics = sorted(folder.glob("metrics/*-*.jsonl*"))
        if not metrics:
            lines.append(f"| {name} | not run |||" + "|" * len(norms))
            continue
        layers = metrics[0].name.split("-")[0]
        # depth_study.sh wrote "train.max_steps=N KEY=VALUE...".
        steps_setting, _, settings = (folder / "settings.txt").read_text(
            encoding="utf-8").strip().partition(" ")
        steps_planned = steps_setting.partition("=")[2]
        settings = settings or "as the grid"
        cells, runs = [], {}
        for norm in norms:
            path = next((p for p in (folder / "metrics" / f"{layers}-{norm}{ext}"
                                     for ext in (".jsonl", ".failed.jsonl", ".jsonl.tmp"))
                         if p.exists()), None)
            cell, runs[norm] = sweep_cell(path, steps_planned)
            cells.append(cell)
        lines.append(f"| {name} | {layers}+{layers} | `{settings}` | {steps_planned} | " +
                     " | ".join(cells) + " |")
        panels.append((name, layers, settings, runs))
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if not panels:
        return 1
    plt = pyplot()
    columns = min(3, len(panels))
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.4 * rows), squeeze=False)
    for axis, (name, layers, settings, runs) in zip(axes.flat, panels):
        for norm, run in runs.items():
            if run and run["steps"]:
                axis.plot([r["step"] for r in run["steps"]], [r["loss"] for r in run["steps"]],
                          color=NORM_COLORS[norm], label=NORM_LABELS[norm], linewidth=1.1)
        axis.set_title(f"{layers}+{layers}: {settings}", fontsize=8)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    axes[0][0].set_ylabel("training loss")
    axes[0][0].legend()
    figure.tight_layout()  # the titles clear the step labels of the row above
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    save(figure, figures, "depth_study_sweep_loss")
    plt.close(figure)
    print(f"depth_plots: sweep table in {out}/summary.md, figure in {figures}")
    return 0


def compare(out, other):
    """Exit status 0 when every run of `out` logged the same numbers as the same run in `other`."""
    keys = ("step", "loss", "lr", "grad_norm", "update_norm", "valid_loss")  # not the timings
    different = 0
    for path in sorted((out / "metrics").glob("*.jsonl")):
        twin = other / "metrics" / path.name
        if not twin.exists():
            print(f"{path.name}: not in {other}")
            continue
        numbers = [[{k: r[k] for k in keys if k in r} for part in read_run(p).values()
                    for r in part] for p in (path, twin)]
        same = numbers[0] == numbers[1]
        different += not same
        print(f"{path.name}: {len(numbers[0])} records, "
              f"{'identical' if same else 'DIFFERENT'} to {twin}")
    return 1 if different else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--compare":
        parser = argparse.ArgumentParser(description="the determinism check of two studies")
        parser.add_argument("--compare", nargs=2, type=pathlib.Path, required=True,
                            metavar=("OUT", "OTHER"))
        return compare(*parser.parse_args().compare)
    if len(sys.argv) > 1 and sys.argv[1] == "--sweep":
        parser = argparse.ArgumentParser(description="the table and figure of a depth sweep")
        parser.add_argument("--sweep", type=pathlib.Path, required=True, metavar="OUT")
        parser.add_argument("names", nargs="+")
        args = parser.parse_args()
        return sweep(args.sweep, args.names)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--depths", nargs="+", type=int, required=True)
    parser.add_argument("--norms", nargs="+", choices=list(NORM_LABELS), required=True)
    parser.add_argument("--require-complete", action="store_true",
                        help="a run that stopped early is an error too")
    args = parser.parse_args()

    problems, runs, summary = [], {}, {}
    for layers in args.depths:
        for norm in args.norms:
            name = f"{layers}-{norm}"
            done = args.out / "metrics" / f"{name}.jsonl"
            failed = args.out / "metrics" / f"{name}.failed.jsonl"
            running = args.out / "metrics" / f"{name}.jsonl.tmp"  # still training, or killed
            path = next((p for p in (done, failed, running) if p.exists()), None)
            if path is None:
                problems.append(f"{name}: no metrics ({done})")
                continue
            if path == running:
                problems.append(f"{name}: not finished (shown up to its last logged step)")
            run = read_run(path)
            runs[name] = run
            if not run["steps"]:
                problems.append(f"{path}: no training steps logged")
                continue
            evaluation = read_eval(args.out / "eval" / f"{name}.txt")
            summary[name] = summarize(run, finished=path == done, evaluation=evaluation)
            if path == running:
                continue
            if path == failed:
                print(f"depth_plots: {name} stopped early at step {summary[name]['steps']} "
                      f"(see {args.out}/logs/{name}.log)")
                if args.require_complete:
                    problems.append(f"{name}: stopped early")
                continue
            values = [(r["step"], k, r[k]) for part in run.values() for r in part
                      for k in ("loss", "grad_norm", "valid_loss", "update_norm") if k in r]
            if evaluation is None:
                problems.append(f"{name}: not evaluated ({args.out}/eval/{name}.txt is missing)")
            else:
                values += [(evaluation["eval_step"], k, evaluation[k]) for k in ("eval_loss", "bleu")]
            bad = [v for v in values if not finite(v[2])]
            if bad:
                problems.append(f"{path}: step {bad[0][0]}: {bad[0][1]} is {bad[0][2]}")
            for part in ("valid", "update"):
                if not run[part]:
                    problems.append(f"{path}: no {part} records")

    if summary:
        write_table(args.out, args.depths, args.norms, summary)
        plot(args.out, args.depths, args.norms, runs, summary)
        print(f"depth_plots: table in {args.out}/summary.md, figures in {args.out}/figures")
    for problem in problems:
        print(f"depth_plots: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
