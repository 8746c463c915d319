// Flash attention forward and backward (attention.h). B batch, Tq queries, Tk keys, H heads,
// D head dim, C = H·D.
//
// A block of 4 warps owns 64 rows of its outer dimension (queries in the forward and dQ kernels,
// keys in the dK/dV kernel) of one (b, h); each warp owns 16 of them and the block loops over
// tiles of kInner rows of the other dimension (64 for 16-bit types, 32 for f32 to fit shared
// memory). Every operand tile is staged in shared memory with the head dimension zero-padded to
// kD ∈ {64, 128}, and every product is a WarpGemm (warp_tile.cuh). Scores are kept in base 2
// (s·log2(e)/√D) so exponentials are exp2f.
#include <cmath>
#include <initializer_list>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/warp_tile.cuh"
#include "kernels/cuda/workspace.h"

namespace deepnet::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kOuterRows = 16 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <typename T>
constexpr int kInner = sizeof(T) == 4 ? 32 : 64;
// Each shared-memory row is padded by 16 bytes: the 8 rows a fragment load touches fall in
// different banks.
template <typename T>
constexpr int kPad = 16 / static_cast<int>(sizeof(T));
template <typename T, int kD>
constexpr int kStride = kD + kPad<T>;
template <typename T>
constexpr int kInnerStride = kInner<T> + kPad<T>;

// The shape and constants every kernel reads.
struct Problem {
  int B, Tq, Tk, H, D;
  bool causal;
  float score_scale_log2;  // log2(e)/√D
  float grad_scale;        // 1/√D
  float dropout_p;         // 0: no dropout
  float dropout_scale;     // 1/(1 − p) as the fp32 number the CPU uses (1 without dropout)
  RngStream rng;
  bool vectorized;  // q, k, v, dout rows allow 16-byte loads
};

__device__ __forceinline__ int64_t Channels(const Problem& p) { return int64_t{p.H} * p.D; }

// Row 0 of head h of batch b in a (B, rows, C) tensor (T may be const).
template <typename T>
__device__ __forceinline__ T* HeadRows(T* base, const Problem& p, int b, int h, int rows) {
  return base + int64_t{b} * rows * Channels(p) + int64_t{h} * p.D;
}

__device__ __forceinline__ bool CausalVisible(const Problem& p, int query, int key) {
  return !p.causal || key <= query + (p.Tk - p.Tq);
}

// The keys [0, end) some query of [q0, q0 + kOuterRows) may see.
__device__ __forceinline__ int KeyEnd(const Problem& p, int q0) {
  if (!p.causal) return p.Tk;
  const int last_query = min(q0 + kOuterRows, p.Tq) - 1;
  return max(0, min(p.Tk, last_query + (p.Tk - p.Tq) + 1));
}

// Word w of a Philox block without a run-time index into the array (which would go to local
// memory).
__device__ __forceinline__ uint32_t Word(const Philox4x32& bits, int w) {
  return w == 0 ? bits.v[0] : w == 1 ? bits.v[1] : w == 2 ? bits.v[2] : bits.v[3];
}

// cpu::dropout_keep: element `index` of the (B, H, Tq, Tk) probabilities survives.
__device__ __forceinline__ bool Keep(const Problem& p, uint64_t index) {
  const Philox4x32 bits = PhiloxBlock(p.rng, static_cast<uint32_t>(index >> 2));
  return UniformFromBits(Word(bits, static_cast<int>(index & 3))) >= p.dropout_p;
}

// Keep() of index and index + 1 (neighbouring keys of one query), one Philox call when both fall
// in the same group of four.
__device__ __forceinline__ void KeepPair(const Problem& p, uint64_t index, bool& first,
                                         bool& second) {
  const Philox4x32 bits = PhiloxBlock(p.rng, static_cast<uint32_t>(index >> 2));
  const int w = static_cast<int>(index & 3);
  first = UniformFromBits(Word(bits, w)) >= p.dropout_p;
  second = w < 3 ? UniformFromBits(Word(bits, w + 1)) >= p.dropout_p : Keep(p, index + 1);
}

__device__ __forceinline__ uint64_t DropoutIndex(const Problem& p, int bh, int query, int key) {
  return (static_cast<uint64_t>(bh) * p.Tq + query) * p.Tk + key;
}

