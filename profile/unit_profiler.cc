// Unit profiler (see the header for what one repetition measures).
#include "profile/unit_profiler.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "kernels/backends.h"
#include "kernels/cpu/blas_core.h"
#include "runtime/allocator.h"
#include "runtime/half.h"
#include "train/optimizer.h"

namespace deepnet {
namespace {

constexpr int kBos = 1;
constexpr int kFirstPiece = 4;  // ids below are pad, <s>, </s>, <unk>

using Clock = std::chrono::steady_clock;

// The clock around device work: the backend is synchronised first, so what was enqueued before is
// not charged to the region (Start) and the region's own work has finished (Seconds).
class DeviceTimer {
 public:
  explicit DeviceTimer(const Backend& backend) : backend_(backend) {}
  void Start() {
    SynchronizeBackend(backend_);
    start_ = Clock::now();
  }
  double Seconds() const {
    SynchronizeBackend(backend_);
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }

 private:
  const Backend& backend_;
  Clock::time_point start_;
};

// `host` on `backend`'s device (itself on the CPU backend).
Tensor ToDevice(const Backend& backend, const Tensor& host) {
  if (host.device() == backend.device()) return host;
  Tensor device = backend.Empty(host.shape(), host.dtype(), host.category());
  backend.Copy(device, host);
  return device;
}

bool HasEncoder(const config::ModelConfig& model) {
  return model.architecture() != config::ModelConfig::DECODER_ONLY;
}
bool HasDecoder(const config::ModelConfig& model) {
  return model.architecture() != config::ModelConfig::ENCODER_ONLY;
}

Tensor RandomTokens(int64_t rows, int64_t cols, int vocab, std::mt19937& rng) {
  Tensor t = Tensor::Zeros({rows, cols}, DType::kI32, MemoryCategory::kOther);
  std::uniform_int_distribution<int> piece(kFirstPiece, vocab - 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = piece(rng);
  return t;
}

// Full-length sentences (no padding): the shape the batcher fills up to max_tokens. Made on the
// host, then copied to `backend`'s device.
MicroBatch SyntheticMicroBatch(const config::ModelConfig& model, const ProfileShape& shape,
                               uint64_t seed, const Backend& backend) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const int vocab = model.vocab_size();
  const int64_t B = shape.batch, S = shape.source_len, T = shape.target_len;
  MicroBatch mb;
  if (HasEncoder(model)) {
    mb.source = RandomTokens(B, S, vocab, rng);
    mb.source_mask = Tensor::Zeros({B, S}, DType::kU8, MemoryCategory::kOther);
  }
  if (HasDecoder(model)) {
    mb.target = RandomTokens(B, T, vocab, rng);
    mb.target_input = Tensor::Zeros({B, T}, DType::kI32, MemoryCategory::kOther);
    for (int64_t b = 0; b < B; ++b) {
      int32_t* row = mb.target_input.data<int32_t>() + b * T;
      const int32_t* target = mb.target.data<int32_t>() + b * T;
      row[0] = kBos;
      for (int64_t t = 1; t < T; ++t) row[t] = target[t - 1];
    }
    mb.target_mask = Tensor::Zeros({B, T}, DType::kU8, MemoryCategory::kOther);
    mb.num_target_tokens = B * T;
  } else {
    mb.target = RandomTokens(B, S, vocab, rng);  // encoder-only: a label per source position
    mb.num_target_tokens = B * S;
  }
  for (Tensor* t : {&mb.source, &mb.source_mask, &mb.target_input, &mb.target_mask, &mb.target}) {
    if (t->defined()) *t = ToDevice(backend, *t);
  }
  return mb;
}

// Small normal values of `like`'s shape and dtype (rounded from f32 on the host) on `backend`.
Tensor RandomLike(const Tensor& like, std::mt19937& rng, const Backend& backend) {
  Tensor t = Tensor::Zeros(like.shape(), DType::kF32, MemoryCategory::kActivations);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  if (like.dtype() != DType::kF32) {
    Tensor rounded = Tensor::Empty(like.shape(), like.dtype(), MemoryCategory::kActivations);
    ConvertElements(like.dtype(), rounded.raw_data(), DType::kF32, t.raw_data(), t.numel());
    t = rounded;
  }
  return ToDevice(backend, t);
}

// The gradient w.r.t. the unit's outputs. Decoder layers get no grad.enc (they create it).
Stream GradientTemplate(UnitKind kind, const Stream& embedded, std::mt19937& rng,
                        const Backend& backend) {
  Stream grad;
  const bool enc_side = kind == UnitKind::kEmbedding || kind == UnitKind::kEncoderLayer ||
                        kind == UnitKind::kEncoderFinalNorm;
  if (kind == UnitKind::kOutput) return grad;
  if (enc_side && embedded.enc.defined()) grad.enc = RandomLike(embedded.enc, rng, backend);
  if (embedded.dec.defined()) grad.dec = RandomLike(embedded.dec, rng, backend);
  return grad;
}

// A device-to-device copy of `t` on `backend`.
Tensor CloneOn(const Backend& backend, const Tensor& t) {
  Tensor copy = backend.Empty(t.shape(), t.dtype(), t.category());
  backend.Copy(copy, t);
  return copy;
}

Stream CloneStream(const Stream& stream, const Backend& backend) {
  Stream copy;
  if (stream.enc.defined()) copy.enc = CloneOn(backend, stream.enc);
  if (stream.dec.defined()) copy.dec = CloneOn(backend, stream.dec);
  return copy;
}

int64_t ReplacedInputBytes(UnitKind kind, const Stream& embedded) {
  switch (kind) {
    case UnitKind::kEmbedding:
      return 0;  // token ids live in the micro-batch
    case UnitKind::kEncoderLayer:
    case UnitKind::kEncoderFinalNorm:
      return static_cast<int64_t>(embedded.enc.nbytes());
    case UnitKind::kDecoderLayer:
    case UnitKind::kDecoderFinalNorm:
      return static_cast<int64_t>(embedded.dec.nbytes());
    case UnitKind::kOutput:
      return static_cast<int64_t>(embedded.dec.defined() ? embedded.dec.nbytes()
                                                         : embedded.enc.nbytes());
  }
  return 0;
}

// Rings at least this long time B and W by SweepSplitBackward; shorter ones (a unit kind that
// occurs once, such as the embedding) keep RunRepetition's back-to-back times.
constexpr int kMinSweptRing = 4;

struct Samples {
  std::vector<double> forward, recompute, backward, backward_input, backward_weight;
  int64_t saved_bytes = 0;
  int64_t forward_peak = 0;
  int64_t backward_peak = 0;
};

// Starts a peak measurement; returns the live bytes it starts from.
int64_t StartPeak(Allocator& allocator) {
  allocator.ResetPeak();
  return allocator.stats().total_current;
}

// One repetition (see the header) on ctx.backend. `samples` null: a warm-up. `split` false: no
// back-to-back B and W (SweepSplitBackward times them instead).
void RunRepetition(Unit& unit, const StepContext& ctx, const MicroBatch& mb, const Stream& input,
                   const Stream& grad_template, bool split, Samples* samples) {
  const Backend& backend = *ctx.backend;
  Allocator& allocator = GetAllocator(backend.device());
  DeviceTimer timer(backend);
  int64_t base = StartPeak(allocator);
  Stream io = input;
  timer.Start();
  std::unique_ptr<SavedActivations> saved = unit.Forward(ctx, mb, io);
  const double forward_s = timer.Seconds();
  const int64_t forward_peak = allocator.stats().total_peak - base;
  const int64_t saved_bytes = saved->bytes();
  saved.reset();
  io = Stream();

  Stream replay = input;
  timer.Start();
  saved = unit.Forward(ctx, mb, replay);
  const double recompute_s = timer.Seconds();
  replay = Stream();

  Stream grad = CloneStream(grad_template, backend);
  base = StartPeak(allocator);
  timer.Start();
  unit.Backward(ctx, mb, *saved, grad);
  const double backward_s = timer.Seconds();
  const int64_t backward_peak = allocator.stats().total_peak - base;
  saved.reset();

  if (split) {
    Stream again = input;
    saved = unit.Forward(ctx, mb, again);
    again = Stream();
    grad = CloneStream(grad_template, backend);  // B's record references it until W has run
    timer.Start();
    std::unique_ptr<DeferredWeightGrads> deferred = unit.BackwardInput(ctx, mb, *saved, grad);
    const double input_s = timer.Seconds();
    timer.Start();
    unit.BackwardWeight(ctx, *deferred);
    const double weight_s = timer.Seconds();
    if (samples != nullptr) {
      samples->backward_input.push_back(input_s);
      samples->backward_weight.push_back(weight_s);
    }
  }

  if (samples == nullptr) return;
  samples->forward.push_back(forward_s);
  samples->recompute.push_back(recompute_s);
  samples->backward.push_back(backward_s);
  samples->saved_bytes = saved_bytes;
  samples->forward_peak = std::max(samples->forward_peak, forward_peak);
  samples->backward_peak = std::max(samples->backward_peak, backward_peak);
}

// B and W as a pipeline chunk runs them: the B pass of every unit of the ring (each after its
// forward replay, as FULL recompute runs it), and only then the W pass of each. W then reads what
// B recorded from memory, not cache: right after its own B, as RunRepetition times it, W took
// 0.79 s per rank and step of the 1,000-layer config where training took 1.26 s
// (parallel/README.md, "Pass costs"). `samples` null: a warm-up (the heap grows to hold every
// record once, so the timed sweep does not pay first-touch page faults).
void SweepSplitBackward(const std::vector<Unit*>& ring, const StepContext& ctx,
                        const MicroBatch& mb, const Stream& input, const Stream& grad_template,
                        Samples* samples) {
  const Backend& backend = *ctx.backend;
  DeviceTimer timer(backend);
  std::vector<std::unique_ptr<DeferredWeightGrads>> deferred;
  std::vector<Stream> grads;  // B's records reference them until W has run
  for (Unit* unit : ring) {
    Stream replay = input;
    const std::unique_ptr<SavedActivations> saved = unit->Forward(ctx, mb, replay);
    grads.push_back(CloneStream(grad_template, backend));
    timer.Start();
    deferred.push_back(unit->BackwardInput(ctx, mb, *saved, grads.back()));
    const double input_s = timer.Seconds();
    if (samples != nullptr) samples->backward_input.push_back(input_s);
  }
  for (size_t i = 0; i < ring.size(); ++i) {
    timer.Start();
    ring[i]->BackwardWeight(ctx, *deferred[i]);
    const double weight_s = timer.Seconds();
    if (samples != nullptr) samples->backward_weight.push_back(weight_s);
    deferred[i].reset();
  }
}

// Units [index, index + count) of one kind (layers of a kind are contiguous in the model), on
// the profiled backend in its compute dtype.
StatusOr<std::unique_ptr<Model>> BuildUnits(const config::ModelConfig& model, int index, int count,
                                            const UnitProfileOptions& profile,
                                            const Backend& backend) {
  ModelBuildOptions options;
  options.seed = profile.seed;
  options.compute_dtype = profile.compute_dtype;
  options.backend = &backend;
  options.first_unit = index;
  options.end_unit = index + count;
  return Model::Build(model, options);
}

// How many distinct units of a kind the repetitions cycle through: enough that parameters,
// gradients and both Adam moments (16 bytes per parameter) overflow the caches, as they do when
// a stage runs through hundreds of layers, but no more than the model has.
int RingSize(int count, int64_t param_bytes) {
  constexpr int64_t kRingBytes = int64_t{96} << 20;
  constexpr int kMaxRing = 128;
  const int64_t per_unit = std::max<int64_t>(1, 4 * param_bytes);
  return static_cast<int>(
      std::clamp<int64_t>((kRingBytes + per_unit - 1) / per_unit, 1, std::min(count, kMaxRing)));
}

// Median seconds of one optimizer step over `units`, per unit.
StatusOr<TimingStats> TimeOptimizer(const std::vector<Unit*>& units,
                                    const UnitProfileOptions& options, const Backend& backend,
                                    int warmup, int repetitions) {
  ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> optimizer,
                   Optimizer::Create(units, options.optimizer, backend, options.scaler));
  LocalGradNormReducer reducer;
  DeviceTimer timer(backend);
  std::vector<double> samples;
  for (int i = 0; i < warmup + repetitions; ++i) {
    timer.Start();
    RETURN_IF_ERROR(optimizer->Step(/*lr=*/1e-9, reducer).status());
    const double seconds = timer.Seconds();
    if (i >= warmup) samples.push_back(seconds / static_cast<double>(units.size()));
  }
  return TimingStats::Of(std::move(samples));
}

StepContext TrainingContext(const UnitProfileOptions& options, const MicroBatch& mb,
                            const Backend& backend) {
  StepContext ctx;
  ctx.backend = &backend;
  ctx.seed = options.seed;
  ctx.training = true;
  ctx.recompute =
      options.recompute == Recompute::kSelective ? Recompute::kSelective : Recompute::kNone;
  ctx.loss_scale = 1.0 / static_cast<double>(std::max<int64_t>(1, mb.num_target_tokens));
  ctx.label_smoothing = 0.1;
  return ctx;
}

const char* RecomputeName(Recompute recompute) {
  switch (recompute) {
    case Recompute::kSelective:
      return "selective";
    case Recompute::kFull:
      return "full";
    default:
      return "none";
  }
}

}  // namespace

