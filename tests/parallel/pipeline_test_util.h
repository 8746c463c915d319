// Shared by the pipeline engine tests: token shards, run configs, the single-process reference
// and bitwise comparison of parameters, and the (stages, micro-batches, schedule, recompute)
// combinations every test sweeps.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "configs/config.h"
#include "kernels/strict/strict_backend.h"
#include "parallel/schedule.h"
#include "text/shard.h"
#include "train/trainer.h"

namespace deepnet::testing {

inline constexpr int kVocab = 64;

// `examples` random pairs: source 3..12 pieces, target 2..14 pieces (independent lengths, so
// both sides are padded), each + </s>.
inline Status WriteShard(const std::string& path, int examples, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> source_length(3, 12), target_length(2, 14);
  std::uniform_int_distribution<int> piece(4, kVocab - 1);
  const SpecialIds special;
  ShardWriter writer(kVocab, special);
  for (int e = 0; e < examples; ++e) {
    std::vector<int32_t> source(source_length(rng)), target(target_length(rng));
    for (int32_t& t : source) t = piece(rng);
    for (int32_t& t : target) t = piece(rng);
    source.push_back(special.eos);
    target.push_back(special.eos);
    writer.Add(source, target);
  }
  return writer.Write(path);
}

// <root>/data/{train,valid}.bin.
inline Status WriteData(const std::string& root, int examples = 600) {
  std::filesystem::create_directories(root + "/data");
  RETURN_IF_ERROR(WriteShard(root + "/data/train.bin", examples, 5));
  return WriteShard(root + "/data/valid.bin", 24, 6);
}

struct RunShape {
  int stages = 1;
  int data_parallel = 1;
  int micro_batches = 1;
  ScheduleKind schedule = ScheduleKind::kOneFOneB;
  config::ParallelConfig::Recompute recompute = config::ParallelConfig::NONE;
  int recompute_every = 1;
  int flushes = 1;  // train.accumulation_steps
  int encoder_layers = 4;
  int decoder_layers = 4;
  int d_model = 16;
  config::ParallelConfig::RankOrder rank_order = config::ParallelConfig::STAGE_MAJOR;
  std::string checkpoint_dir;  // "" = none
  int64_t max_steps = 3;
  int comm_timeout_seconds = 30;
};

// Dropout everywhere, label smoothing, tied embeddings, weight decay and a clip norm that the
// gradients exceed (clipping active).
inline config::RunConfig MakeConfig(const std::string& root, const RunShape& s) {
  const std::string text =
      "model { architecture: ENCODER_DECODER encoder_layers: " + std::to_string(s.encoder_layers) +
      " decoder_layers: " + std::to_string(s.decoder_layers) +
      " d_model: " + std::to_string(s.d_model) +
      " heads: 2 ffn_dim: 32 vocab_size: 0 dropout: 0.1 attention_dropout: 0.1"
      " activation_dropout: 0.1 max_positions: 64 tied_embeddings: true }\n"
      "data { data_dir: \"" +
      root +
      "/data\" valid_tsv: \"x\" spm_vocab_size: 64"
      " max_tokens_per_batch: 64 max_source_length: 32 max_target_length: 32"
      " shuffle_buffer: 100000 }\n"
      "train { max_steps: " +
      std::to_string(s.max_steps) +
      " seed: 11 valid_every: 0"
      " accumulation_steps: " +
      std::to_string(s.flushes) +
      " label_smoothing: 0.1 clip_norm: 0.5 }\n"
      "optimizer { type: ADAM lr: 3e-3 weight_decay: 0.01 }\n"
      "lr_schedule { type: INVERSE_SQRT warmup_steps: 2 }\n"
      "parallel { pipeline_stages: " +
      std::to_string(s.stages) + " data_parallel: " + std::to_string(s.data_parallel) +
      " micro_batches: " + std::to_string(s.micro_batches) +
      " schedule: " + std::string(InfoOf(s.schedule).config_name) +
      " virtual_chunks: " + (InfoOf(s.schedule).takes_virtual_chunks ? "2" : "1") +
      " recompute: " + config::ParallelConfig::Recompute_Name(s.recompute) +
      " recompute_every: " + std::to_string(s.recompute_every) +
      " rank_order: " + config::ParallelConfig::RankOrder_Name(s.rank_order) +
      " comm_timeout_seconds: " + std::to_string(s.comm_timeout_seconds) +
      " }\n"
      "checkpoint { dir: \"" +
      s.checkpoint_dir +
      "\" every_steps: 0 keep_last: 0 }\n"
      "logging { log_every: 1 }\n";
  StatusOr<config::RunConfig> config = config::LoadConfigFromText(text, "pipeline test", {});
  CHECK(config.ok()) << config.status();
  return *config;
}

// The same run on one process: data_parallel replicas become more micro-batches per flush.
inline config::RunConfig SingleProcessConfig(config::RunConfig config) {
  config::ParallelConfig& parallel = *config.mutable_parallel();
  parallel.set_micro_batches(parallel.micro_batches() * parallel.data_parallel());
  parallel.set_pipeline_stages(1);
  parallel.set_data_parallel(1);
  parallel.set_schedule(config::ParallelConfig::ONE_F_ONE_B);
  parallel.set_virtual_chunks(1);
  return config;
}

// Every unit's parameter values (flat buffer bytes), by unit index, and the step's grad norms.
struct Snapshot {
  std::map<int, std::vector<float>> values;
  std::vector<double> grad_norms;
};

// A unit's flat fp32 weights (the master copy under mixed precision) on the host, from any device.
inline std::vector<float> HostWeights(const Unit& unit) {
  const Tensor& flat = unit.flat_master().defined() ? unit.flat_master() : unit.flat_values();
  CHECK(flat.dtype() == DType::kF32) << unit.name() << ": " << flat.ToString();
  Tensor host = flat;
  if (flat.device().kind == DeviceKind::kStrict) {
    host = Tensor::Empty(flat.shape(), flat.dtype(), MemoryCategory::kOther);
    StrictBackend().Copy(host, flat);
  }
  std::vector<float> copy(flat.numel());
  if (flat.numel() > 0) std::memcpy(copy.data(), host.raw_data(), host.nbytes());
  return copy;
}

inline void AddUnits(Snapshot& snapshot, const std::vector<Unit*>& units) {
  for (const Unit* unit : units) snapshot.values[unit->index()] = HostWeights(*unit);
}

// The single-process Trainer's parameters after `steps` steps of `config` (made single-process).
inline Snapshot ReferenceRun(const config::RunConfig& config, int64_t steps) {
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(SingleProcessConfig(config));
  CHECK(trainer.ok()) << trainer.status();
  Snapshot snapshot;
  for (int64_t s = 0; s < steps; ++s) {
    StatusOr<StepResult> step = (*trainer)->TrainStep();
    CHECK(step.ok()) << step.status();
    snapshot.grad_norms.push_back(step->optimizer.grad_norm);
  }
  std::vector<Unit*> units;
  for (auto& unit : (*trainer)->model().units()) units.push_back(unit.get());
  AddUnits(snapshot, units);
  return snapshot;
}

// Key-projection biases get no gradient (softmax ignores a shift of every score), so under Adam
// they move by rounding noise scaled up by 1/√v: compared absolutely, not relatively.
inline bool IsNoiseDriven(const std::string& name) { return name.ends_with("k_proj.bias"); }

// Bitwise (relative = 0), or every parameter within `relative` of the reference in norm,
// ‖got − want‖₂ ≤ relative · ‖want‖₂ (noise-driven ones within 1e-4 absolutely).
inline ::testing::AssertionResult SameParameters(const Snapshot& reference,
                                                 const std::vector<Unit*>& units,
                                                 double relative = 0.0) {
  for (const Unit* unit : units) {
    const auto it = reference.values.find(unit->index());
    if (it == reference.values.end()) {
      return ::testing::AssertionFailure() << "no reference for unit " << unit->name();
    }
    const std::vector<float>& want = it->second;
    const std::vector<float> weights = HostWeights(*unit);
    if (want.size() != weights.size()) {
      return ::testing::AssertionFailure() << unit->name() << ": size differs";
    }
    const float* got = weights.data();
    if (relative == 0.0) {
      for (size_t i = 0; i < want.size(); ++i) {
        if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
          return ::testing::AssertionFailure()
                 << unit->name() << " element " << i << ": " << got[i] << " vs reference "
                 << want[i] << " (difference " << got[i] - want[i] << ")";
        }
      }
      continue;
    }
    int64_t offset = 0;  // parameters are packed views in declaration order
    for (const Parameter& parameter : unit->parameters()) {
      double difference = 0.0, norm = 0.0, largest = 0.0;
      for (int64_t i = offset; i < offset + parameter.value.numel(); ++i) {
        const double delta = static_cast<double>(got[i]) - want[i];
        difference += delta * delta;
        norm += static_cast<double>(want[i]) * want[i];
        largest = std::max(largest, std::abs(delta));
      }
      offset += parameter.value.numel();
      const bool close = IsNoiseDriven(parameter.name)
                             ? largest <= 1e-4
                             : std::sqrt(difference) <= relative * std::sqrt(norm);
      if (!close) {
        return ::testing::AssertionFailure()
               << unit->name() << " " << parameter.name << ": relative difference "
               << std::sqrt(difference / norm) << ", largest " << largest;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// "p2 m3 1f1b SELECTIVE".
inline std::string Describe(const RunShape& s) {
  return "p" + std::to_string(s.stages) + " dp" + std::to_string(s.data_parallel) + " m" +
         std::to_string(s.micro_batches) + "x" + std::to_string(s.flushes) + " " +
         std::string(ScheduleKindName(s.schedule)) + " " +
         config::ParallelConfig::Recompute_Name(s.recompute) +
         (s.recompute_every > 1 ? "/" + std::to_string(s.recompute_every) : "");
}

// Every valid (m, schedule, recompute) for `stages` stages, over the list of schedule kinds:
// m ∈ {1, 3, 8}; interleaved (v = 2) where it exists; FULL recompute keeps every 2nd unit's input
// when m = 3; m = 1 accumulates two flushes per step. Kinds added after ZB-H1 (ZB-H2, ZB-V) run
// m ∈ {1, 4, 8} without recompute, and FULL at m = 4, to keep the sweep's time in bounds.
inline std::vector<RunShape> Combinations(int stages) {
  std::vector<RunShape> shapes;
  for (const int m : {1, 3, 4, 8}) {
    for (const ScheduleKindInfo& info : AllScheduleKinds()) {
      const ScheduleKind kind = info.kind;
      const bool newer = kind > ScheduleKind::kZeroBubbleH1;
      if (newer ? m == 3 : m == 4) continue;
      ScheduleOptions options;
      options.stages = stages;
      options.micro_batches = m;
      options.virtual_chunks = info.takes_virtual_chunks ? 2 : 1;
      if (!CheckScheduleOptions(kind, options).ok()) continue;
      for (const auto recompute : {config::ParallelConfig::NONE, config::ParallelConfig::SELECTIVE,
                                   config::ParallelConfig::FULL}) {
        if (newer && recompute != config::ParallelConfig::NONE &&
            !(m == 4 && recompute == config::ParallelConfig::FULL)) {
          continue;
        }
        RunShape s;
        s.stages = stages;
        s.micro_batches = m;
        s.schedule = kind;
        s.recompute = recompute;
        s.recompute_every = recompute == config::ParallelConfig::FULL && (m == 3 || m == 4) ? 2 : 1;
        s.flushes = m == 1 ? 2 : 1;
        shapes.push_back(s);
      }
    }
  }
  return shapes;
}

// The reference of a combination depends only on (R·m, flushes, recompute, steps, model).
inline std::string ReferenceKey(const RunShape& s) {
  return std::to_string(s.micro_batches * s.data_parallel) + "x" + std::to_string(s.flushes) +
         config::ParallelConfig::Recompute_Name(s.recompute) + " " + std::to_string(s.max_steps) +
         " steps " + std::to_string(s.encoder_layers) + "+" + std::to_string(s.decoder_layers) +
         "/" + std::to_string(s.d_model);
}

}  // namespace deepnet::testing