// smem (kRows × kStride) ← rows [row0, row0 + kRows) of a head slice (row stride C), zeros
// outside the sequence's `rows` rows and the head's D columns.
template <typename T, int kD, int kRows>
__device__ void LoadTile(T* smem, const T* head, const Problem& p, int row0, int rows) {
  constexpr int kS = kStride<T, kD>;
  const int64_t C = Channels(p);
  if (p.vectorized) {
    constexpr int kV = kVec16<T>;
    constexpr int kChunksPerRow = kD / kV;
    for (int idx = threadIdx.x; idx < kRows * kChunksPerRow; idx += blockDim.x) {
      const int r = idx / kChunksPerRow, c = (idx % kChunksPerRow) * kV;
      Vec<T, kV> value;
      if (row0 + r < rows && c < p.D) {
        value = *reinterpret_cast<const Vec<T, kV>*>(head + (row0 + r) * C + c);
      } else {
#pragma unroll
        for (int i = 0; i < kV; ++i) value.v[i] = FromFloat<T>(0.0f);
      }
      *reinterpret_cast<Vec<T, kV>*>(smem + r * kS + c) = value;
    }
  } else {
    for (int idx = threadIdx.x; idx < kRows * kD; idx += blockDim.x) {
      const int r = idx / kD, c = idx % kD;
      smem[r * kS + c] = row0 + r < rows && c < p.D ? head[(row0 + r) * C + c] : FromFloat<T>(0.0f);
    }
  }
}

// key_ok[j] for the keys [k0, k0 + count): inside the sequence and not padding.
__device__ void LoadKeyMask(bool* key_ok, const Problem& p, const uint8_t* mask, int b, int k0,
                            int count) {
  for (int j = threadIdx.x; j < count; j += blockDim.x) {
    const int key = k0 + j;
    key_ok[j] = key < p.Tk && (mask == nullptr || mask[int64_t{b} * p.Tk + key] == 0);
  }
}

// Sum over the four lanes that share an accumulator row.
__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(kFullMask, v, 1);
  return v + __shfl_xor_sync(kFullMask, v, 2);
}
__device__ __forceinline__ float QuadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFullMask, v, 1));
  return fmaxf(v, __shfl_xor_sync(kFullMask, v, 2));
}

// Writes the warp's 16 rows of an accumulator (16 × kD) times `scale[half]` to rows row0.. of a
// head slice, inside `rows` rows and D columns.
template <typename T, int kOTiles>
__device__ void StoreRows(T* head, const Problem& p, int row0, int rows,
                          const AccTile (&acc)[kOTiles], const float (&scale)[2]) {
  const int64_t C = Channels(p);
#pragma unroll
  for (int n = 0; n < kOTiles; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = row0 + AccRow(i), d = 8 * n + AccCol(i);
      if (row < rows && d < p.D) head[row * C + d] = FromFloat<T>(acc[n].c[i] * scale[i >> 1]);
    }
  }
}

// Shared-memory bytes of each kernel.
template <typename T, int kD>
constexpr size_t kForwardSmem = sizeof(T) * ((kOuterRows + 2 * kInner<T>)*kStride<T, kD> +
                                             kWarps * 16 * kInnerStride<T>)+kInner<T>;
template <typename T, int kD>
constexpr size_t kDqSmem = sizeof(T) * ((2 * kOuterRows + 2 * kInner<T>)*kStride<T, kD> +
                                        kWarps * 16 * kInnerStride<T>)+kInner<T>;
template <typename T, int kD>
constexpr size_t kDkDvSmem = sizeof(T) *
                             ((2 * kOuterRows + 2 * kInner<T>)*kStride<T, kD> +
                              2 * kWarps * 16 * kInnerStride<T>)+2 *
                             sizeof(float) * kInner<T>;

// ---- forward ----

