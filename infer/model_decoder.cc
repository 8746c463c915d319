// ModelDecoder: encoder once, then one decoder position per step with key/value caches.
// Letters: B sentences, S source length, R rows, t position, C d_model, H heads, V vocab.
#include "infer/model_decoder.h"

#include <cmath>
#include <cstring>
#include <string>

#include "model/settings.h"
#include "model/unit_base.h"

namespace deepnet {
namespace {

const Parameter* FindParameter(Model& model, const std::string& name) {
  for (Parameter* p : model.parameters()) {
    if (p->name == name && !p->tied_copy) return p;
  }
  return nullptr;
}

// A new (rows.size(), extra + dims[1], dims[2]...) tensor whose row i starts with src's row
// rows[i]; the `extra` trailing slots of dimension 1 are left for the caller.
Tensor GatherRows(const Tensor& src, std::span<const int64_t> rows, int64_t extra = 0) {
  Shape shape = src.shape();
  shape[0] = static_cast<int64_t>(rows.size());
  if (extra > 0) shape[1] += extra;
  Tensor out = Tensor::Empty(shape, src.dtype(), MemoryCategory::kActivations, src.device());
  const size_t src_row = src.nbytes() / static_cast<size_t>(src.dim(0));
  const size_t out_row = out.nbytes() / static_cast<size_t>(out.dim(0));
  const auto* from = static_cast<const char*>(src.raw_data());
  auto* to = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(to + i * out_row, from + static_cast<size_t>(rows[i]) * src_row, src_row);
  }
  return out;
}

// Writes `values` (R, 1, C) into position t of `cache` (R, t + 1, C).
void StoreLastPosition(const Tensor& cache, const Tensor& values) {
  const size_t step = values.nbytes() / static_cast<size_t>(values.dim(0));
  const size_t row = cache.nbytes() / static_cast<size_t>(cache.dim(0));
  const auto* from = static_cast<const char*>(values.raw_data());
  auto* to = static_cast<char*>(cache.raw_data());
  for (int64_t r = 0; r < values.dim(0); ++r) {
    std::memcpy(to + r * row + row - step, from + r * step, step);
  }
}

std::vector<int64_t> Iota(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

void LogSoftmaxRows(std::vector<double>& logits, int64_t rows, int64_t vocab) {
  for (int64_t r = 0; r < rows; ++r) {
    double* row = logits.data() + r * vocab;
    double max = row[0];
    for (int64_t v = 1; v < vocab; ++v) max = std::max(max, row[v]);
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    const double lse = max + std::log(sum);
    for (int64_t v = 0; v < vocab; ++v) row[v] -= lse;
  }
}

StatusOr<EncodedSource> EncodeSource(Model& model, const Tensor& source,
                                     const Tensor& source_mask) {
  if (model.config().architecture() != config::ModelConfig::ENCODER_DECODER) {
    return FailedPrecondition("translation needs an ENCODER_DECODER model");
  }
  if (source.rank() != 2 || source_mask.shape() != source.shape()) {
    return InvalidArgument("source must be (B, S) with a (B, S) mask, got " + source.ToString() +
                           " and " + source_mask.ToString());
  }
  const Backend& backend = model.backend();
  StepContext ctx;
  ctx.backend = &backend;
  ctx.training = false;
  // The embedding unit also embeds a decoder input; one position is enough and is discarded.
  MicroBatch mb;
  mb.source = source;
  mb.source_mask = source_mask;
  mb.target_input = Tensor::Zeros({source.dim(0), 1}, DType::kI32, MemoryCategory::kActivations);
  mb.target_mask = Tensor::Zeros({source.dim(0), 1}, DType::kU8, MemoryCategory::kActivations);
  const std::vector<UnitInfo> infos = DescribeUnits(model.config());
  Stream io;
  for (size_t i = 0; i < model.units().size(); ++i) {
    const UnitKind kind = infos[model.first_unit() + i].kind;
    if (kind == UnitKind::kDecoderLayer) break;
    model.units()[i]->Forward(ctx, mb, io);
  }
  return EncodedSource{io.enc, source_mask};
}

StatusOr<std::unique_ptr<ModelDecoder>> ModelDecoder::Create(Model& model,
                                                             const EncodedSource& encoded) {
  std::unique_ptr<ModelDecoder> decoder(new ModelDecoder());
  RETURN_IF_ERROR(decoder->Init(model, encoded));
  return decoder;
}

Status ModelDecoder::Init(Model& model, const EncodedSource& encoded) {
  if (!model.has_first_unit() || !model.has_last_unit()) {
    return FailedPrecondition("decoding needs the whole model in one process");
  }
  ModelBuildOptions options;
  options.dtype = model.dtype();
  options.backend = &model.backend();
  settings_ = ResolveSettings(model.config(), options);
  if (!settings_.has_encoder || !settings_.has_decoder) {
    return FailedPrecondition("translation needs an ENCODER_DECODER model");
  }
  backend_ = &model.backend();
  vocab_size_ = settings_.vocab_size;
  max_positions_ = settings_.max_positions;
  embed_table_ = FindParameter(model, "embed_tokens.weight");
  output_weight_ = &model.units().back()->parameters().front();
  final_norm_weight_ = FindParameter(model, "decoder.layer_norm.weight");
  final_norm_bias_ = FindParameter(model, "decoder.layer_norm.bias");
  if (embed_table_ == nullptr) return Internal("model has no embed_tokens.weight");

  sentence_mask_ = encoded.source_mask;
  const Tensor& memory = encoded.states;  // (B, S, C)
  for (auto& unit : model.units()) {
    if (!unit->name().starts_with("decoder.layers.")) continue;
    const std::vector<Parameter>& params = unit->parameters();
    const std::string& name = unit->name();
    auto param = [&](const std::string& suffix) -> const Parameter& {
      for (const Parameter& p : params) {
        if (p.name == name + suffix) return p;
      }
      LOG(FATAL) << "no parameter " << name << suffix;
    };
    auto residual = [&](const std::string& norm) {
      return ResidualSpec{settings_.pre_norm, settings_.decoder.alpha, settings_.layernorm_eps,
                          &param("." + norm + ".weight"), &param("." + norm + ".bias")};
    };
    Layer layer;
    layer.self_residual = residual("self_attn_layer_norm");
    layer.cross_residual = residual("encoder_attn_layer_norm");
    layer.ffn_residual = residual("final_layer_norm");
    layer.self_attn = FindAttentionParams(params, name + ".self_attn");
    layer.cross_attn = FindAttentionParams(params, name + ".encoder_attn");
    layer.ffn = FindFfnParams(params, name);
    // Cross-attention keys and values depend only on the encoder output: once per batch.
    layer.sentence_cross_k = NewLike(*backend_, memory);
    layer.sentence_cross_v = NewLike(*backend_, memory);
    backend_->LinearForward(layer.sentence_cross_k, memory, layer.cross_attn.k_weight->value,
                            &layer.cross_attn.k_bias->value);
    backend_->LinearForward(layer.sentence_cross_v, memory, layer.cross_attn.v_weight->value,
                            &layer.cross_attn.v_bias->value);
    layers_.push_back(std::move(layer));
  }
  row_sentence_ = Iota(memory.dim(0));
  ApplyRowSelection();
  return OkStatus();
}

void ModelDecoder::SelectRows(std::span<const int64_t> rows) {
  std::vector<int64_t> composed(rows.size());
  std::vector<int64_t> sentences(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i] >= 0 && rows[i] < num_rows()) << "row " << rows[i] << " out of range";
    composed[i] = pending_rows_ ? (*pending_rows_)[rows[i]] : rows[i];
    sentences[i] = row_sentence_[rows[i]];
  }
  pending_rows_ = std::move(composed);
  row_sentence_ = std::move(sentences);
}