TimingStats TimingStats::Of(std::vector<double> samples) {
  TimingStats stats;
  if (samples.empty()) return stats;
  std::sort(samples.begin(), samples.end());
  auto rank = [&](double q) {
    const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    return samples[std::clamp<size_t>(i, 1, samples.size()) - 1];
  };
  stats.median_s = rank(0.5);
  stats.p10_s = rank(0.1);
  stats.p90_s = rank(0.9);
  return stats;
}

StatusOr<ModelProfile> ProfileUnitKinds(const config::ModelConfig& model, const ProfileShape& shape,
                                        const UnitProfileOptions& options) {
  RETURN_IF_ERROR(ValidateModelConfig(model));
  if (model.vocab_size() <= kFirstPiece) {
    return InvalidArgument("model.vocab_size must be resolved (> 4) before profiling");
  }
  if (shape.batch < 1 || shape.source_len < 1 || shape.target_len < 1 || options.repetitions < 1 ||
      options.warmup < 0) {
    return InvalidArgument("profile: batch, lengths and repetitions must be >= 1");
  }
  const Backend& backend = options.backend != nullptr ? *options.backend : CpuBackend();
  ModelProfile profile;
  profile.shape = shape;
  profile.recompute = options.recompute;
  profile.device = DescribeDevice(backend);
  profile.compute_dtype = options.compute_dtype.value_or(DType::kF32);
  profile.threads = omp_get_max_threads();
  profile.warmup = options.warmup;
  profile.repetitions = options.repetitions;

  const MicroBatch mb = SyntheticMicroBatch(model, shape, options.seed, backend);
  const StepContext ctx = TrainingContext(options, mb, backend);
  ASSIGN_OR_RETURN(std::unique_ptr<Model> embedding, BuildUnits(model, 0, 1, options, backend));
  Stream embedded;
  embedding->units().front()->Forward(ctx, mb, embedded);
  std::mt19937 rng(static_cast<uint32_t>(options.seed) + 1);

  const std::vector<UnitInfo> infos = DescribeUnits(model);
  std::map<UnitKind, int> counts;
  for (const UnitInfo& info : infos) ++counts[info.kind];
  for (const UnitInfo& info : infos) {
    if (counts[info.kind] == 0) continue;  // kind already measured
    UnitKindProfile kind;
    kind.kind = info.kind;
    kind.unit_name = info.name;
    kind.count = counts[info.kind];
    counts[info.kind] = 0;
    kind.ring = RingSize(kind.count, info.num_parameters * int64_t{sizeof(float)});
    ASSIGN_OR_RETURN(std::unique_ptr<Model> built,
                     BuildUnits(model, info.index, kind.ring, options, backend));
    std::vector<Unit*> ring;
    for (const auto& unit : built->units()) ring.push_back(unit.get());
    kind.param_bytes = static_cast<int64_t>(ring.front()->flat_values().nbytes());
    kind.input_bytes = ReplacedInputBytes(info.kind, embedded);
    const Stream input = info.kind == UnitKind::kEmbedding ? Stream() : embedded;
    const Stream grad_template = GradientTemplate(info.kind, embedded, rng, backend);
    Samples samples;
    // Every unit of the ring once first: its gradients are touched before anything is timed.
    const bool swept = kind.ring >= kMinSweptRing;  // B and W over the ring, as a chunk runs them
    for (int i = 0; i < std::max(options.warmup, kind.ring); ++i) {
      RunRepetition(*ring[i % kind.ring], ctx, mb, input, grad_template, !swept, nullptr);
    }
    for (int i = 0; i < options.repetitions; ++i) {
      RunRepetition(*ring[i % kind.ring], ctx, mb, input, grad_template, !swept, &samples);
    }
    if (swept) {
      SweepSplitBackward(ring, ctx, mb, input, grad_template, nullptr);
      SweepSplitBackward(ring, ctx, mb, input, grad_template, &samples);
    }
    ASSIGN_OR_RETURN(kind.optimizer,
                     TimeOptimizer(ring, options, backend, /*warmup=*/1, options.repetitions));
    kind.forward = TimingStats::Of(samples.forward);
    kind.recompute = TimingStats::Of(samples.recompute);
    kind.backward = TimingStats::Of(samples.backward);
    kind.backward_input = TimingStats::Of(samples.backward_input);
    kind.backward_weight = TimingStats::Of(samples.backward_weight);
    kind.saved_bytes = samples.saved_bytes;
    kind.forward_peak_bytes = samples.forward_peak;
    kind.backward_peak_bytes = samples.backward_peak;
    profile.kinds.push_back(std::move(kind));
  }
  return profile;
}