// Block (query tile blockIdx.x, head blockIdx.y = b·H + h). Online softmax per query row: the
// running max m (base 2) and this lane's share of Σ 2^(s − m); the output accumulator is rescaled
// whenever m grows.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    AttentionForwardKernel(Problem p, T* out, float* lse, const T* q, const T* k, const T* v,
                           const uint8_t* mask) {
  constexpr int kI = kInner<T>, kS = kStride<T, kD>, kPS = kInnerStride<T>;
  constexpr int kSTiles = kI / 8, kOTiles = kD / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kOuterRows * kS;
  T* sV = sK + kI * kS;
  T* sP = sV + kI * kS + (threadIdx.x / 32) * 16 * kPS;  // this warp's probabilities (16 × kI)
  bool* key_ok = reinterpret_cast<bool*>(sV + kI * kS + kWarps * 16 * kPS);

  const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
  const int q0 = blockIdx.x * kOuterRows, warp_row0 = (threadIdx.x / 32) * 16;
  const T* k_head = HeadRows(k, p, b, h, p.Tk);
  const T* v_head = HeadRows(v, p, b, h, p.Tk);
  LoadTile<T, kD, kOuterRows>(sQ, HeadRows(q, p, b, h, p.Tq), p, q0, p.Tq);

  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
  AccTile o[kOTiles];
  Clear(o);
  const int key_end = KeyEnd(p, q0);
  for (int k0 = 0; k0 < key_end; k0 += kI) {
    __syncthreads();  // the previous tile is no longer read
    LoadTile<T, kD, kI>(sK, k_head, p, k0, p.Tk);
    LoadTile<T, kD, kI>(sV, v_head, p, k0, p.Tk);
    LoadKeyMask(key_ok, p, mask, b, k0, kI);
    __syncthreads();

    AccTile s[kSTiles];
    Clear(s);
    WarpGemm<T, kSTiles, kD / 16>(s, RowMajor<T>(sQ, kS), warp_row0, Transposed<T>(sK, kS));
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int query = q0 + warp_row0 + AccRow(i), key_local = 8 * n + AccCol(i);
        const bool visible =
            key_ok[key_local] && query < p.Tq && CausalVisible(p, query, k0 + key_local);
        s[n].c[i] = visible ? s[n].c[i] * p.score_scale_log2 : -INFINITY;
        tile_max[i >> 1] = fmaxf(tile_max[i >> 1], s[n].c[i]);
      }
    }
    float base[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float new_max = fmaxf(row_max[half], QuadMax(tile_max[half]));
      base[half] = new_max == -INFINITY ? 0.0f : new_max;  // all masked so far: every p is 0
      const float correction = exp2f(row_max[half] - base[half]);
      row_sum[half] *= correction;
#pragma unroll
      for (int n = 0; n < kOTiles; ++n) {
        o[n].c[2 * half] *= correction;
        o[n].c[2 * half + 1] *= correction;
      }
      row_max[half] = new_max;
    }
#pragma unroll
    for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
      for (int pair = 0; pair < 2; ++pair) {  // elements 2·pair, 2·pair + 1: neighbouring keys
        const int r = AccRow(2 * pair), key_local = 8 * n + AccCol(2 * pair);
        float prob[2];
        bool keep[2] = {true, true};
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          prob[e] = exp2f(s[n].c[2 * pair + e] - base[pair]);
          row_sum[pair] += prob[e];
        }
        if (p.dropout_p > 0.0f) {
          KeepPair(p, DropoutIndex(p, bh, q0 + warp_row0 + r, k0 + key_local), keep[0], keep[1]);
        }
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          sP[r * kPS + key_local + e] = FromFloat<T>(keep[e] ? prob[e] * p.dropout_scale : 0.0f);
        }
      }
    }
    __syncwarp();
    WarpGemm<T, kOTiles, kI / 16>(o, RowMajor<T>(sP, kPS), 0, RowMajor<T>(sV, kS));
  }

  float inverse[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    row_sum[half] = QuadSum(row_sum[half]);
    inverse[half] = row_sum[half] > 0.0f ? 1.0f / row_sum[half] : 0.0f;  // fully masked: zeros
  }
  StoreRows(HeadRows(out, p, b, h, p.Tq), p, q0 + warp_row0, p.Tq, o, inverse);
  if (threadIdx.x % 4 == 0) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int query = q0 + warp_row0 + AccRow(2 * half);
      if (query >= p.Tq) continue;
      lse[int64_t{bh} * p.Tq + query] =
          row_sum[half] > 0.0f ? (row_max[half] + log2f(row_sum[half])) * kLn2 : INFINITY;
    }
  }
}

// ---- backward ----

// P (base-2 score s2, row lse in base 2) and its dropout mask for one element; P = 0 when hidden.
struct ProbAndKeep {
  float prob;
  bool keep;
};