void ModelDecoder::ApplyRowSelection() {
  // Beam search keeps each sentence's rows in place, so this copy happens only when rows are
  // first expanded to beams or a finished sentence leaves the batch.
  if (cached_sentence_ == row_sentence_) return;
  row_mask_ = GatherRows(sentence_mask_, row_sentence_);
  for (Layer& layer : layers_) {
    layer.cross_k = GatherRows(layer.sentence_cross_k, row_sentence_);
    layer.cross_v = GatherRows(layer.sentence_cross_v, row_sentence_);
  }
  cached_sentence_ = row_sentence_;
}

Tensor ModelDecoder::Embed(std::span<const int32_t> tokens) const {
  const int64_t R = static_cast<int64_t>(tokens.size());
  Tensor ids = Tensor::Empty({R, 1}, DType::kI32, MemoryCategory::kActivations);
  std::memcpy(ids.raw_data(), tokens.data(), tokens.size_bytes());
  Tensor x = NewActivation(*backend_, {R, 1, settings_.d_model}, settings_.dtype);
  backend_->EmbeddingForward(x, ids, embed_table_->value, std::sqrt(settings_.d_model));
  backend_->PositionsAdd(x, static_cast<int>(position_));
  return x;
}

Tensor ModelDecoder::SelfAttention(Layer& layer, const Tensor& x) {
  const AttentionParams& p = layer.self_attn;
  const int64_t R = x.dim(0), t = position_;
  Tensor q = NewLike(*backend_, x), k = NewLike(*backend_, x), v = NewLike(*backend_, x);
  backend_->LinearForward(q, x, p.q_weight->value, &p.q_bias->value);
  backend_->LinearForward(k, x, p.k_weight->value, &p.k_bias->value);
  backend_->LinearForward(v, x, p.v_weight->value, &p.v_bias->value);
  // Keys and values of positions 0..t: the kept rows' cache plus this step's.
  const std::vector<int64_t> rows = pending_rows_ ? *pending_rows_ : Iota(R);
  if (t == 0) {
    layer.self_k = k;
    layer.self_v = v;
  } else {
    layer.self_k = GatherRows(layer.self_k, rows, /*extra=*/1);
    layer.self_v = GatherRows(layer.self_v, rows, /*extra=*/1);
    StoreLastPosition(layer.self_k, k);
    StoreLastPosition(layer.self_v, v);
  }
  const int H = settings_.heads, D = settings_.d_model / H;
  const cpu::AttentionShape shape{static_cast<int>(R), 1, static_cast<int>(t + 1), H, D,
                                  /*causal=*/false};
  Tensor probs = NewActivation(*backend_, {R, H, 1, t + 1}, x.dtype());
  Tensor context = NewLike(*backend_, x);
  backend_->AttentionForward(context, probs, q, layer.self_k, layer.self_v, nullptr, shape, 0.0f,
                             RngStream{});
  Tensor out = NewLike(*backend_, x);
  backend_->LinearForward(out, context, p.out_weight->value, &p.out_bias->value);
  return out;
}

