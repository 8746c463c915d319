// ValidateConfig: the semantic checks of a RunConfig. Each problem becomes one line,
// "<where>: <field>: <what is wrong>; <what to change>", where <where> is the file position or the
// --set override that wrote the field (nothing when the value is a default).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "configs/config.h"
#include "configs/config_util.h"
#include "configs/model_rules.h"
#include "configs/stage_units.h"
#include "parallel/schedule.h"

namespace deepnet::config {
namespace {

namespace pb = google::protobuf;

class Checker {
 public:
  explicit Checker(const ParseInfo* locations) : locations_(locations) {}

  // Records a problem. `fields` are the fields involved, the one to report first: the problem is
  // located at the first of them that a user layer wrote.
  void Fail(std::initializer_list<std::string_view> fields, const std::string& message) {
    Fail(std::vector<std::string>(fields.begin(), fields.end()), message);
  }
  void Fail(const std::vector<std::string>& fields, const std::string& message) {
    std::string where;
    for (const std::string& field : fields) {
      if (locations_ != nullptr) where = locations_->Locate(field);
      if (!where.empty()) break;
    }
    const std::string line = fields.front() + ": " + message;
    problems_.push_back(where.empty() ? line : where + ": " + line);
  }

  void AtLeast(std::string_view field, int64_t value, int64_t min, std::string_view meaning = "") {
    if (value >= min) return;
    Fail({field}, "got " + std::to_string(value) + "; use a value >= " + std::to_string(min) +
                      std::string(meaning));
  }

  // [0, 1): probabilities of dropping and smoothing, Adam's betas.
  // Non-finite values are reported once, by CheckEnumsAndNumbers.
  void InUnitInterval(std::string_view field, double value) {
    if (!std::isfinite(value) || (value >= 0 && value < 1)) return;
    Fail({field}, "got " + FormatNumber(value) + "; use a value in [0, 1)");
  }

  void Positive(std::string_view field, double value) {
    if (!std::isfinite(value) || value > 0) return;
    Fail({field}, "got " + FormatNumber(value) + "; use a value > 0");
  }

  void NonNegative(std::string_view field, double value) {
    if (!std::isfinite(value) || value >= 0) return;
    Fail({field}, "got " + FormatNumber(value) + "; use a value >= 0");
  }

  Status Result() const {
    if (problems_.empty()) return OkStatus();
    return InvalidArgument(JoinNames(problems_, "\n"));
  }

