// Chrome trace writer (see the header for the layout).
#include "parallel/trace.h"

#include <utility>

#include "runtime/atomic_file.h"

namespace deepnet {
namespace {

// Numbers with 3 decimals: times in µs to the nanosecond (double args alike).
JsonValue ThreeDecimals(double value) { return JsonValue::Fixed(value, 3); }

JsonValue ArgValue(const TraceArg& arg) {
  if (const auto* i = std::get_if<int64_t>(&arg.value)) return JsonValue::Int(*i);
  if (const auto* d = std::get_if<double>(&arg.value)) return ThreeDecimals(*d);
  return JsonValue::String(std::get<std::string>(arg.value));
}

JsonValue EventJson(const TraceEvent& e) {
  JsonValue json = JsonValue::Object();
  json.AddNew("name", JsonValue::String(e.name));
  json.AddNew("cat", JsonValue::String(e.category));
  json.AddNew("ph", JsonValue::String("X"));
  json.AddNew("pid", JsonValue::Int(e.pid));
  json.AddNew("tid", JsonValue::Int(e.tid));
  json.AddNew("ts", ThreeDecimals(e.start_us));
  json.AddNew("dur", ThreeDecimals(e.duration_us));
  if (!e.args.empty()) {
    JsonValue args = JsonValue::Object();
    for (const TraceArg& arg : e.args) args.Set(arg.key, ArgValue(arg));
    json.AddNew("args", std::move(args));
  }
  return json;
}

// A metadata event ("ph": "M") of process `pid`, and of thread `tid` when it is not negative.
JsonValue MetadataEvent(std::string_view name, int pid, int tid, std::string_view arg_key,
                        JsonValue arg_value) {
  JsonValue json = JsonValue::Object();
  json.AddNew("name", JsonValue::String(std::string(name)));
  json.AddNew("ph", JsonValue::String("M"));
  json.AddNew("pid", JsonValue::Int(pid));
  if (tid >= 0) json.AddNew("tid", JsonValue::Int(tid));
  JsonValue args = JsonValue::Object();
  args.AddNew(std::string(arg_key), std::move(arg_value));
  json.AddNew("args", std::move(args));
  return json;
}

std::string_view CategoryOf(ActionKind kind) {
  switch (kind) {
    case ActionKind::kForward:
      return "forward";
    case ActionKind::kBackward:
      return "backward";
    case ActionKind::kBackwardInput:
      return "backward-input";
    case ActionKind::kBackwardWeight:
      return "backward-weight";
    case ActionKind::kSendActivation:
    case ActionKind::kRecvActivation:
    case ActionKind::kSendGradient:
    case ActionKind::kRecvGradient:
      return "comm";
    case ActionKind::kReduceGradients:
      return "reduce";
    case ActionKind::kOptimizerStep:
      return "optimizer";
  }
  return "other";
}

// One event for the communication group that starts at actions[first]; returns one past its end.
// Adds nothing when `emit` is false or the group completed at once.
size_t AddGroupEvent(const RankTimeline& timeline, size_t first, int rank, double scale, bool emit,
                     TraceWriter& trace) {
  const std::vector<TimedAction>& actions = timeline.actions;
  const int group = actions[first].action.group;
  std::string name;
  size_t end = first;
  for (; end < actions.size() && actions[end].action.group == group &&
         IsCommunication(actions[end].action.kind);
       ++end) {
    if (!name.empty()) name += " + ";
    name += ToString(actions[end].action);
  }
  const double start = actions[first].start_s;
  const double finish = actions[end - 1].end_s;
  if (emit && finish > start) {
    TraceEvent event;
    event.name = std::move(name);
    event.category = "comm";
    event.pid = rank;
    event.tid = kCommunicationLane;
    event.start_us = start * scale;
    event.duration_us = (finish - start) * scale;
    event.args.push_back({"group", int64_t{group}});
    trace.Add(std::move(event));
  }
  return end;
}

}  // namespace

void TraceWriter::NameProcess(int pid, std::string_view name, int sort_index) {
  metadata_.push_back(
      MetadataEvent("process_name", pid, -1, "name", JsonValue::String(std::string(name))));
  metadata_.push_back(
      MetadataEvent("process_sort_index", pid, -1, "sort_index", JsonValue::Int(sort_index)));
}

void TraceWriter::NameThread(int pid, int tid, std::string_view name) {
  metadata_.push_back(
      MetadataEvent("thread_name", pid, tid, "name", JsonValue::String(std::string(name))));
}

void TraceWriter::LabelProcess(int pid, std::string_view labels) {
  metadata_.push_back(
      MetadataEvent("process_labels", pid, -1, "labels", JsonValue::String(std::string(labels))));
}

void TraceWriter::NameRank(int rank, int stage) {
  NameProcess(rank, "rank " + std::to_string(rank) + " (stage " + std::to_string(stage) + ")",
              rank);
  NameThread(rank, kComputeLane, "compute");
  NameThread(rank, kCommunicationLane, "comm");
}

void TraceWriter::Add(TraceEvent event) { events_.push_back(std::move(event)); }

void TraceWriter::Append(const TraceWriter& other) {
  metadata_.insert(metadata_.end(), other.metadata_.begin(), other.metadata_.end());
  events_.insert(events_.end(), other.events_.begin(), other.events_.end());
}

std::string TraceWriter::ToJson() const {
  std::string json = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  bool first = true;
  auto line = [&](const JsonValue& event) {
    if (!first) json += ",\n";
    json += event.Serialize();
    first = false;
  };
  for (const JsonValue& m : metadata_) line(m);
  for (const TraceEvent& e : events_) line(EventJson(e));
  return json + "\n]}\n";
}

Status TraceWriter::WriteFile(const std::string& path) const {
  return ReplaceFileAtomically(path, ToJson()).WithContext("writing trace " + path);
}

TraceEvent ActionEvent(const Action& action, int rank, double start_us, double duration_us) {
  TraceEvent event;
  event.name = ToString(action);
  event.category = CategoryOf(action.kind);
  event.pid = rank;
  event.tid = IsCommunication(action.kind) ? kCommunicationLane : kComputeLane;
  event.start_us = start_us;
  event.duration_us = duration_us;
  if (action.micro_batch >= 0) event.args.push_back({"micro_batch", int64_t{action.micro_batch}});
  event.args.push_back({"chunk", int64_t{action.chunk}});
  if (action.peer >= 0) event.args.push_back({"peer", int64_t{action.peer}});
  return event;
}

TraceWriter SimulationTrace(const Simulation& simulation, const SimulationTraceOptions& options) {
  TraceWriter trace;
  const double scale = options.us_per_second;
  const int ranks = static_cast<int>(simulation.ranks.size());
  for (int r = 0; r < ranks; ++r) {
    const bool has_stage = r < static_cast<int>(options.stage_of_rank.size());
    trace.NameRank(r, has_stage ? options.stage_of_rank[r] : r);
    const std::vector<TimedAction>& actions = simulation.ranks[r].actions;
    for (size_t i = 0; i < actions.size();) {
      const TimedAction& timed = actions[i];
      if (IsCommunication(timed.action.kind)) {
        i = AddGroupEvent(simulation.ranks[r], i, r, scale, options.communication, trace);
        continue;
      }
      trace.Add(ActionEvent(timed.action, r, timed.start_s * scale,
                            (timed.end_s - timed.start_s) * scale));
      ++i;
    }
  }
  return trace;
}

}  // namespace deepnet