__device__ __forceinline__ ProbAndKeep Recompute(const Problem& p, bool visible, float score,
                                                 float lse_log2, int bh, int query, int key) {
  if (!visible) return {0.0f, false};
  const float prob = exp2f(score * p.score_scale_log2 - lse_log2);
  const bool keep = p.dropout_p > 0.0f ? Keep(p, DropoutIndex(p, bh, query, key)) : true;
  return {prob, keep};
}

// Block (query tile, head). Pass 1: D_i = Σ_j P'_ij·dP'_ij over all keys; pass 2:
// dQ = Σ_j dS_ij·K_j/√D with dS = P ⊙ (dP − D), dP = dP'·keep/(1 − p).
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    AttentionDqKernel(Problem p, T* dq, float* row_dot, const T* dout, const T* q, const T* k,
                      const T* v, const float* lse, const uint8_t* mask) {
  constexpr int kI = kInner<T>, kS = kStride<T, kD>, kPS = kInnerStride<T>;
  constexpr int kSTiles = kI / 8, kOTiles = kD / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sdO = sQ + kOuterRows * kS;
  T* sK = sdO + kOuterRows * kS;
  T* sV = sK + kI * kS;
  T* sdS = sV + kI * kS + (threadIdx.x / 32) * 16 * kPS;
  bool* key_ok = reinterpret_cast<bool*>(sV + kI * kS + kWarps * 16 * kPS);

  const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
  const int q0 = blockIdx.x * kOuterRows, warp_row0 = (threadIdx.x / 32) * 16;
  const T* k_head = HeadRows(k, p, b, h, p.Tk);
  const T* v_head = HeadRows(v, p, b, h, p.Tk);
  LoadTile<T, kD, kOuterRows>(sQ, HeadRows(q, p, b, h, p.Tq), p, q0, p.Tq);
  LoadTile<T, kD, kOuterRows>(sdO, HeadRows(dout, p, b, h, p.Tq), p, q0, p.Tq);
  float lse_log2[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int query = q0 + warp_row0 + AccRow(2 * half);
    lse_log2[half] = query < p.Tq ? lse[int64_t{bh} * p.Tq + query] * kLog2e : INFINITY;
  }
  const int key_end = KeyEnd(p, q0);

  // One key tile: scores s and dP' = dO·Vᵀ for the warp's rows, then visit(n, i, P, keep, dP').
  auto for_each_key_tile = [&](auto visit, auto after_tile) {
    for (int k0 = 0; k0 < key_end; k0 += kI) {
      __syncthreads();
      LoadTile<T, kD, kI>(sK, k_head, p, k0, p.Tk);
      LoadTile<T, kD, kI>(sV, v_head, p, k0, p.Tk);
      LoadKeyMask(key_ok, p, mask, b, k0, kI);
      __syncthreads();
      AccTile s[kSTiles], dp[kSTiles];
      Clear(s);
      Clear(dp);
      WarpGemm<T, kSTiles, kD / 16>(s, RowMajor<T>(sQ, kS), warp_row0, Transposed<T>(sK, kS));
      WarpGemm<T, kSTiles, kD / 16>(dp, RowMajor<T>(sdO, kS), warp_row0, Transposed<T>(sV, kS));
#pragma unroll
      for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int query = q0 + warp_row0 + AccRow(i), key_local = 8 * n + AccCol(i);
          const int key = k0 + key_local;
          const bool visible = key_ok[key_local] && query < p.Tq && CausalVisible(p, query, key);
          const ProbAndKeep pk = Recompute(p, visible, s[n].c[i], lse_log2[i >> 1], bh, query, key);
          visit(n, i, pk, dp[n].c[i]);
        }
      }
      after_tile();
    }
  };

  float dot[2] = {0.0f, 0.0f};
  for_each_key_tile(
      [&](int, int i, ProbAndKeep pk, float dp) {
        if (pk.keep) dot[i >> 1] += pk.prob * p.dropout_scale * dp;
      },
      [] {});
  float row_d[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) row_d[half] = QuadSum(dot[half]);
  if (threadIdx.x % 4 == 0) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int query = q0 + warp_row0 + AccRow(2 * half);
      if (query < p.Tq) row_dot[int64_t{bh} * p.Tq + query] = row_d[half];
    }
  }

  AccTile dq_acc[kOTiles];
  Clear(dq_acc);
  for_each_key_tile(
      [&](int n, int i, ProbAndKeep pk, float dp) {
        const float dprob = pk.keep ? dp * p.dropout_scale : 0.0f;
        const float ds = pk.prob * (dprob - row_d[i >> 1]);
        sdS[AccRow(i) * kPS + 8 * n + AccCol(i)] = FromFloat<T>(ds);
      },
      [&] {
        __syncwarp();
        WarpGemm<T, kOTiles, kI / 16>(dq_acc, RowMajor<T>(sdS, kPS), 0, RowMajor<T>(sK, kS));
      });
  const float scale[2] = {p.grad_scale, p.grad_scale};
  StoreRows(HeadRows(dq, p, b, h, p.Tq), p, q0 + warp_row0, p.Tq, dq_acc, scale);
}