ProfiledCosts CostsFromProfile(const ModelProfile& profile, const config::ModelConfig& model,
                               int optimizer_bytes_per_parameter) {
  std::map<UnitKind, const UnitKindProfile*> by_kind;
  for (const UnitKindProfile& kind : profile.kinds) by_kind[kind.kind] = &kind;
  const bool full = profile.recompute == Recompute::kFull;
  ProfiledCosts costs;
  for (const UnitInfo& info : DescribeUnits(model)) {
    const UnitKindProfile& measured = *by_kind.at(info.kind);
    UnitCost cost;
    cost.name = info.name;
    cost.forward_s = measured.forward.median_s;
    cost.backward_s = measured.backward.median_s;
    cost.recompute_s = full ? measured.recompute.median_s : 0.0;
    cost.optimizer_s = measured.optimizer.median_s;
    cost.param_bytes = info.num_parameters * static_cast<int64_t>(sizeof(float));
    cost.grad_bytes = cost.param_bytes;
    cost.optimizer_bytes = info.num_parameters * optimizer_bytes_per_parameter;
    cost.input_bytes = measured.input_bytes;
    cost.activation_bytes = full ? measured.input_bytes : measured.saved_bytes;
    costs.units.push_back(std::move(cost));
    costs.backward_input_s.push_back(measured.backward_input.median_s);
    costs.backward_weight_s.push_back(measured.backward_weight.median_s);
  }
  return costs;
}

