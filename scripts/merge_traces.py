#!/usr/bin/env python3
"""Merges per-rank Chrome trace files into one trace (python3 standard library only).

    scripts/merge_traces.py -o merged.json runs/x/trace/            # every *.json in the folder
    scripts/merge_traces.py -o merged.json rank-0.json rank-1.json  # or the files themselves

Each input is a trace in the JSON object form ({"traceEvents": [...]}) or the array form
([...], a missing closing bracket tolerated, as Chrome does for a trace cut short). Events keep
their pid (= rank, as deepnet writes them); --pid-by-file gives the events of the i-th input pid i
instead, for traces that all say pid 0. --align shifts each input so that its earliest event starts
at 0 (for clocks that were not started together). Metadata events (process and thread names) come
first, de-duplicated; then every event by time. Open the result in ui.perfetto.dev or
chrome://tracing.
"""

import argparse
import json
import os
import re
import sys


def natural_key(path):
    """rank-2.json sorts before rank-10.json."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def expand_inputs(inputs):
    files = []
    for item in inputs:
        if os.path.isdir(item):
            names = [n for n in os.listdir(item) if n.endswith(".json")]
            files.extend(os.path.join(item, n) for n in sorted(names, key=natural_key))
        else:
            files.append(item)
    return files


def load_events(path):
    """The event list of one trace file, whichever of the two forms it is in."""
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    if text.startswith("[") and not text.endswith("]"):
        text = text.rstrip().rstrip(",") + "]"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if isinstance(data, dict):
        events = data.get("traceEvents")
        if not isinstance(events, list):
            raise ValueError(f"{path}: no traceEvents list")
        return events
    if isinstance(data, list):
        return data
    raise ValueError(f"{path}: neither a trace object nor an event array")


def merge(files, pid_by_file=False, align=False):
    metadata, events, seen = [], [], set()
    for index, path in enumerate(files):
        file_events = load_events(path)
        timed = [e for e in file_events if e.get("ph") != "M" and "ts" in e]
        shift = -min(e["ts"] for e in timed) if (align and timed) else 0
        for event in file_events:
            event = dict(event)
            if pid_by_file:
                event["pid"] = index
            if event.get("ph") == "M":
                key = json.dumps(event, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    metadata.append(event)
                continue
            if "ts" in event:
                event["ts"] = event["ts"] + shift
            events.append(event)
    events.sort(key=lambda e: (e.get("ts", 0), e.get("pid", 0), e.get("tid", 0)))
    return {
        "displayTimeUnit": "ms",
        "traceEvents": metadata + events,
        "otherData": {"merged_from": [os.path.basename(f) for f in files]},
    }


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="trace files or folders of *.json")
    parser.add_argument("-o", "--output", required=True, help="merged trace file")
    parser.add_argument("--pid-by-file", action="store_true",
                        help="pid = the input's position instead of the pid in the file")
    parser.add_argument("--align", action="store_true",
                        help="start every input's first event at time 0")
    args = parser.parse_args(argv)
    files = [f for f in expand_inputs(args.inputs)
             if os.path.abspath(f) != os.path.abspath(args.output)]
    if not files:
        parser.error("no trace files found")
    try:
        merged = merge(files, args.pid_by_file, args.align)
    except (OSError, ValueError) as error:
        print(f"merge_traces: {error}", file=sys.stderr)
        return 1
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(merged, f, separators=(",", ":"))
        f.write("\n")
    count = sum(1 for e in merged["traceEvents"] if e.get("ph") != "M")
    print(f"merged {len(files)} files, {count} events -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
