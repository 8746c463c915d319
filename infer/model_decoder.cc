// ModelDecoder: encoder once, then one decoder position per step with key/value caches.
// Letters: B sentences, S source length, R rows, t position, C d_model, H heads, V vocab.
#include "infer/model_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "model/settings.h"
#include "model/unit_base.h"
#include "runtime/half.h"

namespace deepnet {
namespace {

const Parameter* FindParameter(Model& model, const std::string& name) {
  for (Parameter* p : model.parameters()) {
    if (p->name == name && !p->tied_copy) return p;
  }
  return nullptr;
}

// `t` on `backend`'s device: itself when it is there, else a copy (host-built ids and masks).
Tensor OnDevice(const Backend& backend, const Tensor& t) {
  if (t.device() == backend.device()) return t;
  Tensor device = backend.Empty(t.shape(), t.dtype(), MemoryCategory::kActivations);
  backend.Copy(device, t);
  return device;
}

// Every cache move below is a Backend::Copy between row slices (Slice of dimension 0, after a
// Reshape that makes the rows the unit being moved), so it runs device-to-device on any backend
// and never touches device memory from the host.

// A new (rows.size(), dims[1], ...) tensor whose row i is src's row rows[i]; runs of consecutive
// source rows move in one copy.
Tensor GatherRows(const Backend& backend, const Tensor& src, std::span<const int64_t> rows) {
  Shape shape = src.shape();
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = backend.Empty(shape, src.dtype(), MemoryCategory::kActivations);
  const int64_t n = static_cast<int64_t>(rows.size());
  for (int64_t i = 0; i < n;) {
    int64_t run = 1;
    while (i + run < n && rows[i + run] == rows[i] + run) ++run;
    backend.Copy(out.Slice(i, i + run), src.Slice(rows[i], rows[i] + run));
    i += run;
  }
  return out;
}

// The self-attention cache after one more position: `cache` (R', t, C) holds the keys (or values)
// of positions < t of every row before the step's row selection, `rows` the cache row each new
// row continues, `last` (R, 1, C) this step's. Returns (R, t + 1, C) with row i = cache row
// rows[i] followed by last's row i. As (row·position, C) matrices, both parts of each row are
// contiguous row ranges.
Tensor AppendPosition(const Backend& backend, const Tensor& cache, std::span<const int64_t> rows,
                      const Tensor& last) {
  const int64_t R = last.dim(0), t = cache.dim(1), C = cache.dim(2);
  Tensor out = backend.Empty({R, t + 1, C}, cache.dtype(), MemoryCategory::kActivations);
  const Tensor from = cache.Reshape({cache.dim(0) * t, C});
  const Tensor to = out.Reshape({R * (t + 1), C});
  const Tensor step = last.Reshape({R, C});
  for (int64_t i = 0; i < R; ++i) {
    const int64_t at = i * (t + 1);
    backend.Copy(to.Slice(at, at + t), from.Slice(rows[i] * t, rows[i] * t + t));
    backend.Copy(to.Slice(at + t, at + t + 1), step.Slice(i, i + 1));
  }
  return out;
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
  mb.source = OnDevice(backend, source);
  mb.source_mask = OnDevice(backend, source_mask);
  mb.target_input = backend.Zeros({source.dim(0), 1}, DType::kI32, MemoryCategory::kActivations);
  mb.target_mask = backend.Zeros({source.dim(0), 1}, DType::kU8, MemoryCategory::kActivations);
  const std::vector<UnitInfo> infos = DescribeUnits(model.config());
  Stream io;
  for (size_t i = 0; i < model.units().size(); ++i) {
    const UnitKind kind = infos[model.first_unit() + i].kind;
    if (kind == UnitKind::kDecoderLayer) break;
    model.units()[i]->Forward(ctx, mb, io);
  }
  return EncodedSource{io.enc, mb.source_mask};
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
  options.compute_dtype = model.compute_dtype();
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

  sentence_mask_ = OnDevice(*backend_, encoded.source_mask);
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
  row_mask_ = GatherRows(*backend_, sentence_mask_, row_sentence_);
  for (Layer& layer : layers_) {
    layer.cross_k = GatherRows(*backend_, layer.sentence_cross_k, row_sentence_);
    layer.cross_v = GatherRows(*backend_, layer.sentence_cross_v, row_sentence_);
  }
  cached_sentence_ = row_sentence_;
}

Tensor ModelDecoder::Embed(std::span<const int32_t> tokens) const {
  const int64_t R = static_cast<int64_t>(tokens.size());
  Tensor ids = Tensor::Empty({R, 1}, DType::kI32, MemoryCategory::kActivations);
  std::memcpy(ids.raw_data(), tokens.data(), tokens.size_bytes());
  Tensor x = NewActivation(*backend_, {R, 1, settings_.d_model}, settings_.compute_dtype);
  backend_->EmbeddingForward(x, OnDevice(*backend_, ids), embed_table_->value,
                             std::sqrt(settings_.d_model));
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
    layer.self_k = AppendPosition(*backend_, layer.self_k, rows, k);
    layer.self_v = AppendPosition(*backend_, layer.self_v, rows, v);
  }
  const int H = settings_.heads, D = settings_.d_model / H;
  const AttentionShape shape{static_cast<int>(R), 1, static_cast<int>(t + 1), H, D,
                             /*causal=*/false};
  Tensor probs = backend_->NewAttentionProbs(shape, x.dtype());
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
  const AttentionShape shape{static_cast<int>(R), 1, static_cast<int>(S), H, D,
                             /*causal=*/false};
  Tensor probs = backend_->NewAttentionProbs(shape, x.dtype());
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
    Tensor mean = NewActivation(*backend_, {R, 1}, StatsDType(x.dtype()));
    Tensor rstd = NewActivation(*backend_, {R, 1}, StatsDType(x.dtype()));
    backend_->LayerNormForward(y, mean, rstd, x, final_norm_weight_->value, final_norm_bias_->value,
                               settings_.layernorm_eps);
    x = y;
  }
  const int64_t R = x.dim(0), V = vocab_size_;
  Tensor logits = NewActivation(*backend_, {R, V}, x.dtype());
  backend_->LinearForward(logits, x.Reshape({R, settings_.d_model}), output_weight_->value,
                          nullptr);
  // The only device-to-host transfer of a step: the logits.
  const Tensor host = ToHost(*backend_, logits);
  std::vector<double> result(static_cast<size_t>(R * V));
  ConvertElements(DType::kF64, result.data(), host.dtype(), host.raw_data(), R * V);
  LogSoftmaxRows(result, R, V);
  ++position_;
  return result;
}

}  // namespace deepnet