StatusOr<ProfiledCosts> ProfileCostsAtMeanRows(const config::ModelConfig& model,
                                               const ProfileShape& shape, double mean_rows,
                                               const UnitProfileOptions& options,
                                               ModelProfile* profile) {
  const int64_t fewer = static_cast<int64_t>(std::floor(mean_rows));
  const double fraction = mean_rows - static_cast<double>(fewer);
  if (fewer < 1 || fraction <= 0.0) {
    ASSIGN_OR_RETURN(*profile, ProfileUnitKinds(model, shape, options));
    return CostsFromProfile(*profile, model);
  }
  ProfileShape at = shape;
  at.batch = fewer;
  ASSIGN_OR_RETURN(ModelProfile low, ProfileUnitKinds(model, at, options));
  at.batch = fewer + 1;
  ASSIGN_OR_RETURN(ModelProfile high, ProfileUnitKinds(model, at, options));
  const ProfiledCosts below = CostsFromProfile(low, model);
  ProfiledCosts costs = CostsFromProfile(high, model);
  auto blend = [fraction](double low_s, double high_s) {
    return low_s + fraction * (high_s - low_s);
  };
  for (size_t u = 0; u < costs.units.size(); ++u) {
    UnitCost& unit = costs.units[u];
    unit.forward_s = blend(below.units[u].forward_s, unit.forward_s);
    unit.backward_s = blend(below.units[u].backward_s, unit.backward_s);
    unit.recompute_s = blend(below.units[u].recompute_s, unit.recompute_s);
    unit.optimizer_s = blend(below.units[u].optimizer_s, unit.optimizer_s);
    costs.backward_input_s[u] = blend(below.backward_input_s[u], costs.backward_input_s[u]);
    costs.backward_weight_s[u] = blend(below.backward_weight_s[u], costs.backward_weight_s[u]);
  }
  *profile = shape.batch == fewer ? std::move(low) : std::move(high);
  return costs;
}