// Block (key tile blockIdx.x, head). The warp's 16 keys are the rows of Sᵀ = K·Qᵀ and
// dP'ᵀ = V·dOᵀ; dV += P'ᵀ·dO and dK += dSᵀ·Q/√D over the query tiles that can see them.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    AttentionDkDvKernel(Problem p, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const float* lse, const float* row_dot, const uint8_t* mask) {
  constexpr int kI = kInner<T>, kS = kStride<T, kD>, kPS = kInnerStride<T>;
  constexpr int kSTiles = kI / 8, kOTiles = kD / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + kOuterRows * kS;
  T* sQ = sV + kOuterRows * kS;
  T* sdO = sQ + kI * kS;
  T* sPt = sdO + kI * kS + (threadIdx.x / 32) * 16 * kPS;
  T* sdSt = sdO + kI * kS + kWarps * 16 * kPS + (threadIdx.x / 32) * 16 * kPS;
  float* s_lse = reinterpret_cast<float*>(sdO + kI * kS + 2 * kWarps * 16 * kPS);
  float* s_dot = s_lse + kI;

  const int bh = blockIdx.y, b = bh / p.H, h = bh % p.H;
  const int key0 = blockIdx.x * kOuterRows, warp_row0 = (threadIdx.x / 32) * 16;
  const T* q_head = HeadRows(q, p, b, h, p.Tq);
  const T* dout_head = HeadRows(dout, p, b, h, p.Tq);
  LoadTile<T, kD, kOuterRows>(sK, HeadRows(k, p, b, h, p.Tk), p, key0, p.Tk);
  LoadTile<T, kD, kOuterRows>(sV, HeadRows(v, p, b, h, p.Tk), p, key0, p.Tk);
  bool key_ok[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = key0 + warp_row0 + AccRow(2 * half);
    key_ok[half] = key < p.Tk && (mask == nullptr || mask[int64_t{b} * p.Tk + key] == 0);
  }

  AccTile dk_acc[kOTiles], dv_acc[kOTiles];
  Clear(dk_acc);
  Clear(dv_acc);
  // Causal: query i sees key j when j ≤ i + Tk − Tq, so earlier query tiles see none of ours.
  const int first_query = p.causal ? max(0, key0 - (p.Tk - p.Tq)) / kI * kI : 0;
  for (int q0 = first_query; q0 < p.Tq; q0 += kI) {
    __syncthreads();
    LoadTile<T, kD, kI>(sQ, q_head, p, q0, p.Tq);
    LoadTile<T, kD, kI>(sdO, dout_head, p, q0, p.Tq);
    for (int i = threadIdx.x; i < kI; i += blockDim.x) {
      const bool in_range = q0 + i < p.Tq;
      s_lse[i] = in_range ? lse[int64_t{bh} * p.Tq + q0 + i] * kLog2e : INFINITY;
      s_dot[i] = in_range ? row_dot[int64_t{bh} * p.Tq + q0 + i] : 0.0f;
    }
    __syncthreads();

    AccTile st[kSTiles], dpt[kSTiles];
    Clear(st);
    Clear(dpt);
    WarpGemm<T, kSTiles, kD / 16>(st, RowMajor<T>(sK, kS), warp_row0, Transposed<T>(sQ, kS));
    WarpGemm<T, kSTiles, kD / 16>(dpt, RowMajor<T>(sV, kS), warp_row0, Transposed<T>(sdO, kS));
#pragma unroll
    for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int r = AccRow(i), query_local = 8 * n + AccCol(i);
        const int key = key0 + warp_row0 + r, query = q0 + query_local;
        const bool visible = key_ok[i >> 1] && query < p.Tq && CausalVisible(p, query, key);
        const ProbAndKeep pk =
            Recompute(p, visible, st[n].c[i], s_lse[query_local], bh, query, key);
        const float dprob = pk.keep ? dpt[n].c[i] * p.dropout_scale : 0.0f;
        sPt[r * kPS + query_local] = FromFloat<T>(pk.keep ? pk.prob * p.dropout_scale : 0.0f);
        sdSt[r * kPS + query_local] = FromFloat<T>(pk.prob * (dprob - s_dot[query_local]));
      }
    }
    __syncwarp();
    WarpGemm<T, kOTiles, kI / 16>(dv_acc, RowMajor<T>(sPt, kPS), 0, RowMajor<T>(sdO, kS));
    WarpGemm<T, kOTiles, kI / 16>(dk_acc, RowMajor<T>(sdSt, kPS), 0, RowMajor<T>(sQ, kS));
  }
  const float dk_scale[2] = {p.grad_scale, p.grad_scale}, dv_scale[2] = {1.0f, 1.0f};
  StoreRows(HeadRows(dk, p, b, h, p.Tk), p, key0 + warp_row0, p.Tk, dk_acc, dk_scale);
  StoreRows(HeadRows(dv, p, b, h, p.Tk), p, key0 + warp_row0, p.Tk, dv_acc, dv_scale);
}

