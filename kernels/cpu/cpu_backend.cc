// The CPU backend: Backend over kernels/cpu, dispatching on dtype (f32, f64).
#include "kernels/backend.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/optimizer.h"
#include "runtime/half.h"

namespace deepnet {
namespace {

int Rows(const Tensor& t) { return static_cast<int>(t.numel() / t.dim(-1)); }
int Cols(const Tensor& t) { return static_cast<int>(t.dim(-1)); }

template <typename T>
T* Ptr(const Tensor& t) {
  return t.data<T>();
}
template <typename T>
T* PtrOrNull(const Tensor* t) {
  return t ? t->data<T>() : nullptr;
}

// Calls fn.template operator()<T>() with T the element type of `t` (float or double).
template <typename Fn>
void DispatchFloat(const Tensor& t, Fn&& fn) {
  switch (t.dtype()) {
    case DType::kF32:
      fn.template operator()<float>();
      break;
    case DType::kF64:
      fn.template operator()<double>();
      break;
    default:
      LOG(FATAL) << "CPU backend: unsupported dtype " << DTypeName(t.dtype());
  }
}

class Cpu final : public Backend {
 public:
  Device device() const override { return Device::Cpu(); }
  std::string_view name() const override { return "cpu"; }

  void Zero(const Tensor& t) const override { cpu::zero_bytes(t.raw_data(), t.nbytes()); }
  void Copy(const Tensor& dst, const Tensor& src) const override {
    Tensor d = dst;
    d.CopyFrom(src);
  }
  void Convert(const Tensor& dst, const Tensor& src) const override {
    CHECK_EQ(dst.numel(), src.numel()) << "Convert: " << dst.ToString() << " <- " << src.ToString();
    CHECK(dst.device().is_cpu() && src.device().is_cpu()) << "Convert: host tensors only";
    ConvertElements(dst.dtype(), dst.raw_data(), src.dtype(), src.raw_data(), dst.numel());
  }

  void LinearForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                     const Tensor* bias) const override {
    DispatchFloat(inp, [&]<typename T>() {
      cpu::linear_forward<T>(Ptr<T>(out), Ptr<T>(inp), Ptr<T>(weight), PtrOrNull<T>(bias),
                             Rows(inp), Cols(inp), Rows(weight));
    });
  }
  void LinearBackward(const Tensor* dinp, GradWrite dinp_write, const Tensor* dweight,
                      const Tensor* dbias, const Tensor& dout, const Tensor& inp,
                      const Tensor& weight) const override {
    DispatchFloat(inp, [&]<typename T>() {
      cpu::linear_backward<T>(PtrOrNull<T>(dinp), PtrOrNull<T>(dweight), PtrOrNull<T>(dbias),
                              Ptr<T>(dout), Ptr<T>(inp), Ptr<T>(weight), Rows(inp), Cols(inp),
                              Rows(weight), dinp_write == GradWrite::kAdd);
    });
  }

