// Chrome trace files: per-rank timelines of a pipeline step that chrome://tracing and Perfetto
// (ui.perfetto.dev) open — predicted by the simulator or measured by the engine.
//
// Layout: one process per rank (pid = rank, named "rank r (stage s)"), two threads per process
// (tid 0 "compute", tid 1 "comm"). A pass is a complete event ("ph": "X") with `ts` and `dur` in
// microseconds, named as in schedule.h ("F3", "B3", "W3", "F3.1") with its micro-batch and chunk
// in `args`; the engine adds "wait recv-act 3 <- 0" on the comm thread where a pass waited for
// its receive. The file is the JSON object form {"traceEvents": [...], "displayTimeUnit": "ms"};
// scripts/merge_traces.py merges per-rank files into one.
//
// Clocks: every rank's `ts` must count from one shared origin. TraceClock::Restart right after a
// barrier gives that (skew = the barrier's, microseconds within a node).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "parallel/schedule.h"
#include "parallel/simulator.h"
#include "runtime/json.h"
#include "runtime/status.h"

namespace deepnet {

inline constexpr int kComputeLane = 0;        // tid of passes (F, B, W, reduce, optimizer step)
inline constexpr int kCommunicationLane = 1;  // tid of send/recv groups

struct TraceArg {
  std::string key;
  std::variant<int64_t, double, std::string> value;
};

struct TraceEvent {
  std::string name;      // "F3", "B3.1", "send-act 3 -> 2"
  std::string category;  // "forward", "backward", "backward-input", "backward-weight", "comm", ...
  int pid = 0;           // rank
  int tid = kComputeLane;
  double start_us = 0.0;
  double duration_us = 0.0;
  std::vector<TraceArg> args;
};

// Collects events and metadata, then writes one trace file.
class TraceWriter {
 public:
  // Process metadata: "rank r (stage s)" sorted by rank, lanes named "compute" and "comm".
  void NameRank(int rank, int stage);
  void NameProcess(int pid, std::string_view name, int sort_index);
  void NameThread(int pid, int tid, std::string_view name);
  // "process_labels": a line shown under the process name (e.g. the BLAS core it ran on).
  void LabelProcess(int pid, std::string_view labels);

  void Add(TraceEvent event);
  // Appends `other`'s metadata and events (merging ranks in memory).
  void Append(const TraceWriter& other);

  const std::vector<TraceEvent>& events() const { return events_; }
  std::string ToJson() const;
  // Writes ToJson() to `path` (through a temporary file, then rename).
  Status WriteFile(const std::string& path) const;

 private:
  std::vector<JsonValue> metadata_;  // "ph": "M" events
  std::vector<TraceEvent> events_;
};

// Microseconds since an origin (steady clock). Restart after a barrier so that all ranks agree.
class TraceClock {
 public:
  TraceClock() : origin_(std::chrono::steady_clock::now()) {}
  void Restart() { origin_ = std::chrono::steady_clock::now(); }
  double NowUs() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - origin_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point origin_;
};

// The event for one executed action of `rank`: name from ToString(action), category from its kind,
// lane compute or comm, args micro_batch / chunk / peer. For the engine's measured timelines.
TraceEvent ActionEvent(const Action& action, int rank, double start_us, double duration_us);

struct SimulationTraceOptions {
  double us_per_second = 1e6;  // time scale: 1e6 for real costs, e.g. 1e3 to show unit costs as ms
  std::vector<int> stage_of_rank;  // process names; empty = stage r on rank r
  bool communication = true;       // also emit send/recv groups that had to wait
};

// The simulated timeline as a trace: one event per compute action, and per communication group
// that took time (named by its actions joined with " + ").
TraceWriter SimulationTrace(const Simulation& simulation, const SimulationTraceOptions& options);

}  // namespace deepnet
