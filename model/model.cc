// Model: building a range of units, and the single-process forward/backward helpers.
#include "model/model.h"

#include "model/settings.h"
#include "model/units.h"

namespace deepnet {
namespace {

std::unique_ptr<Unit> MakeUnit(const UnitInfo& info, int layer, const ModelSettings& settings) {
  switch (info.kind) {
    case UnitKind::kEmbedding:
      return std::make_unique<EmbeddingUnit>(info.index, settings);
    case UnitKind::kEncoderLayer:
      return std::make_unique<EncoderLayerUnit>(info.index, layer, settings);
    case UnitKind::kEncoderFinalNorm:
      return std::make_unique<FinalNormUnit>(info.index, /*encoder=*/true, settings);
    case UnitKind::kDecoderLayer:
      return std::make_unique<DecoderLayerUnit>(info.index, layer, settings);
    case UnitKind::kDecoderFinalNorm:
      return std::make_unique<FinalNormUnit>(info.index, /*encoder=*/false, settings);
    case UnitKind::kOutput:
      return std::make_unique<OutputUnit>(info.index, settings);
  }
  return nullptr;
}

// The layer number of each unit within its stack (0 for the other units).
std::vector<int> LayerNumbers(const std::vector<UnitInfo>& units) {
  std::vector<int> layers;
  int encoder = 0, decoder = 0;
  for (const UnitInfo& info : units) {
    if (info.kind == UnitKind::kEncoderLayer) {
      layers.push_back(encoder++);
    } else if (info.kind == UnitKind::kDecoderLayer) {
      layers.push_back(decoder++);
    } else {
      layers.push_back(0);
    }
  }
  return layers;
}

}  // namespace

StatusOr<std::unique_ptr<Model>> Model::Build(const config::ModelConfig& config,
                                              const ModelBuildOptions& options) {
  RETURN_IF_ERROR(ValidateModelConfig(config));
  if (options.dtype != DType::kF32 && options.dtype != DType::kF64) {
    return InvalidArgument("model dtype must be f32 or f64, got " +
                           std::string(DTypeName(options.dtype)));
  }
  if (options.compute_dtype.has_value() && *options.compute_dtype != options.dtype &&
      !(options.dtype == DType::kF32 &&
        (*options.compute_dtype == DType::kBF16 || *options.compute_dtype == DType::kF16))) {
    return InvalidArgument("compute dtype " + std::string(DTypeName(*options.compute_dtype)) +
                           " over " + std::string(DTypeName(options.dtype)) +
                           " weights: mixed precision is bf16 or f16 over f32");
  }
  const std::vector<UnitInfo> infos = DescribeUnits(config);
  const int total = static_cast<int>(infos.size());
  const int first = options.first_unit;
  const int end = options.end_unit < 0 ? total : options.end_unit;
  if (first < 0 || first >= end || end > total) {
    return OutOfRange("unit range [" + std::to_string(first) + ", " + std::to_string(end) +
                      ") is not a non-empty part of the model's " + std::to_string(total) +
                      " units");
  }
  const ModelSettings settings = ResolveSettings(config, options);
  const std::vector<int> layers = LayerNumbers(infos);

  std::unique_ptr<Model> model(new Model());
  model->config_ = config;
  model->backend_ = settings.backend;
  model->dtype_ = settings.dtype;
  model->compute_dtype_ = settings.compute_dtype;
  model->first_unit_ = first;
  model->num_units_total_ = total;
  for (int i = first; i < end; ++i)
    model->units_.push_back(MakeUnit(infos[i], layers[i], settings));
  return model;
}

std::vector<Parameter*> Model::parameters() {
  std::vector<Parameter*> result;
  for (auto& unit : units_) {
    for (Parameter& p : unit->parameters()) result.push_back(&p);
  }
  return result;
}

int64_t Model::num_parameters() const {
  int64_t total = 0;
  for (const auto& unit : units_) {
    for (const Parameter& p : unit->parameters()) {
      if (!p.tied_copy) total += p.value.numel();
    }
  }
  return total;
}

void Model::ZeroGrads() {
  for (auto& unit : units_) backend_->Zero(unit->flat_grads());
}

void Model::SumTiedGradients() {
  if (!config_.tied_embeddings() || !has_first_unit() || !has_last_unit()) return;
  Parameter& primary = units_.front()->parameters().front();
  Parameter& copy = units_.back()->parameters().front();
  CHECK(copy.tied_copy && primary.name == copy.name);
  backend_->Add(primary.grad, primary.grad, copy.grad);  // grad_embedding + grad_output
  backend_->Copy(copy.grad, primary.grad);
}

Stream Model::ForwardBackward(const StepContext& ctx, const MicroBatch& mb) {
  CHECK(has_first_unit() && has_last_unit()) << "ForwardBackward needs the whole model";
  const bool full_recompute = ctx.recompute == Recompute::kFull;
  std::vector<std::unique_ptr<SavedActivations>> saved(units_.size());
  std::vector<Stream> inputs(units_.size());
  Stream io;
  for (size_t i = 0; i < units_.size(); ++i) {
    inputs[i] = io;
    saved[i] = units_[i]->Forward(ctx, mb, io);
    if (full_recompute) saved[i].reset();
  }
  const Stream result = io;
  Stream grad;
  for (size_t i = units_.size(); i-- > 0;) {
    if (full_recompute) {
      Stream replay = inputs[i];
      saved[i] = units_[i]->Forward(ctx, mb, replay);
    }
    inputs[i] = Stream();
    units_[i]->Backward(ctx, mb, *saved[i], grad);
    saved[i].reset();
  }
  return result;
}

Stream Model::Forward(const StepContext& ctx, const MicroBatch& mb) {
  CHECK(has_first_unit() && has_last_unit()) << "Forward needs the whole model";
  Stream io;
  for (auto& unit : units_) unit->Forward(ctx, mb, io);
  return io;
}

Tensor Model::Logits(const StepContext& ctx, const MicroBatch& mb) {
  CHECK(has_first_unit() && has_last_unit()) << "Logits needs the whole model";
  Stream io;
  for (size_t i = 0; i + 1 < units_.size(); ++i) units_[i]->Forward(ctx, mb, io);
  const auto& output = dynamic_cast<const OutputUnit&>(*units_.back());
  return output.Logits(ctx, output.States(io));
}

}  // namespace deepnet