  void LayerNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& gamma, const Tensor& beta, double eps) const override {
    DispatchFloat(x, [&]<typename T>() {
      cpu::layernorm_forward<T>(Ptr<T>(y), Ptr<T>(mean), Ptr<T>(rstd), Ptr<T>(x), Ptr<T>(gamma),
                                Ptr<T>(beta), Rows(x), Cols(x), static_cast<T>(eps));
    });
  }
  void LayerNormBackward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                         const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd) const override {
    DispatchFloat(x, [&]<typename T>() {
      cpu::layernorm_backward<T>(Ptr<T>(dx), Ptr<T>(dgamma), Ptr<T>(dbeta), Ptr<T>(dy), Ptr<T>(x),
                                 Ptr<T>(gamma), Ptr<T>(mean), Ptr<T>(rstd), Rows(x), Cols(x));
    });
  }
  void DeepNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& g, const Tensor& gamma, const Tensor& beta, double alpha,
                       double eps) const override {
    DispatchFloat(x, [&]<typename T>() {
      cpu::deepnorm_forward<T>(Ptr<T>(y), Ptr<T>(mean), Ptr<T>(rstd), Ptr<T>(x), Ptr<T>(g),
                               Ptr<T>(gamma), Ptr<T>(beta), static_cast<T>(alpha), Rows(x), Cols(x),
                               static_cast<T>(eps));
    });
  }
  void DeepNormBackward(const Tensor* dx, const Tensor* dg, const Tensor& dgamma,
                        const Tensor& dbeta, const Tensor& dy, const Tensor& x, const Tensor& g,
                        const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                        double alpha) const override {
    DispatchFloat(x, [&]<typename T>() {
      cpu::deepnorm_backward<T>(PtrOrNull<T>(dx), PtrOrNull<T>(dg), Ptr<T>(dgamma), Ptr<T>(dbeta),
                                Ptr<T>(dy), Ptr<T>(x), Ptr<T>(g), Ptr<T>(gamma), Ptr<T>(mean),
                                Ptr<T>(rstd), static_cast<T>(alpha), Rows(x), Cols(x));
    });
  }

  void AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor* key_padding_mask,
                        const AttentionShape& shape, float dropout_p,
                        const RngStream& stream) const override {
    const uint8_t* mask = key_padding_mask ? key_padding_mask->data<uint8_t>() : nullptr;
    DispatchFloat(q, [&]<typename T>() {
      cpu::attention_forward<T>(Ptr<T>(out), Ptr<T>(probs), Ptr<T>(q), Ptr<T>(k), Ptr<T>(v), mask,
                                shape, dropout_p, stream);
    });
  }
  void AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                         const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                         const AttentionShape& shape, float dropout_p,
                         const RngStream& stream) const override {
    DispatchFloat(q, [&]<typename T>() {
      cpu::attention_backward<T>(Ptr<T>(dq), Ptr<T>(dk), Ptr<T>(dv), Ptr<T>(dout), Ptr<T>(q),
                                 Ptr<T>(k), Ptr<T>(v), Ptr<T>(probs), shape, dropout_p, stream);
    });
  }

  void ActivationForward(ActivationKind kind, const Tensor& y, const Tensor& x) const override {
    DispatchFloat(x, [&]<typename T>() {
      if (kind == ActivationKind::kRelu) {
        cpu::relu_forward<T>(Ptr<T>(y), Ptr<T>(x), x.numel());
      } else {
        cpu::gelu_forward<T>(Ptr<T>(y), Ptr<T>(x), x.numel());
      }
    });
  }
  void ActivationBackward(ActivationKind kind, const Tensor& dx, const Tensor& dy,
                          const Tensor& x) const override {
    DispatchFloat(x, [&]<typename T>() {
      if (kind == ActivationKind::kRelu) {
        cpu::relu_backward<T>(Ptr<T>(dx), Ptr<T>(dy), Ptr<T>(x), x.numel());
      } else {
        cpu::gelu_backward<T>(Ptr<T>(dx), Ptr<T>(dy), Ptr<T>(x), x.numel());
      }
    });
  }
  void DropoutForward(const Tensor& y, const Tensor& x, float p,
                      const RngStream& stream) const override {
    DispatchFloat(x, [&]<typename T>() {
      cpu::dropout_forward<T>(Ptr<T>(y), Ptr<T>(x), x.numel(), p, stream);
    });
  }
  void DropoutBackward(const Tensor& dx, const Tensor& dy, float p,
                       const RngStream& stream) const override {
    DispatchFloat(dy, [&]<typename T>() {
      cpu::dropout_backward<T>(Ptr<T>(dx), Ptr<T>(dy), dy.numel(), p, stream);
    });
  }
  void Add(const Tensor& y, const Tensor& a, const Tensor& b) const override {
    DispatchFloat(a,
                  [&]<typename T>() { cpu::add<T>(Ptr<T>(y), Ptr<T>(a), Ptr<T>(b), a.numel()); });
  }
  void Axpy(const Tensor& y, const Tensor& x, double alpha) const override {
    DispatchFloat(x, [&]<typename T>() {
      cpu::axpy<T>(Ptr<T>(y), Ptr<T>(x), static_cast<T>(alpha), x.numel());
    });
  }
  void Scale(const Tensor& y, const Tensor& x, double alpha) const override {
    DispatchFloat(x, [&]<typename T>() {
      cpu::scale<T>(Ptr<T>(y), Ptr<T>(x), static_cast<T>(alpha), x.numel());
    });
  }

  void EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table,
                        double scale) const override {
    DispatchFloat(table, [&]<typename T>() {
      cpu::embedding_forward<T>(Ptr<T>(out), tokens.data<int32_t>(), Ptr<T>(table),
                                static_cast<int>(tokens.numel()), Rows(table), Cols(table),
                                static_cast<T>(scale));
    });
  }
  void EmbeddingBackward(const Tensor& dtable, const Tensor& tokens, const Tensor& dout,
                         double scale) const override {
    DispatchFloat(dtable, [&]<typename T>() {
      cpu::embedding_backward<T>(Ptr<T>(dtable), tokens.data<int32_t>(), Ptr<T>(dout),
                                 static_cast<int>(tokens.numel()), Rows(dtable), Cols(dtable),
                                 static_cast<T>(scale));
    });
  }
  void PositionsAdd(const Tensor& x, int pos_offset) const override {
    CHECK_EQ(x.rank(), 3) << "PositionsAdd wants (B, T, C), got " << x.ToString();
    DispatchFloat(x, [&]<typename T>() {
      cpu::sinusoidal_positions_add<T>(Ptr<T>(x), static_cast<int>(x.dim(0)),
                                       static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)),
                                       pos_offset);
    });
  }

  void CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                           const Tensor& targets, double smoothing,
                           int ignore_index) const override {
    DispatchFloat(logits, [&]<typename T>() {
      cpu::cross_entropy_forward<T>(Ptr<T>(losses), Ptr<T>(lse), Ptr<T>(logits),
                                    targets.data<int32_t>(), Rows(logits), Cols(logits),
                                    static_cast<T>(smoothing), ignore_index);
    });
  }
  void CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                            const Tensor& targets, double dloss, double smoothing,
                            int ignore_index) const override {
    DispatchFloat(logits, [&]<typename T>() {
      cpu::cross_entropy_backward<T>(Ptr<T>(dlogits), Ptr<T>(logits), Ptr<T>(lse),
                                     targets.data<int32_t>(), static_cast<T>(dloss), Rows(logits),
                                     Cols(logits), static_cast<T>(smoothing), ignore_index);
    });
  }

  void AdamW(const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& grad,
             const AdamWConfig& config, int64_t step, double grad_scale) const override {
    DispatchFloat(param, [&]<typename T>() {
      cpu::adamw_update<T>(Ptr<T>(param), Ptr<T>(m), Ptr<T>(v), Ptr<T>(grad), param.numel(), config,
                           step, static_cast<T>(grad_scale));
    });
  }
  double SumOfSquares(const Tensor& x) const override {
    double result = 0.0;
    DispatchFloat(x, [&]<typename T>() { result = cpu::sum_of_squares<T>(Ptr<T>(x), x.numel()); });
    return result;
  }
};

}  // namespace

Tensor Backend::Zeros(const Shape& shape, DType dtype, MemoryCategory category) const {
  Tensor t = Empty(shape, dtype, category);
  Zero(t);
  return t;
}

const Backend& CpuBackend() {
  static const Cpu* backend = new Cpu();
  return *backend;
}

}  // namespace deepnet
