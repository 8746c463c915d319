// Parameter tables (docs/design.md#export-format names) and deterministic initialisation
// (docs/design.md#deepnorm).
#include "model/parameters.h"

#include <cmath>
#include <numbers>

#include "runtime/philox.h"

namespace deepnet {
namespace {

// 64-bit FNV-1a: a stable hash of the export name (std::hash may differ between libraries).
uint64_t NameHash(std::string_view name) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : name) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

// The Philox stream of a parameter's initial values. Training dropout streams use step < 2³²−1,
// so the step word 0xFFFFFFFF keeps the two apart.
RngStream InitStream(uint64_t seed, std::string_view name) {
  const uint64_t hash = NameHash(name);
  return RngStream{seed, 0xFFFFFFFFu, static_cast<uint32_t>(hash >> 32),
                   static_cast<uint32_t>(hash)};
}

// A uniform double in (0, 1) from 32 random bits (never 0, so the logarithm is finite).
double OpenUniform(uint32_t bits) { return (static_cast<double>(bits) + 0.5) * 0x1p-32; }

template <typename T>
void FillNormalTyped(T* out, int64_t n, double stddev, uint64_t seed, std::string_view name) {
  const RngStream stream = InitStream(seed, name);
  const int64_t groups = (n + 3) / 4;
  // Every group of four elements is one Philox call and two Box–Muller pairs: independent work,
  // so the values do not depend on the thread count.
#pragma omp parallel for schedule(static)
  for (int64_t group = 0; group < groups; ++group) {
    const Philox4x32 block = PhiloxBlock(stream, static_cast<uint32_t>(group));
    double normals[4];
    for (int pair = 0; pair < 2; ++pair) {
      const double radius = std::sqrt(-2.0 * std::log(OpenUniform(block.v[2 * pair])));
      const double angle = 2.0 * std::numbers::pi * OpenUniform(block.v[2 * pair + 1]);
      normals[2 * pair] = radius * std::cos(angle);
      normals[2 * pair + 1] = radius * std::sin(angle);
    }
    const int64_t first = 4 * group;
    for (int64_t j = 0; j < 4 && first + j < n; ++j) {
      out[first + j] = static_cast<T>(stddev * normals[j]);
    }
  }
}

void Initialise(const Tensor& value, const ParamSpec& spec, uint64_t seed) {
  Tensor t = value;
  switch (spec.init) {
    case InitKind::kZeros:
      t.Fill(0.0);
      return;
    case InitKind::kOnes:
      t.Fill(1.0);
      return;
    case InitKind::kNormal:
      if (t.dtype() == DType::kF64) {
        FillNormalTyped(t.data<double>(), t.numel(), spec.stddev, seed, spec.name);
      } else {
        FillNormalTyped(t.data<float>(), t.numel(), spec.stddev, seed, spec.name);
      }
      return;
  }
}

void AddLinear(std::vector<ParamSpec>& specs, const std::string& prefix, int64_t out, int64_t in,
               double gain) {
  const Shape shape = {out, in};
  specs.push_back({prefix + ".weight", shape, InitKind::kNormal, XavierStd(shape, gain)});
  specs.push_back({prefix + ".bias", {out}, InitKind::kZeros});
}

void AddLayerNorm(std::vector<ParamSpec>& specs, const std::string& prefix, int64_t channels) {
  specs.push_back({prefix + ".weight", {channels}, InitKind::kOnes});
  specs.push_back({prefix + ".bias", {channels}, InitKind::kZeros});
}

// q_proj and k_proj with gain 1, v_proj and out_proj with gain β (docs/design.md#deepnorm), then
// the sublayer's LayerNorm.
void AddAttention(std::vector<ParamSpec>& specs, const std::string& prefix,
                  const std::string& norm_prefix, int64_t channels, double beta) {
  AddLinear(specs, prefix + ".q_proj", channels, channels, 1.0);
  AddLinear(specs, prefix + ".k_proj", channels, channels, 1.0);
  AddLinear(specs, prefix + ".v_proj", channels, channels, beta);
  AddLinear(specs, prefix + ".out_proj", channels, channels, beta);
  AddLayerNorm(specs, norm_prefix, channels);
}

std::vector<ParamSpec> LayerSpecs(const ModelSettings& s, bool decoder, int layer) {
  const std::string prefix =
      std::string(decoder ? "decoder" : "encoder") + ".layers." + std::to_string(layer);
  const double beta = decoder ? s.decoder.beta : s.encoder.beta;
  std::vector<ParamSpec> specs;
  AddAttention(specs, prefix + ".self_attn", prefix + ".self_attn_layer_norm", s.d_model, beta);
  if (decoder && s.has_encoder) {
    AddAttention(specs, prefix + ".encoder_attn", prefix + ".encoder_attn_layer_norm", s.d_model,
                 beta);
  }
  AddLinear(specs, prefix + ".fc1", s.ffn_dim, s.d_model, beta);
  AddLinear(specs, prefix + ".fc2", s.d_model, s.ffn_dim, beta);
  AddLayerNorm(specs, prefix + ".final_layer_norm", s.d_model);
  return specs;
}

}  // namespace

