#!/usr/bin/env python3
"""Tables and figures of the depth study (scripts/depth_study.sh).

Reads OUT/metrics/<layers>-<NORM>.jsonl (a run that stopped early: <layers>-<NORM>.failed.jsonl),
the JSON lines `deepnet train` writes (logging.json_metrics): per-step loss and grad_norm, the
final valid_loss, and update_norm every train.update_norm_every steps. Writes OUT/summary.md
(the table), OUT/summary.json and OUT/figures/depth_study_{loss,update_norm,valid_loss}.{png,svg}.

Exits 1 when a run of the grid has no metrics, or a finished run logged a value that is not
finite: the study's outputs are then incomplete. A run that stopped early (diverged) is a result
and is reported, unless --require-complete.
"""
import argparse
import json
import math
import pathlib
import sys

NORM_LABELS = {"DEEPNORM": "DeepNorm", "POSTLN": "Post-LN", "PRELN": "Pre-LN"}
NORM_COLORS = {"DEEPNORM": "tab:blue", "POSTLN": "tab:red", "PRELN": "tab:green"}
FINAL_WINDOW = 10  # the final loss is the mean of the last this many steps (one batch is noisy)


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


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def summarize(run, finished):
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
    }


def fmt(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def write_table(out, depths, norms, summary):
    lines = [
        f"| layers | norm | first loss | final loss (last {FINAL_WINDOW} steps) | valid loss | "
        "first grad norm | max grad norm | first update norm (step) | final update norm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layers in depths:
        for norm in norms:
            s = summary.get(f"{layers}-{norm}")
            if s is None:
                lines.append(f"| {layers}+{layers} | {NORM_LABELS[norm]} | not run |||||||")
                continue
            label = NORM_LABELS[norm] + ("" if s["finished"] else f" (step {s['steps']} only)")
            lines.append(
                f"| {layers}+{layers} | {label} | {fmt(s['first_loss'])} | {fmt(s['final_loss'])} | "
                f"{fmt(s['valid_loss'])} | {fmt(s['first_grad_norm'], 2)} | "
                f"{fmt(s['max_grad_norm'], 2)} | {fmt(s['first_update_norm'], 0)} ({s['first_update_step']}) | "
                f"{fmt(s['final_update_norm'], 0)} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))


def save(figure, out, name):
    for ext in ("png", "svg"):
        figure.savefig(out / f"{name}.{ext}", dpi=110, bbox_inches="tight",
                       metadata={"Date": None} if ext == "svg" else None)


def plot(out, depths, norms, runs, summary):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("depth_plots: matplotlib is missing; run scripts/setup.sh "
                         "(Debian package python3-matplotlib)")
    plt.rcParams["svg.hashsalt"] = "deepnet-depth-study"  # the same SVG for the same numbers
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

    figure, axis = plt.subplots(figsize=(5, 3.6))
    for norm in norms:
        points = [(layers, summary[f"{layers}-{norm}"]["valid_loss"]) for layers in shown
                  if f"{layers}-{norm}" in summary and summary[f"{layers}-{norm}"]["valid_loss"]
                  is not None]
        if points:
            axis.plot([2 * p[0] for p in points], [p[1] for p in points], marker="o",
                      color=NORM_COLORS[norm], label=NORM_LABELS[norm])
    axis.set_xscale("log")
    axis.set_xticks([2 * layers for layers in shown])
    axis.set_xticklabels([f"{layers}+{layers}" for layers in shown])
    axis.set_xlabel("layers (encoder + decoder)")
    axis.set_ylabel("validation loss after the last step")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend()
    save(figure, figures, "depth_study_valid_loss")
    plt.close(figure)


def main():
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
            summary[name] = summarize(run, finished=path == done)
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