// ---- host side ----

Problem MakeProblem(const AttentionShape& s, float dropout_p, const RngStream& rng,
                    bool vectorized) {
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(s.D));
  Problem p{};
  p.B = s.B;
  p.Tq = s.Tq;
  p.Tk = s.Tk;
  p.H = s.H;
  p.D = s.D;
  p.causal = s.causal;
  p.score_scale_log2 = static_cast<float>(inv_sqrt_d * 1.4426950408889634);
  p.grad_scale = static_cast<float>(inv_sqrt_d);
  p.dropout_p = dropout_p > 0.0f ? dropout_p : 0.0f;
  p.dropout_scale =
      dropout_p <= 0.0f ? 1.0f : (dropout_p < 1.0f ? 1.0f / (1.0f - dropout_p) : 0.0f);
  p.rng = rng;
  p.vectorized = vectorized;
  return p;
}

template <typename T>
bool Vectorizable(const AttentionShape& s, std::initializer_list<const void*> pointers) {
  if (s.D % kVec16<T> != 0) return false;
  for (const void* ptr : pointers) {
    if (!IsAlignedHost(ptr, 16)) return false;
  }
  return true;
}

void CheckShape(const AttentionShape& s) {
  CHECK(s.B >= 0 && s.Tq >= 0 && s.Tk >= 0 && s.H >= 1 && s.D >= 1)
      << "attention: bad shape B=" << s.B << " Tq=" << s.Tq << " Tk=" << s.Tk << " H=" << s.H
      << " D=" << s.D;
  CHECK_LE(s.D, kAttentionMaxHeadDim)
      << "CUDA attention supports head dims up to " << kAttentionMaxHeadDim;
  CHECK_LE(int64_t{s.B} * s.H, 65535) << "CUDA attention: B·H exceeds the grid limit";
}

// Calls fn.template operator()<kD>() with the padded head dim for D.
template <typename Fn>
void DispatchHeadDim(int D, Fn&& fn) {
  if (D <= 64) {
    fn.template operator()<64>();
  } else {
    fn.template operator()<128>();
  }
}

template <typename Kernel>
void AllowSharedMemory(Kernel kernel, size_t bytes) {
  DEEPNET_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(bytes)));
}

}  // namespace

size_t AttentionMaskOffset(const AttentionShape& s) {
  return ScratchCarver::Round(sizeof(float) * static_cast<size_t>(s.B) * s.H * s.Tq);
}

size_t AttentionStatsBytes(const AttentionShape& s) {
  return AttentionMaskOffset(s) + static_cast<size_t>(s.B) * s.Tk;
}