double XavierStd(const Shape& shape, double gain) {
  return gain * std::sqrt(2.0 / static_cast<double>(shape[0] + shape[1]));
}

std::vector<ParamSpec> UnitParamSpecs(const ModelSettings& s, UnitKind kind, int layer) {
  const int64_t V = s.vocab_size, C = s.d_model;
  const double embed_std = 1.0 / std::sqrt(static_cast<double>(C));  // N(0, d^-1/2)
  std::vector<ParamSpec> specs;
  switch (kind) {
    case UnitKind::kEmbedding:
      specs.push_back({"embed_tokens.weight", {V, C}, InitKind::kNormal, embed_std});
      break;
    case UnitKind::kEncoderLayer:
      return LayerSpecs(s, /*decoder=*/false, layer);
    case UnitKind::kDecoderLayer:
      return LayerSpecs(s, /*decoder=*/true, layer);
    case UnitKind::kEncoderFinalNorm:
      AddLayerNorm(specs, "encoder.layer_norm", C);
      break;
    case UnitKind::kDecoderFinalNorm:
      AddLayerNorm(specs, "decoder.layer_norm", C);
      break;
    case UnitKind::kOutput:
      if (s.tied_embeddings) {
        specs.push_back({"embed_tokens.weight", {V, C}, InitKind::kNormal, embed_std, true});
      } else {
        // As fairseq's untied output projection: N(0, d^-1/2).
        specs.push_back({"output_projection.weight", {V, C}, InitKind::kNormal, embed_std});
      }
      break;
  }
  return specs;
}

int64_t CountElements(const std::vector<ParamSpec>& specs) {
  int64_t total = 0;
  for (const ParamSpec& spec : specs) total += NumElements(spec.shape);
  return total;
}

void FillNormal(double* out, int64_t n, double stddev, uint64_t seed, std::string_view name) {
  FillNormalTyped(out, n, stddev, seed, name);
}

void AllocateParameters(const std::vector<ParamSpec>& specs, const Backend& backend, DType dtype,
                        DType compute_dtype, uint64_t seed, std::vector<Parameter>* parameters,
                        ParameterBuffers* buffers) {
  const int64_t total = CountElements(specs);
  const bool mixed = compute_dtype != dtype;
  buffers->values = backend.Empty({total}, compute_dtype, MemoryCategory::kParameters);
  buffers->grads = backend.Zeros({total}, dtype, MemoryCategory::kGradients);
  buffers->master = mixed ? backend.Empty({total}, dtype, MemoryCategory::kParameters) : Tensor();
  const Tensor& weights = mixed ? buffers->master : buffers->values;
  // Values are drawn on the host, straight into the buffer when it is host memory.
  const bool on_host = backend.device().is_cpu();
  const Tensor host = on_host ? weights : Tensor::Empty({total}, dtype, MemoryCategory::kOther);
  parameters->clear();
  int64_t offset = 0;
  for (const ParamSpec& spec : specs) {
    const int64_t n = NumElements(spec.shape);
    Initialise(host.Slice(offset, offset + n), spec, seed);
    Parameter parameter{spec.name, buffers->values.Slice(offset, offset + n).Reshape(spec.shape),
                        buffers->grads.Slice(offset, offset + n).Reshape(spec.shape), Tensor(),
                        spec.tied_copy};
    if (mixed) parameter.master = buffers->master.Slice(offset, offset + n).Reshape(spec.shape);
    parameters->push_back(std::move(parameter));
    offset += n;
  }
  if (!on_host) backend.Copy(weights, host);
  if (mixed) backend.Convert(buffers->values, buffers->master);
}

}  // namespace deepnet