std::string FormatPassTime(double seconds) {
  char text[32];
  if (seconds < 1e-3) {
    std::snprintf(text, sizeof(text), "%.0f us", seconds * 1e6);
  } else if (seconds < 1.0) {
    std::snprintf(text, sizeof(text), "%.2f ms", seconds * 1e3);
  } else {
    std::snprintf(text, sizeof(text), "%.2f s", seconds);
  }
  return text;
}

std::string FormatMiB(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

std::string FormatModelProfile(const ModelProfile& profile) {
  char line[512];
  std::string text = "device " + (profile.device.empty() ? std::string("?") : profile.device) +
                     ", compute dtype " + std::string(DTypeName(profile.compute_dtype)) + "\n";
  std::snprintf(line, sizeof(line),
                "micro-batch B=%lld S=%lld T=%lld, %d threads, %d warm-up + %d repetitions; "
                "median [p10, p90]; act kept = per micro-batch, recompute %s\n",
                static_cast<long long>(profile.shape.batch),
                static_cast<long long>(profile.shape.source_len),
                static_cast<long long>(profile.shape.target_len), profile.threads, profile.warmup,
                profile.repetitions, RecomputeName(profile.recompute));
  text += line;
  text +=
      "unit kind          count  ring  forward                       backward                      "
      "recompute   B (input)   W (weight)  optimizer   params      act record  act kept    "
      "peak fwd    peak bwd\n";
  auto timing = [](const TimingStats& t) {
    return FormatPassTime(t.median_s) + " [" + FormatPassTime(t.p10_s) + ", " +
           FormatPassTime(t.p90_s) + "]";
  };
  for (const UnitKindProfile& k : profile.kinds) {
    const int64_t kept = profile.recompute == Recompute::kFull ? k.input_bytes : k.saved_bytes;
    std::snprintf(
        line, sizeof(line),
        "%-18s %5d  %4d  %-29s %-29s %-11s %-11s %-11s %-11s %-11s %-11s %-11s %-11s %s\n",
        std::string(UnitKindName(k.kind)).c_str(), k.count, k.ring, timing(k.forward).c_str(),
        timing(k.backward).c_str(), FormatPassTime(k.recompute.median_s).c_str(),
        FormatPassTime(k.backward_input.median_s).c_str(),
        FormatPassTime(k.backward_weight.median_s).c_str(),
        FormatPassTime(k.optimizer.median_s).c_str(), FormatMiB(k.param_bytes).c_str(),
        FormatMiB(k.saved_bytes).c_str(), FormatMiB(kept).c_str(),
        FormatMiB(k.forward_peak_bytes).c_str(), FormatMiB(k.backward_peak_bytes).c_str());
    text += line;
  }
  return text;
}

JsonValue SecondsJson(double seconds) { return JsonValue::Double(seconds, 9); }

std::string ModelProfileToJson(const ModelProfile& profile) {
  auto timing = [](const TimingStats& t) {
    JsonValue json = JsonValue::Object();
    json.AddNew("median_s", SecondsJson(t.median_s));
    json.AddNew("p10_s", SecondsJson(t.p10_s));
    json.AddNew("p90_s", SecondsJson(t.p90_s));
    return json;
  };
  JsonValue shape = JsonValue::Object();
  shape.AddNew("batch", JsonValue::Int(profile.shape.batch));
  shape.AddNew("source_len", JsonValue::Int(profile.shape.source_len));
  shape.AddNew("target_len", JsonValue::Int(profile.shape.target_len));
  JsonValue json = JsonValue::Object();
  json.AddNew("shape", std::move(shape));
  json.AddNew("device", JsonValue::String(profile.device));
  json.AddNew("compute_dtype", JsonValue::String(std::string(DTypeName(profile.compute_dtype))));
  json.AddNew("recompute", JsonValue::String(std::string(RecomputeName(profile.recompute))));
  json.AddNew("threads", JsonValue::Int(profile.threads));
  json.AddNew("warmup", JsonValue::Int(profile.warmup));
  json.AddNew("repetitions", JsonValue::Int(profile.repetitions));
  // The host BLAS core: a profile taken on a mis-detected machine says so.
  json.AddNew("blas", cpu::BlasReportJson(cpu::CurrentBlasReport()));
  JsonValue& units = json.AddNew("units", JsonValue::Array());
  for (const UnitKindProfile& k : profile.kinds) {
    JsonValue unit = JsonValue::Object();
    unit.AddNew("kind", JsonValue::String(std::string(UnitKindName(k.kind))));
    unit.AddNew("measured_unit", JsonValue::String(k.unit_name));
    unit.AddNew("count", JsonValue::Int(k.count));
    unit.AddNew("ring", JsonValue::Int(k.ring));
    unit.AddNew("forward", timing(k.forward));
    unit.AddNew("backward", timing(k.backward));
    unit.AddNew("recompute", timing(k.recompute));
    unit.AddNew("backward_input", timing(k.backward_input));
    unit.AddNew("backward_weight", timing(k.backward_weight));
    unit.AddNew("optimizer", timing(k.optimizer));
    unit.AddNew("param_bytes", JsonValue::Int(k.param_bytes));
    unit.AddNew("saved_activation_bytes", JsonValue::Int(k.saved_bytes));
    unit.AddNew("input_bytes", JsonValue::Int(k.input_bytes));
    unit.AddNew("forward_peak_bytes", JsonValue::Int(k.forward_peak_bytes));
    unit.AddNew("backward_peak_bytes", JsonValue::Int(k.backward_peak_bytes));
    units.Append(std::move(unit));
  }
  return json.SerializeIndented() + "\n";
}

}  // namespace deepnet