void AttentionForward(const AttentionForwardArgs& args, cudaStream_t stream) {
  const AttentionShape& s = args.shape;
  CheckShape(s);
  uint8_t* mask_copy = static_cast<uint8_t*>(args.stats) + AttentionMaskOffset(s);
  const size_t mask_bytes = static_cast<size_t>(s.B) * s.Tk;
  if (mask_bytes > 0) {
    if (args.key_padding != nullptr) {
      DEEPNET_CUDA_CHECK(cudaMemcpyAsync(mask_copy, args.key_padding, mask_bytes,
                                         cudaMemcpyDeviceToDevice, stream));
    } else {
      DEEPNET_CUDA_CHECK(cudaMemsetAsync(mask_copy, 0, mask_bytes, stream));
    }
  }
  if (int64_t{s.B} * s.H * s.Tq == 0) return;
  float* lse = static_cast<float*>(args.stats);
  DispatchFloat(args.dtype, "AttentionForward", [&]<typename T>() {
    const Problem p =
        MakeProblem(s, args.dropout_p, args.rng, Vectorizable<T>(s, {args.q, args.k, args.v}));
    const dim3 grid(static_cast<unsigned>(CeilDiv(s.Tq, kOuterRows)), s.B * s.H);
    DispatchHeadDim(s.D, [&]<int kD>() {
      auto kernel = AttentionForwardKernel<T, kD>;
      AllowSharedMemory(kernel, kForwardSmem<T, kD>);
      kernel<<<grid, kThreads, kForwardSmem<T, kD>, stream>>>(
          p, static_cast<T*>(args.out), lse, static_cast<const T*>(args.q),
          static_cast<const T*>(args.k), static_cast<const T*>(args.v), args.key_padding);
      DEEPNET_CUDA_CHECK_LAUNCH();
    });
  });
}

size_t AttentionBackwardScratchBytes(const AttentionShape& s) {
  return ScratchCarver::Round(sizeof(float) * static_cast<size_t>(s.B) * s.H * s.Tq);
}

void AttentionBackward(const AttentionBackwardArgs& args, void* scratch, cudaStream_t stream) {
  const AttentionShape& s = args.shape;
  CheckShape(s);
  const size_t bytes = static_cast<size_t>(DTypeSize(args.dtype));
  if (int64_t{s.B} * s.Tq * s.H * s.D == 0 || s.Tk == 0) {
    // No query or no key: every gradient is zero.
    if (args.dq)
      DEEPNET_CUDA_CHECK(cudaMemsetAsync(args.dq, 0, bytes * s.B * s.Tq * s.H * s.D, stream));
    if (args.dk)
      DEEPNET_CUDA_CHECK(cudaMemsetAsync(args.dk, 0, bytes * s.B * s.Tk * s.H * s.D, stream));
    if (args.dv)
      DEEPNET_CUDA_CHECK(cudaMemsetAsync(args.dv, 0, bytes * s.B * s.Tk * s.H * s.D, stream));
    return;
  }
  const float* lse = static_cast<const float*>(args.stats);
  const uint8_t* mask = static_cast<const uint8_t*>(args.stats) + AttentionMaskOffset(s);
  float* row_dot = static_cast<float*>(scratch);
  DispatchFloat(args.dtype, "AttentionBackward", [&]<typename T>() {
    const Problem p = MakeProblem(s, args.dropout_p, args.rng,
                                  Vectorizable<T>(s, {args.q, args.k, args.v, args.dout}));
    const T* dout = static_cast<const T*>(args.dout);
    const T* q = static_cast<const T*>(args.q);
    const T* k = static_cast<const T*>(args.k);
    const T* v = static_cast<const T*>(args.v);
    DispatchHeadDim(s.D, [&]<int kD>() {
      auto dq_kernel = AttentionDqKernel<T, kD>;
      AllowSharedMemory(dq_kernel, kDqSmem<T, kD>);
      const dim3 query_grid(static_cast<unsigned>(CeilDiv(s.Tq, kOuterRows)), s.B * s.H);
      dq_kernel<<<query_grid, kThreads, kDqSmem<T, kD>, stream>>>(
          p, static_cast<T*>(args.dq), row_dot, dout, q, k, v, lse, mask);
      DEEPNET_CUDA_CHECK_LAUNCH();
      auto dkdv_kernel = AttentionDkDvKernel<T, kD>;
      AllowSharedMemory(dkdv_kernel, kDkDvSmem<T, kD>);
      const dim3 key_grid(static_cast<unsigned>(CeilDiv(s.Tk, kOuterRows)), s.B * s.H);
      dkdv_kernel<<<key_grid, kThreads, kDkDvSmem<T, kD>, stream>>>(
          p, static_cast<T*>(args.dk), static_cast<T*>(args.dv), dout, q, k, v, lse, row_dot, mask);
      DEEPNET_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace deepnet::cuda