Tensor ModelDecoder::CrossAttention(const Layer& layer, const Tensor& x) const {
  const AttentionParams& p = layer.cross_attn;
  const int64_t R = x.dim(0), S = layer.cross_k.dim(1);
  Tensor q = NewLike(*backend_, x);
  backend_->LinearForward(q, x, p.q_weight->value, &p.q_bias->value);
  const int H = settings_.heads, D = settings_.d_model / H;
  const cpu::AttentionShape shape{static_cast<int>(R), 1, static_cast<int>(S), H, D,
                                  /*causal=*/false};
  Tensor probs = NewActivation(*backend_, {R, H, 1, S}, x.dtype());
  Tensor context = NewLike(*backend_, x);
  backend_->AttentionForward(context, probs, q, layer.cross_k, layer.cross_v, &row_mask_, shape,
                             0.0f, RngStream{});
  Tensor out = NewLike(*backend_, x);
  backend_->LinearForward(out, context, p.out_weight->value, &p.out_bias->value);
  return out;
}

Tensor ModelDecoder::RunLayer(Layer& layer, const Tensor& x) {
  // The three sublayers of DecoderLayerUnit::Forward, dropout off, for the newest position only.
  const DropoutSite none;
  ResidualSaved self, cross, ffn;
  Tensor in = ResidualBegin(*backend_, layer.self_residual, x, &self);
  Tensor y = ResidualEnd(*backend_, layer.self_residual, none, SelfAttention(layer, in), &self);

  in = ResidualBegin(*backend_, layer.cross_residual, y, &cross);
  y = ResidualEnd(*backend_, layer.cross_residual, none, CrossAttention(layer, in), &cross);

  FfnSaved ffn_saved;
  in = ResidualBegin(*backend_, layer.ffn_residual, y, &ffn);
  const Tensor out =
      FfnBlockForward(*backend_, layer.ffn, in, settings_.activation, none, &ffn_saved);
  return ResidualEnd(*backend_, layer.ffn_residual, none, out, &ffn);
}

std::vector<double> ModelDecoder::Advance(std::span<const int32_t> tokens) {
  CHECK_EQ(static_cast<int64_t>(tokens.size()), num_rows()) << "one token per row";
  CHECK_LT(position_, max_positions_) << "decoding past model.max_positions";
  ApplyRowSelection();
  Tensor x = Embed(tokens);
  for (Layer& layer : layers_) x = RunLayer(layer, x);
  pending_rows_.reset();
  if (final_norm_weight_ != nullptr) {
    const int64_t R = x.dim(0);
    Tensor y = NewLike(*backend_, x);
    Tensor mean = NewActivation(*backend_, {R, 1}, x.dtype());
    Tensor rstd = NewActivation(*backend_, {R, 1}, x.dtype());
    backend_->LayerNormForward(y, mean, rstd, x, final_norm_weight_->value, final_norm_bias_->value,
                               settings_.layernorm_eps);
    x = y;
  }
  const int64_t R = x.dim(0), V = vocab_size_;
  Tensor logits = NewActivation(*backend_, {R, V}, x.dtype());
  backend_->LinearForward(logits, x.Reshape({R, settings_.d_model}), output_weight_->value,
                          nullptr);
  const Tensor host = ToHost(*backend_, logits);
  std::vector<double> result(static_cast<size_t>(R * V));
  if (host.dtype() == DType::kF64) {
    std::memcpy(result.data(), host.data<double>(), result.size() * sizeof(double));
  } else {
    const float* values = host.data<float>();
    for (size_t i = 0; i < result.size(); ++i) result[i] = values[i];
  }
  LogSoftmaxRows(result, R, V);
  ++position_;
  return result;
}

}  // namespace deepnet
