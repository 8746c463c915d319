// Unit profiler: measures one unit of each kind of a model (embedding, encoder layer, encoder final
// norm, decoder layer, decoder final norm, output) on one micro-batch shape, and turns the
// measurements into the partitioner's UnitCost for every unit of the whole model (all layers of a
// kind share their kind's measurement).
//
// Letters: B sentences per micro-batch, S source length, T target length, C d_model.
//
// Per repetition, for one unit: forward (timed, allocator peak recorded), forward again on the
// same input (timed: the recompute of full activation checkpointing), backward from the second
// record (timed), then a split backward, BackwardInput (B) and BackwardWeight (W), each timed.
// Warm-up repetitions are run first and not recorded. Times are wall-clock seconds on the
// calling thread's OpenMP team (CPU), or of the device's work (the backend is synchronised before
// the clock is read at both ends of a timed region: GPU kernels are asynchronous). Repetitions
// cycle through a ring of distinct units of the kind, large enough that weights and gradients come
// from memory, not cache, as in a real stage; the warm-up touches every unit of the ring. For
// rings of 4 units or more, B and W are then timed as a pipeline chunk runs them instead: every
// unit's B (after its forward replay) and only then every unit's W, so W reads B's records from
// memory (once untimed, once timed; the median over the ring). Last, one optimizer step over the
// ring is timed and divided by its size.
//
// Units, inputs and the optimizer live on `UnitProfileOptions::backend` (any device: cpu, cuda,
// strict) in its compute dtype: inputs are made on the host and copied over, nothing on the device
// is read by the host, and memory peaks come from that device's allocator.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "parallel/cost_model.h"
#include "runtime/json.h"
#include "runtime/status.h"
#include "train/loss_scaler.h"
#include "train/optimizer.h"

namespace deepnet {

struct ProfileShape {
  int64_t batch = 8;        // B
  int64_t source_len = 32;  // S
  int64_t target_len = 32;  // T
};

struct UnitProfileOptions {
  int warmup = 3;
  int repetitions = 10;
  Recompute recompute = Recompute::kNone;  // what the units save (kFull: the engine's job)
  uint64_t seed = 1;
  OptimizerOptions optimizer;                  // the step that is timed per unit kind
  LossScalerOptions scaler{.enabled = false};  // of the timed optimizer step (fp16: dynamic)
  const Backend* backend = nullptr;            // where units run; default CpuBackend()
  // Activations and compute weights (bf16, f16 over fp32 masters); unset: fp32.
  std::optional<DType> compute_dtype;
};

// Order statistics of the repetitions (nearest rank).
struct TimingStats {
  double median_s = 0.0;
  double p10_s = 0.0;
  double p90_s = 0.0;
  static TimingStats Of(std::vector<double> samples);
};

struct UnitKindProfile {
  UnitKind kind = UnitKind::kEncoderLayer;
  std::string unit_name;  // the measured unit, e.g. "encoder.layers.0"
  int count = 0;          // units of this kind in the model
  int ring = 1;           // distinct units the repetitions cycle through (cold caches)
  TimingStats forward, recompute, backward, backward_input, backward_weight;
  TimingStats optimizer;    // one optimizer step, per unit
  int64_t param_bytes = 0;  // the unit's flat values (the output unit's tied copy included)
  int64_t saved_bytes = 0;  // SavedActivations::bytes() of the forward record
  int64_t input_bytes = 0;  // the stream tensor the unit replaces (what full recompute keeps)
  // Allocator high-water mark above the live bytes at the start of the pass (all categories).
  int64_t forward_peak_bytes = 0;
  int64_t backward_peak_bytes = 0;
};

struct ModelProfile {
  ProfileShape shape;
  Recompute recompute = Recompute::kNone;
  std::string device;  // DescribeDevice of the backend measured on, e.g. "cpu (8 threads)"
  DType compute_dtype = DType::kF32;
  int threads = 1;  // OpenMP threads the measurement ran with
  int warmup = 0;
  int repetitions = 0;
  std::vector<UnitKindProfile> kinds;  // in model order, one per kind the model has
};

// Measures `model` (validated; vocab_size resolved, > 0) at `shape`.
StatusOr<ModelProfile> ProfileUnitKinds(const config::ModelConfig& model, const ProfileShape& shape,
                                        const UnitProfileOptions& options);

// Per-unit costs of the whole model for the partitioner, in DescribeUnits order.
struct ProfiledCosts {
  std::vector<UnitCost> units;
  // Split backward (zero-bubble B and W passes), per unit, same order.
  std::vector<double> backward_input_s;
  std::vector<double> backward_weight_s;
};

// forward / backward medians; recompute_s = the measured second forward under kFull, else 0
// (selective recompute happens inside the measured backward); activation bytes = the saved
// record, or the input under kFull; gradients = parameters; optimizer state
// `optimizer_bytes_per_parameter` per 4-byte parameter.
ProfiledCosts CostsFromProfile(const ModelProfile& profile, const config::ModelConfig& model,
                               int optimizer_bytes_per_parameter = 8);

// The costs at a fractional mean of `mean_rows` rows per micro-batch (MicroBatchShape): a unit's
// time grows with its rows, and rounding a mean of 3.48 rows to 3 would leave 14 % of the work
// out. When the mean lies strictly between two whole counts, both are profiled and every time is
// interpolated linearly between them (bytes are the larger count's, an upper bound); otherwise
// this is ProfileUnitKinds at `shape` then CostsFromProfile. `profile` receives the measurement
// at shape.batch rows (the rounded mean), for the table and profile.json.
StatusOr<ProfiledCosts> ProfileCostsAtMeanRows(const config::ModelConfig& model,
                                               const ProfileShape& shape, double mean_rows,
                                               const UnitProfileOptions& options,
                                               ModelProfile* profile);

// The measurement table: one row per unit kind.
std::string FormatModelProfile(const ModelProfile& profile);
// profile.json: shape, settings and every measurement (seconds, bytes), indented.
std::string ModelProfileToJson(const ModelProfile& profile);

// A time in seconds as profile.json and predictions.json write it: 9 significant digits, far
// finer than the timing noise; null when not finite.
JsonValue SecondsJson(double seconds);

std::string FormatPassTime(double seconds);  // "12.3 ms", "850 us", "1.25 s"
std::string FormatMiB(int64_t bytes);        // "3.25 MiB"

}  // namespace deepnet