 private:
  const ParseInfo* locations_;
  std::vector<std::string> problems_;
};

// Every enum set to a named value other than UNSPECIFIED; every real number finite.
void CheckEnumsAndNumbers(const RunConfig& config, Checker& check) {
  const pb::Reflection* root_reflection = config.GetReflection();
  const pb::Descriptor* root = config.GetDescriptor();
  for (int i = 0; i < root->field_count(); ++i) {
    const pb::Message& section = root_reflection->GetMessage(config, root->field(i));
    const pb::Reflection* reflection = section.GetReflection();
    const pb::Descriptor* type = section.GetDescriptor();
    for (int j = 0; j < type->field_count(); ++j) {
      const pb::FieldDescriptor* field = type->field(j);
      const std::string path = root->field(i)->name() + "." + field->name();
      if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_DOUBLE &&
          !std::isfinite(reflection->GetDouble(section, field))) {
        check.Fail({path}, "got " + FormatNumber(reflection->GetDouble(section, field)) +
                               "; use a finite number");
      }
      if (field->enum_type() == nullptr) continue;
      const int value = reflection->GetEnumValue(section, field);
      const std::string choices = EnumChoices(field->enum_type());
      if (value == 0) {
        check.Fail({path}, "is unset; choose one of " + choices);
      } else if (field->enum_type()->FindValueByNumber(value) == nullptr) {
        check.Fail({path}, "unknown value " + std::to_string(value) + "; choose one of " + choices);
      }
    }
  }
}

void CheckModel(const RunConfig& config, Checker& check) {
  const ModelConfig& model = config.model();
  for (const ModelRuleProblem& problem : ModelRuleProblems(model)) {
    check.Fail(problem.fields, problem.message);
  }
  if (model.vocab_size() == 0 && config.data().spm_vocab_size() == 0) {
    check.Fail({"model.vocab_size", "data.spm_vocab_size"},
               "0 takes the vocabulary from the tokenizer, but data.spm_vocab_size is 0 (no "
               "tokenizer); set model.vocab_size or data.spm_vocab_size");
  }
  const DataConfig& data = config.data();
  if (HasEncoder(model) && data.max_source_length() > model.max_positions()) {
    check.Fail({"model.max_positions", "data.max_source_length"},
               std::to_string(model.max_positions()) + " is shorter than data.max_source_length " +
                   std::to_string(data.max_source_length()) + "; raise it or lower that");
  }
  if (HasDecoder(model) && data.max_target_length() > model.max_positions()) {
    check.Fail({"model.max_positions", "data.max_target_length"},
               std::to_string(model.max_positions()) + " is shorter than data.max_target_length " +
                   std::to_string(data.max_target_length()) + "; raise it or lower that");
  }
}

void CheckData(const RunConfig& config, Checker& check) {
  const DataConfig& data = config.data();
  const ModelConfig& model = config.model();
  if (HasEncoder(model)) check.AtLeast("data.source_column", data.source_column(), 1, " (1-based)");
  if (HasDecoder(model)) check.AtLeast("data.target_column", data.target_column(), 1, " (1-based)");
  if (model.architecture() == ModelConfig::ENCODER_DECODER &&
      data.source_column() == data.target_column()) {
    check.Fail({"data.target_column", "data.source_column"},
               "is the same column as data.source_column (" + std::to_string(data.source_column()) +
                   "); translate between two columns");
  }
  check.AtLeast("data.spm_vocab_size", data.spm_vocab_size(), 0, " (0 = no tokenizer)");
  const double coverage = data.spm_character_coverage();
  if (std::isfinite(coverage) && !(coverage > 0 && coverage <= 1)) {
    check.Fail({"data.spm_character_coverage"},
               "got " + FormatNumber(coverage) + "; use a value in (0, 1]");
  }
  check.AtLeast("data.max_tokens_per_batch", data.max_tokens_per_batch(), 1);
  check.AtLeast("data.max_source_length", data.max_source_length(), 1);
  check.AtLeast("data.max_target_length", data.max_target_length(), 1);
  const int longest = std::max(HasEncoder(model) ? data.max_source_length() : 0,
                               HasDecoder(model) ? data.max_target_length() : 0);
  if (data.max_tokens_per_batch() >= 1 && data.max_tokens_per_batch() < longest) {
    check.Fail({"data.max_tokens_per_batch"},
               std::to_string(data.max_tokens_per_batch()) +
                   " cannot hold the longest sentence allowed (" + std::to_string(longest) +
                   " tokens); raise it or lower data.max_source_length/max_target_length");
  }
  check.AtLeast("data.shuffle_buffer", data.shuffle_buffer(), 0, " (0 = file order)");
  check.AtLeast("data.bucket_width", data.bucket_width(), 0, " (0 = no bucketing)");
}

void CheckTraining(const RunConfig& config, Checker& check) {
  const TrainConfig& train = config.train();
  check.AtLeast("train.max_steps", train.max_steps(), 1);
  check.InUnitInterval("train.label_smoothing", train.label_smoothing());
  check.NonNegative("train.clip_norm", train.clip_norm());
  check.AtLeast("train.accumulation_steps", train.accumulation_steps(), 1);
  check.AtLeast("train.valid_every", train.valid_every(), 0, " (0 = never)");
  check.AtLeast("train.max_consecutive_skips", train.max_consecutive_skips(), 1);
  check.NonNegative("train.spike_factor", train.spike_factor());
  check.AtLeast("train.update_norm_every", train.update_norm_every(), 0, " (0 = never)");
  if (train.update_norm_every() > 0) {
    // The probe is the first validation batch, and only the single-process trainer runs it.
    if (train.valid_every() <= 0 || config.data().valid_tsv().empty()) {
      check.Fail({"train.update_norm_every", "train.valid_every"},
                 "the update norm is measured on the first validation batch; set "
                 "train.valid_every > 0 and data.valid_tsv, or train.update_norm_every: 0");
    }
    if (config.parallel().pipeline_stages() != 1 || config.parallel().data_parallel() != 1) {
      check.Fail({"train.update_norm_every", "parallel.pipeline_stages"},
                 "the update norm is measured by the single-process trainer only; use "
                 "parallel.pipeline_stages = 1 and parallel.data_parallel = 1, or "
                 "train.update_norm_every: 0");
    }
  }

  const OptimizerConfig& optimizer = config.optimizer();
  check.Positive("optimizer.lr", optimizer.lr());
  check.InUnitInterval("optimizer.beta1", optimizer.beta1());
  check.InUnitInterval("optimizer.beta2", optimizer.beta2());
  check.Positive("optimizer.eps", optimizer.eps());
  check.NonNegative("optimizer.weight_decay", optimizer.weight_decay());

  const LrScheduleConfig& schedule = config.lr_schedule();
  check.AtLeast("lr_schedule.warmup_steps", schedule.warmup_steps(), 0);
  if (schedule.type() == LrScheduleConfig::INVERSE_SQRT && schedule.warmup_steps() == 0) {
    check.Fail({"lr_schedule.warmup_steps", "lr_schedule.type"},
               "INVERSE_SQRT decays as lr * sqrt(warmup_steps / step) and needs warmup_steps >= "
               "1; set it or choose lr_schedule.type: CONSTANT");
  }
  if (schedule.type() == LrScheduleConfig::LINEAR_WARMUP_COSINE &&
      schedule.warmup_steps() >= train.max_steps()) {
    check.Fail({"lr_schedule.warmup_steps", "train.max_steps"},
               std::to_string(schedule.warmup_steps()) +
                   " leaves no steps for the cosine decay "
                   "(train.max_steps " +
                   std::to_string(train.max_steps()) + "); lower it");
  }
  for (const auto& [field, value] : {std::pair<std::string_view, double>{
                                         "lr_schedule.warmup_init_lr", schedule.warmup_init_lr()},
                                     {"lr_schedule.min_lr", schedule.min_lr()}}) {
    const bool lr_valid = std::isfinite(optimizer.lr()) && optimizer.lr() > 0;
    if (!lr_valid || !std::isfinite(value) || (value >= 0 && value <= optimizer.lr())) continue;
    check.Fail({field, "optimizer.lr"}, "got " + FormatNumber(value) + "; use a value in [0, " +
                                            FormatNumber(optimizer.lr()) + "] (optimizer.lr)");
  }
}

// The schedule's rules come from its entry in the list of schedule kinds (parallel/schedule.h).
void CheckSchedule(const RunConfig& config, Checker& check) {
  const ParallelConfig& parallel = config.parallel();
  const StatusOr<ScheduleKind> kind =
      ParseScheduleKind(ParallelConfig::Schedule_Name(parallel.schedule()));
  if (!kind.ok()) {
    check.Fail({"parallel.schedule"}, std::string(kind.status().message()));
    return;
  }
  const ScheduleKindInfo& info = InfoOf(*kind);
  const bool interleaved = *kind == ScheduleKind::kInterleaved1F1B;
  if (!info.takes_virtual_chunks && parallel.virtual_chunks() > 1) {
    check.Fail({"parallel.virtual_chunks", "parallel.schedule"},
               "got " + std::to_string(parallel.virtual_chunks()) +
                   " but model chunks need parallel.schedule: INTERLEAVED_1F1B; set that or "
                   "parallel.virtual_chunks: 1");
  }
  if (interleaved && parallel.virtual_chunks() == 1) {
    check.Fail({"parallel.virtual_chunks", "parallel.schedule"},
               "INTERLEAVED_1F1B needs at least 2 chunks per rank (with 1 it is ONE_F_ONE_B); "
               "set parallel.virtual_chunks: 2 or more");
  }
  const int64_t layers =
      int64_t{config.model().encoder_layers()} + int64_t{config.model().decoder_layers()};
  if (parallel.pipeline_stages() >= 1 && parallel.virtual_chunks() >= 1 &&
      parallel.micro_batches() >= 1 && layers >= 1 &&
      (parallel.virtual_chunks() == 1 || info.takes_virtual_chunks)) {
    // The option checks (CheckScheduleOptions) run where a pipeline is built: one process
    // ignores the schedule.
    const ChunkPlacement placement = info.placement({.stages = parallel.pipeline_stages(),
                                                     .micro_batches = parallel.micro_batches(),
                                                     .virtual_chunks = parallel.virtual_chunks(),
                                                     .pass_costs = {}});
    if (placement.num_chunks() > layers) {
      check.Fail({"parallel.pipeline_stages", "parallel.virtual_chunks"},
                 std::to_string(placement.num_chunks()) + " pipeline pieces (model chunks of " +
                     std::string(info.config_name) + ") for " + std::to_string(layers) +
                     " layers; every piece needs at least one layer");
    }
  }
}

void CheckParallel(const RunConfig& config, Checker& check) {
  const ParallelConfig& parallel = config.parallel();
  check.AtLeast("parallel.pipeline_stages", parallel.pipeline_stages(), 1);
  check.AtLeast("parallel.data_parallel", parallel.data_parallel(), 1);
  check.AtLeast("parallel.micro_batches", parallel.micro_batches(), 1);
  check.AtLeast("parallel.virtual_chunks", parallel.virtual_chunks(), 1);
  CheckSchedule(config, check);
  check.AtLeast("parallel.recompute_every", parallel.recompute_every(), 1);
  if (parallel.backend() == ParallelConfig::CPU && (parallel.precision() == ParallelConfig::BF16 ||
                                                    parallel.precision() == ParallelConfig::FP16)) {
    check.Fail({"parallel.precision", "parallel.backend"},
               ParallelConfig::Precision_Name(parallel.precision()) +
                   " needs parallel.backend: CUDA (or STRICT); the CPU backend runs FP32");
  }
  if (parallel.comm() == ParallelConfig::NCCL && parallel.backend() != ParallelConfig::CUDA) {
    check.Fail({"parallel.comm", "parallel.backend"},
               "NCCL moves device memory of the CUDA backend; with backend " +
                   ParallelConfig::Backend_Name(parallel.backend()) + " use comm: MPI");
  }
  check.AtLeast("parallel.comm_timeout_seconds", parallel.comm_timeout_seconds(), 1);
  check.AtLeast("parallel.stage_memory_limit_mb", parallel.stage_memory_limit_mb(), 0,
                " (0 = no limit)");
  if (!parallel.stage_units().empty()) {
    const StatusOr<std::vector<int>> units = ParseStageUnits(parallel.stage_units());
    if (!units.ok()) check.Fail({"parallel.stage_units"}, units.status().message());
  }
}

void CheckOutputs(const RunConfig& config, Checker& check) {
  const CheckpointConfig& checkpoint = config.checkpoint();
  check.AtLeast("checkpoint.every_steps", checkpoint.every_steps(), 0, " (0 = at the end only)");
  check.AtLeast("checkpoint.keep_last", checkpoint.keep_last(), 0, " (0 = keep all)");
  if (checkpoint.resume() && checkpoint.restart()) {
    check.Fail({"checkpoint.resume", "checkpoint.restart"},
               "resume continues the checkpoints, restart replaces them; choose one");
  }
  if (checkpoint.resume() && checkpoint.dir().empty()) {
    check.Fail({"checkpoint.resume", "checkpoint.dir"},
               "resuming needs a checkpoint directory; set checkpoint.dir");
  }
  check.AtLeast("logging.log_every", config.logging().log_every(), 1);
  check.AtLeast("logging.trace_steps", config.logging().trace_steps(), 1);
}

}  // namespace

Status ValidateConfig(const RunConfig& config, const ParseInfo* locations) {
  Checker check(locations);
  CheckEnumsAndNumbers(config, check);
  CheckModel(config, check);
  CheckData(config, check);
  CheckTraining(config, check);
  CheckParallel(config, check);
  CheckOutputs(config, check);
  return check.Result();
}

}  // namespace deepnet::config
