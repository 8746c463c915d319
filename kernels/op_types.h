// Shapes and settings of ops, shared by every backend and by the Backend interface
// (kernels/backend.h). They live here, not under one backend, so the interface and the model
// depend on no backend's headers.
#pragma once

namespace deepnet {

// Multi-head attention over q (B, Tq, C), k and v (B, Tk, C), C = H·D.
struct AttentionShape {
  int B = 1, Tq = 1, Tk = 1, H = 1, D = 1;
  // Query i may see key j only when j ≤ i + (Tk − Tq) (decoder self-attention; with Tq < Tk the
  // queries are the last Tq positions, as in incremental decoding).
  bool causal = false;
};

// AdamW hyper-parameters of one update.
struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.98;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (Loshchilov & Hutter): param −= lr·wd·param
};

}  // namespace deepnet
