// Checkpoint save, load and pruning (layout in the header).
#include "train/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <type_traits>

#include "runtime/json.h"
#include "runtime/safetensors.h"

namespace deepnet {
namespace {

namespace fs = std::filesystem;

std::string JoinPath(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

// The tensor as a host tensor (itself on the CPU, a copy from a device).
Tensor OnHost(const Tensor& tensor, const Backend& backend) {
  if (tensor.device().is_cpu()) return tensor;
  Tensor host = Tensor::Empty(tensor.shape(), tensor.dtype(), MemoryCategory::kWorkspace);
  backend.Copy(host, tensor);
  return host;
}

// Reads `name` from `reader` into `dst`, through a host buffer when `dst` lives on a device.
Status ReadTensor(const SafetensorsReader& reader, const std::string& name, const Tensor& dst,
                  const Backend& backend) {
  if (dst.device().is_cpu()) return reader.ReadInto(name, dst);
  Tensor host = Tensor::Empty(dst.shape(), dst.dtype(), MemoryCategory::kWorkspace);
  RETURN_IF_ERROR(reader.ReadInto(name, host));
  backend.Copy(dst, host);
  return OkStatus();
}

// Step number of a "step-NNNNNNN" directory name, or -1.
int64_t StepOfDirName(const std::string& name) {
  constexpr std::string_view kPrefix = "step-";
  if (!name.starts_with(kPrefix) || name.size() == kPrefix.size()) return -1;
  int64_t step = -1;
  const char* first = name.data() + kPrefix.size();
  const auto [end, error] = std::from_chars(first, name.data() + name.size(), step);
  if (error != std::errc() || end != name.data() + name.size()) return -1;
  return step;
}

std::string StateToJson(const TrainingState& state) {
  JsonValue json = JsonValue::Object();
  json.Set("step", JsonValue::Int(state.step));
  json.Set("seed", JsonValue::Uint(state.seed));
  JsonValue position = JsonValue::Object();
  position.Set("epoch", JsonValue::Int(state.data_position.epoch));
  position.Set("batch", JsonValue::Int(state.data_position.batch));
  json.Set("data_position", std::move(position));
  json.Set("vocab_size", JsonValue::Int(state.vocab_size));
  json.Set("pad_id", JsonValue::Int(state.special_ids.pad));
  json.Set("unk_id", JsonValue::Int(state.special_ids.unk));
  json.Set("bos_id", JsonValue::Int(state.special_ids.bos));
  json.Set("eos_id", JsonValue::Int(state.special_ids.eos));
  json.Set("config", JsonValue::String(state.config_text));
  return json.Serialize() + "\n";
}

// Field `key` of `object` as an integer.
StatusOr<int64_t> IntField(const JsonValue& object, std::string_view key) {
  const JsonValue* value = object.Find(key);
  if (value == nullptr) return InvalidArgument("missing \"" + std::string(key) + "\"");
  StatusOr<int64_t> number = value->AsInt64();
  if (!number.ok()) return InvalidArgument("\"" + std::string(key) + "\" is not an integer");
  return number;
}

StatusOr<TrainingState> StateFromJson(const JsonValue& json) {
  if (!json.is_object()) return InvalidArgument("not a JSON object");
  TrainingState state;
  ASSIGN_OR_RETURN(state.step, IntField(json, "step"));
  const JsonValue* seed = json.Find("seed");
  if (seed == nullptr || !seed->AsUint64().ok()) return InvalidArgument("bad or missing \"seed\"");
  state.seed = *seed->AsUint64();
  const JsonValue* position = json.Find("data_position");
  if (position == nullptr) return InvalidArgument("missing \"data_position\"");
  ASSIGN_OR_RETURN(state.data_position.epoch, IntField(*position, "epoch"));
  ASSIGN_OR_RETURN(state.data_position.batch, IntField(*position, "batch"));
  ASSIGN_OR_RETURN(const int64_t vocab_size, IntField(json, "vocab_size"));
  ASSIGN_OR_RETURN(const int64_t pad, IntField(json, "pad_id"));
  ASSIGN_OR_RETURN(const int64_t unk, IntField(json, "unk_id"));
  ASSIGN_OR_RETURN(const int64_t bos, IntField(json, "bos_id"));
  ASSIGN_OR_RETURN(const int64_t eos, IntField(json, "eos_id"));
  for (const auto& [name, value] :
       {std::pair{"vocab_size", vocab_size}, std::pair{"pad_id", pad}, std::pair{"unk_id", unk},
        std::pair{"bos_id", bos}, std::pair{"eos_id", eos}}) {
    if (value < INT32_MIN || value > INT32_MAX) {  // would not survive the 32-bit field
      return InvalidArgument("\"" + std::string(name) + "\" " + std::to_string(value) +
                             " is out of range");
    }
  }
  state.vocab_size = static_cast<int32_t>(vocab_size);
  state.special_ids = {static_cast<int32_t>(pad), static_cast<int32_t>(unk),
                       static_cast<int32_t>(bos), static_cast<int32_t>(eos)};
  const JsonValue* config = json.Find("config");
  if (config == nullptr || !config->is_string()) return InvalidArgument("missing \"config\"");
  state.config_text = config->text();
  return state;
}

// The safetensors files of one kind in a checkpoint: `base_name` itself, or else every per-stage
// file (StageFileName) in stage order.
struct CheckpointFiles {
  std::vector<SafetensorsReader> readers;

  static StatusOr<CheckpointFiles> Open(const std::string& dir, const std::string& base_name) {
    CheckpointFiles files;
    const std::string whole = JoinPath(dir, base_name);
    if (fs::exists(whole)) {
      ASSIGN_OR_RETURN(SafetensorsReader reader, SafetensorsReader::Open(whole));
      files.readers.push_back(std::move(reader));
      return files;
    }
    for (int stage = 0; fs::exists(JoinPath(dir, StageFileName(base_name, stage))); ++stage) {
      ASSIGN_OR_RETURN(SafetensorsReader reader,
                       SafetensorsReader::Open(JoinPath(dir, StageFileName(base_name, stage))));
      files.readers.push_back(std::move(reader));
    }
    if (files.readers.empty()) {
      return NotFound(whole + " does not exist (nor " + StageFileName(base_name, 0) + ")");
    }
    return files;
  }

  // The file holding `name` (the first one when none does: its read then names the key).
  const SafetensorsReader& For(const std::string& name) const {
    for (const SafetensorsReader& reader : readers) {
      if (reader.Find(name) != nullptr) return reader;
    }
    return readers.front();
  }
};

Status WriteParameters(const std::string& path, const std::vector<Unit*>& units,
                       const Backend& backend, FileSystem& fs) {
  SafetensorsWriter writer;
  for (const Unit* unit : units) {
    for (const Parameter& parameter : unit->parameters()) {
      RETURN_IF_ERROR(
          writer.Add(CheckpointKey(*unit, parameter), OnHost(parameter.weights(), backend)));
    }
  }
  writer.SetMetadata("format", "deepnet checkpoint parameters");
  return writer.Write(path, fs);
}

Status WriteOptimizerState(const std::string& path, Optimizer& optimizer, const Backend& backend,
                           FileSystem& fs) {
  SafetensorsWriter writer;
  for (const ParameterState& state : optimizer.states()) {
    const std::string key = CheckpointKey(*state.unit, *state.parameter);
    RETURN_IF_ERROR(writer.Add("m/" + key, OnHost(state.m, backend)));
    RETURN_IF_ERROR(writer.Add("v/" + key, OnHost(state.v, backend)));
  }
  writer.SetMetadata("format", "deepnet checkpoint optimizer");
  writer.SetMetadata("step", std::to_string(optimizer.step()));
  // fp16 loss scaling resumes where it stopped (absent in older checkpoints: the defaults).
  const LossScaler::State& scaler = optimizer.loss_scaler().state();
  writer.SetMetadata("loss_scale", JsonValue::Double(scaler.scale).Serialize());
  writer.SetMetadata("loss_scale_finite_steps", std::to_string(scaler.finite_steps));
  writer.SetMetadata("skipped_steps", std::to_string(scaler.skipped_steps));
  return writer.Write(path, fs);
}

}  // namespace

std::string CheckpointKey(const Unit& unit, const Parameter& parameter) {
  if (!parameter.tied_copy) return parameter.name;
  return "tied/" + unit.name() + "/" + parameter.name;
}

std::string CheckpointDirName(int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "step-%07lld", static_cast<long long>(step));
  return buffer;
}

Status SaveCheckpoint(const std::string& root, const TrainingState& state,
                      const std::vector<Unit*>& units, Optimizer& optimizer, const Backend& backend,
                      int keep_last, FileSystem& fs) {
  RETURN_IF_ERROR(RemoveStaleCheckpointFiles(root, state.step));
  const std::string dir = JoinPath(root, CheckpointDirName(state.step));
  RETURN_IF_ERROR(fs.CreateDirectories(dir));
  RETURN_IF_ERROR(WriteParameters(JoinPath(dir, kParamsFileName), units, backend, fs));
  RETURN_IF_ERROR(WriteOptimizerState(JoinPath(dir, kOptimizerFileName), optimizer, backend, fs));
  return CommitCheckpoint(root, state, keep_last, fs);
}

std::string StageFileName(const std::string& base_name, int stage) {
  const std::string stem = base_name.substr(0, base_name.find('.'));
  const std::string extension = base_name.substr(stem.size());
  return stem + "-stage-" + std::to_string(stage) + extension;
}

Status SaveStageFiles(const std::string& root, int64_t step, int stage,
                      const std::vector<Unit*>& units, Optimizer& optimizer, const Backend& backend,
                      FileSystem& fs) {
  const std::string dir = JoinPath(root, CheckpointDirName(step));
  RETURN_IF_ERROR(fs.CreateDirectories(dir));
  RETURN_IF_ERROR(
      WriteParameters(JoinPath(dir, StageFileName(kParamsFileName, stage)), units, backend, fs));
  return WriteOptimizerState(JoinPath(dir, StageFileName(kOptimizerFileName, stage)), optimizer,
                             backend, fs);
}

Status CommitCheckpoint(const std::string& root, const TrainingState& state, int keep_last,
                        FileSystem& fs) {
  const std::string name = CheckpointDirName(state.step);
  const std::string dir = JoinPath(root, name);
  RETURN_IF_ERROR(ReplaceFileAtomically(JoinPath(dir, kStateFileName), StateToJson(state), fs));
  RETURN_IF_ERROR(fs.SyncDirectory(root));  // the new directory entry itself
  RETURN_IF_ERROR(ReplaceFileAtomically(JoinPath(root, kLatestFileName), name + "\n", fs));
  return PruneCheckpoints(root, keep_last);
}

StatusOr<std::string> FindLatestCheckpoint(const std::string& root) {
  const std::string latest_path = JoinPath(root, kLatestFileName);
  StatusOr<std::string> latest = ReadWholeFile(latest_path);
  if (!latest.ok()) return NotFound("no checkpoint in " + root + " (" + latest_path + " missing)");
  std::string name = *latest;
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
  if (StepOfDirName(name) < 0) {
    return DataLoss(latest_path + ": does not name a step directory: \"" + name + "\"");
  }
  const std::string dir = JoinPath(root, name);
  if (!fs::is_directory(dir)) return DataLoss(latest_path + ": " + dir + " does not exist");
  return dir;
}

StatusOr<std::string> ResolveCheckpointDir(const std::string& path) {
  if (fs::exists(JoinPath(path, kStateFileName))) return path;
  return FindLatestCheckpoint(path);
}

StatusOr<TrainingState> ReadTrainingState(const std::string& checkpoint_dir) {
  const std::string path = JoinPath(checkpoint_dir, kStateFileName);
  ASSIGN_OR_RETURN(const std::string text, ReadWholeFile(path));
  StatusOr<JsonValue> json = ParseJson(text);
  if (!json.ok()) return DataLoss(path + ": " + json.status().message());
  StatusOr<TrainingState> state = StateFromJson(*json);
  if (!state.ok()) return DataLoss(path + ": " + state.status().message());
  return state;
}

Status LoadParameters(const std::string& checkpoint_dir, const std::vector<Unit*>& units,
                      const Backend& backend) {
  ASSIGN_OR_RETURN(const CheckpointFiles files,
                   CheckpointFiles::Open(checkpoint_dir, kParamsFileName));
  for (Unit* unit : units) {
    for (Parameter& parameter : unit->parameters()) {
      const std::string key = CheckpointKey(*unit, parameter);
      RETURN_IF_ERROR(ReadTensor(files.For(key), key, parameter.weights(), backend));
      parameter.SyncComputeCopy(backend);
    }
  }
  return OkStatus();
}

Status LoadOptimizerState(const std::string& checkpoint_dir, Optimizer& optimizer,
                          const Backend& backend) {
  ASSIGN_OR_RETURN(const CheckpointFiles files,
                   CheckpointFiles::Open(checkpoint_dir, kOptimizerFileName));
  for (ParameterState& state : optimizer.states()) {
    const std::string key = CheckpointKey(*state.unit, *state.parameter);
    RETURN_IF_ERROR(ReadTensor(files.For("m/" + key), "m/" + key, state.m, backend));
    RETURN_IF_ERROR(ReadTensor(files.For("v/" + key), "v/" + key, state.v, backend));
  }
  const SafetensorsReader& reader = files.readers.front();
  const std::string& path = reader.path();
  const auto step = reader.metadata().find("step");
  int64_t value = -1;
  if (step != reader.metadata().end()) {
    std::from_chars(step->second.data(), step->second.data() + step->second.size(), value);
  }
  if (value < 0) return DataLoss(path + ": missing or bad metadata \"step\"");
  optimizer.set_step(value);
  LossScaler::State scaler = optimizer.loss_scaler().state();
  const auto metadata_number = [&](const char* key, auto& out) -> Status {
    const auto it = reader.metadata().find(key);
    if (it == reader.metadata().end()) return OkStatus();
    StatusOr<JsonValue> json = ParseJson(it->second);
    // Counts must be integers in range (a cast of anything else is undefined); the scale finite.
    const double value = json.ok() && json->AsDouble().ok() ? *json->AsDouble() : -1.0;
    using Out = std::remove_reference_t<decltype(out)>;
    if (std::is_integral_v<Out> ? value >= 0 && value < 9.2e18 && value == std::floor(value)
                                : std::isfinite(value) && value > 0) {
      out = static_cast<Out>(value);
      return OkStatus();
    }
    return DataLoss(path + ": bad metadata \"" + key + "\"");
  };
  RETURN_IF_ERROR(metadata_number("loss_scale", scaler.scale));
  RETURN_IF_ERROR(metadata_number("loss_scale_finite_steps", scaler.finite_steps));
  RETURN_IF_ERROR(metadata_number("skipped_steps", scaler.skipped_steps));
  // A checkpoint written without loss scaling resumes a loss-scaled run at the scaler's start.
  if (optimizer.loss_scaler().options().enabled && !reader.metadata().contains("loss_scale")) {
    scaler.scale = optimizer.loss_scale();
  }
  if (!optimizer.loss_scaler().options().enabled) scaler.scale = 1.0;
  optimizer.loss_scaler().Restore(scaler);
  return OkStatus();
}

Status RemoveStaleCheckpointFiles(const std::string& root, int64_t step) {
  std::error_code error;
  if (!fs::is_directory(root, error)) return OkStatus();
  for (const auto& entry : fs::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    const int64_t entry_step = StepOfDirName(name);
    const bool temporary = name.find(".tmp.") != std::string::npos;
    const bool uncommitted = entry_step >= 0 && entry_step != step && entry.is_directory() &&
                             !fs::exists(entry.path() / kStateFileName);
    if (!temporary && !uncommitted) continue;
    LOG(WARNING) << "removing " << entry.path().string() << " (left by an interrupted save)";
    fs::remove_all(entry.path(), error);
    if (error) return Internal(entry.path().string() + ": cannot remove: " + error.message());
  }
  if (error) return Internal(root + ": cannot list: " + error.message());
  return OkStatus();
}

Status PruneCheckpoints(const std::string& root, int keep_last) {
  if (keep_last <= 0) return OkStatus();
  StatusOr<std::string> latest = FindLatestCheckpoint(root);
  const std::string keep = latest.ok() ? fs::path(*latest).filename().string() : "";
  std::vector<std::pair<int64_t, std::string>> steps;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    const int64_t step = StepOfDirName(name);
    if (step >= 0 && entry.is_directory()) steps.emplace_back(step, name);
  }
  if (error) return Internal(root + ": cannot list: " + error.message());
  std::sort(steps.begin(), steps.end());
  const int64_t excess = static_cast<int64_t>(steps.size()) - keep_last;
  for (int64_t i = 0; i < excess; ++i) {
    if (steps[i].second == keep) continue;
    fs::remove_all(JoinPath(root, steps[i].second), error);
    if (error)
      return Internal(root + "/" + steps[i].second + ": cannot remove: " + error.message());
  }
  return OkStatus();
}

}  // namespace deepnet
