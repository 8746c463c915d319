// The pieces a Transformer layer is made of: the residual + norm wrapper around a sublayer G
// (DeepNorm / Post-LN: y = LN(α·x + dropout(G(x))); Pre-LN: y = x + dropout(G(LN(x)))), the
// multi-head attention block and the feed-forward block.
//
// A sublayer runs ResidualBegin (G's input), G, ResidualEnd; backward runs the mirror image:
// ResidualEndBackward, G's backward, ResidualBeginBackward. Forward functions fill a record of what
// backward needs; backward functions send parameter-gradient work to a GradWork. No function
// writes into a tensor it was given.
// Letters: B batch, T positions (Tq queries, Tk keys), N = B·T rows, C d_model, F ffn_dim,
// H heads.
#pragma once

#include "kernels/backend.h"
#include "model/unit.h"
#include "model/unit_base.h"

namespace deepnet {

// Dropout at one site: rate (0 = identity) and its Philox stream.
struct DropoutSite {
  float rate = 0.0f;
  RngStream stream;
};

// --- residual + norm ---

struct ResidualSpec {
  bool pre_norm = false;
  double alpha = 1.0;  // post-norm residual weight (DeepNorm α, 1 for Post-LN)
  double eps = 1e-5;
  const Parameter* norm_weight = nullptr;  // (C)
  const Parameter* norm_bias = nullptr;    // (C)
};

struct ResidualSaved {
  Tensor x;             // (B, T, C) sublayer input
  Tensor normed;        // (B, T, C) Pre-LN: LN(x), G's input; empty for post-norm (G reads x)
  Tensor mean;          // (B, T) statistics of LN(x) (Pre-LN) or of z = α·x + g (post-norm)
  Tensor rstd;          // (B, T)
  Tensor g;             // (B, T, C) post-norm: dropout(G(x)); empty for Pre-LN
  DropoutSite dropout;  // on G's output
  int64_t bytes() const { return SumBytes({&x, &normed, &mean, &rstd, &g}); }
  // The tensor G read.
  const Tensor& input() const { return normed.rank() > 0 ? normed : x; }
};

// G's input for sublayer input x: x itself, or LN(x) for Pre-LN.
Tensor ResidualBegin(const Backend& backend, const ResidualSpec& spec, const Tensor& x,
                     ResidualSaved* saved);
// The sublayer output from G's output `out`: LN(α·x + dropout(out)) or x + dropout(out).
Tensor ResidualEnd(const Backend& backend, const ResidualSpec& spec, const DropoutSite& dropout,
                   const Tensor& out, ResidualSaved* saved);
// From dy (gradient at the sublayer output): *dout, the gradient at G's output, and *dx_skip, the
// part of dx that comes through the residual path.
void ResidualEndBackward(const Backend& backend, const ResidualSpec& spec, const Tensor& dy,
                         const ResidualSaved& saved, GradWork& work, Tensor* dout, Tensor* dx_skip);
// dx = dx_skip + dinput (post-norm) or dx_skip + LN'(dinput) (Pre-LN), dinput the gradient at
// G's input.
Tensor ResidualBeginBackward(const Backend& backend, const ResidualSpec& spec, const Tensor& dinput,
                             const Tensor& dx_skip, const ResidualSaved& saved, GradWork& work);

// --- multi-head attention: out = out_proj(attention(q_proj(xq), k_proj(xkv), v_proj(xkv))) ---

struct AttentionParams {
  const Parameter *q_weight, *q_bias, *k_weight, *k_bias, *v_weight, *v_bias, *out_weight,
      *out_bias;
};
// The parameters of the attention at `prefix` ("decoder.layers.0.encoder_attn").
AttentionParams FindAttentionParams(const std::vector<Parameter>& parameters,
                                    const std::string& prefix);

struct AttentionSaved {
  Tensor q;         // (B, Tq, C)
  Tensor k;         // (B, Tk, C)
  Tensor v;         // (B, Tk, C)
  Tensor probs;     // (B, H, Tq, Tk); empty under selective recompute (recomputed in backward)
  Tensor context;   // (B, Tq, C) attention output, out_proj's input
  Tensor key_mask;  // (B, Tk) u8 of the micro-batch (not counted in bytes), or empty
  cpu::AttentionShape shape;
  DropoutSite dropout;  // on the probabilities
  int64_t bytes() const { return SumBytes({&q, &k, &v, &probs, &context}); }
};

// xq (B, Tq, C) queries' input, xkv (B, Tk, C) keys' and values' input (the same tensor for
// self-attention), key_mask (B, Tk) u8 or empty. Returns out (B, Tq, C).
Tensor AttentionBlockForward(const Backend& backend, const AttentionParams& params,
                             const Tensor& xq, const Tensor& xkv, const Tensor& key_mask,
                             bool causal, int heads, const DropoutSite& dropout, bool keep_probs,
                             AttentionSaved* saved);

// Gradients at the block's inputs through each projection (each overwritten, fresh tensors).
struct AttentionInputGrads {
  Tensor dxq;  // (B, Tq, C) through q_proj
  Tensor dxk;  // (B, Tk, C) through k_proj
  Tensor dxv;  // (B, Tk, C) through v_proj
};
AttentionInputGrads AttentionBlockBackward(const Backend& backend, const AttentionParams& params,
                                           const Tensor& dout, const Tensor& xq, const Tensor& xkv,
                                           const AttentionSaved& saved, GradWork& work);

// --- feed-forward: out = fc2(dropout(act(fc1(x)))) ---

struct FfnParams {
  const Parameter *fc1_weight, *fc1_bias, *fc2_weight, *fc2_bias;
};
FfnParams FindFfnParams(const std::vector<Parameter>& parameters, const std::string& prefix);

struct FfnSaved {
  Tensor hidden;     // (B, T, F) fc1 output, the activation's input
  Tensor activated;  // (B, T, F) dropout(act(hidden)), fc2's input
  ActivationKind activation = ActivationKind::kRelu;
  DropoutSite dropout;  // after the activation
  int64_t bytes() const { return SumBytes({&hidden, &activated}); }
};

Tensor FfnBlockForward(const Backend& backend, const FfnParams& params, const Tensor& x,
                       ActivationKind activation, const DropoutSite& dropout, FfnSaved* saved);
// Returns dx (B, T, C).
Tensor FfnBlockBackward(const Backend& backend, const FfnParams& params, const Tensor& dout,
                        const Tensor& x, const FfnSaved& saved, GradWork& work);

}  // namespace deepnet
