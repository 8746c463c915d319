// The pieces a Transformer layer is made of: the residual + norm wrapper around a sublayer G
// (DeepNorm / Post-LN: y = LN(α·x + dropout(G(x))); Pre-LN: y = x + dropout(G(LN(x)))), the
// multi-head attention block and the feed-forward block.
//
// A sublayer runs ResidualBegin (G's input), G, ResidualEnd; backward runs the mirror image:
// ResidualEndBackward, G's backward, ResidualBeginBackward. Forward functions fill a record of what
// backward needs; backward functions send parameter-gradient work to a GradWork. G's backward adds
// the gradient at its input into a sum it is given (a GEMM with β = 1, where q, k, v and the
// residual path meet); no function writes into any other tensor it was given.
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
// The gradients inside one sublayer's backward.
struct ResidualGrads {
  Tensor dout;     // at G's output
  Tensor dx_skip;  // the part of dx that comes through the residual path
  // Where G's backward adds the gradient at its input: post-norm, dx_skip itself (so that it
  // becomes dx); Pre-LN, a zeroed tensor that ResidualBeginBackward takes through LN'.
  Tensor dinput;
};
// From dy, the gradient at the sublayer output.
ResidualGrads ResidualEndBackward(const Backend& backend, const ResidualSpec& spec,
                                  const Tensor& dy, const ResidualSaved& saved, GradWork& work);
// dx once G's backward has added into grads.dinput: post-norm, grads.dinput (= dx_skip + the
// gradient at G's input); Pre-LN, dx_skip + LN'(grads.dinput).
Tensor ResidualBeginBackward(const Backend& backend, const ResidualSpec& spec,
                             const ResidualGrads& grads, const ResidualSaved& saved,
                             GradWork& work);

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
  AttentionShape shape;
  DropoutSite dropout;  // on the probabilities
  int64_t bytes() const { return SumBytes({&q, &k, &v, &probs, &context}); }
};

// xq (B, Tq, C) queries' input, xkv (B, Tk, C) keys' and values' input (the same tensor for
// self-attention), key_mask (B, Tk) u8 or empty. Returns out (B, Tq, C).
Tensor AttentionBlockForward(const Backend& backend, const AttentionParams& params,
                             const Tensor& xq, const Tensor& xkv, const Tensor& key_mask,
                             bool causal, int heads, const DropoutSite& dropout, bool keep_probs,
                             AttentionSaved* saved);

// Adds the gradient at xq (through q_proj) into dxq_sum and the gradient at xkv (through k_proj
// and v_proj) into dxkv_sum; for self-attention both are the same tensor.
void AttentionBlockBackward(const Backend& backend, const AttentionParams& params,
                            const Tensor& dout, const Tensor& xq, const Tensor& xkv,
                            const AttentionSaved& saved, const Tensor& dxq_sum,
                            const Tensor& dxkv_sum, GradWork& work);

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
// Adds the gradient at x (B, T, C) into dx_sum.
void FfnBlockBackward(const Backend& backend, const FfnParams& params, const Tensor& dout,
                      const Tensor& x, const FfnSaved& saved, const Tensor& dx_sum, GradWork& work);

}  // namespace deepnet
