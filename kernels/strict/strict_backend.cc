// The strict test device: every op downloads its tensor arguments into host f32 tensors, runs the
// CPU backend's op on them and uploads the outputs rounded to their declared dtype.
#include "kernels/strict/strict_backend.h"

#include <cstring>
#include <deque>
#include <optional>
#include <string_view>
#include <vector>

#include "kernels/strict/strict_allocator.h"
#include "runtime/half.h"

namespace deepnet {
namespace {

// The float dtypes a device op accepts: those CUDA accepts (f64 is CPU-only).
bool IsDeviceFloat(DType t) { return t == DType::kF32 || Is16Bit(t); }

void CheckOnDevice(std::string_view op, const Tensor& t) {
  CHECK(t.defined()) << "strict " << op << ": an undefined tensor";
  CHECK(t.device() == Device::Strict())
      << "strict " << op << ": " << t.ToString()
      << " is not on the strict device (a host tensor passed to a device op is a wiring bug)";
}

// The host side of one op call. Each tensor argument is checked (strict device, accepted dtype)
// and downloaded into a fresh host tensor: float dtypes as f32, the precision the CPU kernels
// compute in; ids and masks as they are. Outputs are downloaded too (some accumulate: dweight +=,
// GradWrite::kAdd) and Upload() writes them back, rounded to their declared dtype. An argument
// passed twice (in place: Add(g, g, x)) gets one host copy, so the CPU op sees the same aliasing.
class HostArgs {
 public:
  explicit HostArgs(std::string_view op) : op_(op) {}

  const Tensor& In(const Tensor& t) { return Get(t, /*output=*/false, /*expect=*/std::nullopt); }
  const Tensor* In(const Tensor* t) { return t ? &In(*t) : nullptr; }
  const Tensor& Out(const Tensor& t) { return Get(t, /*output=*/true, std::nullopt); }
  const Tensor* Out(const Tensor* t) { return t ? &Out(*t) : nullptr; }
  const Tensor& Ids(const Tensor& t) { return Get(t, false, DType::kI32); }  // tokens, targets
  const Tensor* Mask(const Tensor* t) { return t ? &Get(*t, false, DType::kU8) : nullptr; }

  // Writes every output back to the device, converting f32 to its dtype.
  void Upload() {
    for (const Entry& e : entries_) {
      if (!e.output || e.device.nbytes() == 0) continue;
      ConvertElements(e.device.dtype(), StrictHostAddress(e.device.raw_data()), e.host.dtype(),
                      e.host.raw_data(), e.device.numel());
    }
  }

 private:
  struct Entry {
    Tensor device;
    Tensor host;
    bool output;
  };

  // `expect`: the exact dtype (ids, masks); none for float tensors (f32, bf16, f16).
  const Tensor& Get(const Tensor& t, bool output, std::optional<DType> expect) {
    CheckOnDevice(op_, t);
    if (expect) {
      CHECK(t.dtype() == *expect) << "strict " << op_ << ": " << t.ToString() << ", want "
                                  << DTypeName(*expect);
    } else {
      CHECK(IsDeviceFloat(t.dtype()))
          << "strict " << op_ << ": " << t.ToString() << ", want f32, bf16 or f16 (as on CUDA)";
    }
    const auto* begin = static_cast<const char*>(t.raw_data());
    const char* end = begin + t.nbytes();
    for (Entry& e : entries_) {
      const auto* e_begin = static_cast<const char*>(e.device.raw_data());
      const char* e_end = e_begin + e.device.nbytes();
      if (begin == e_begin && end == e_end && t.dtype() == e.device.dtype()) {
        e.output = e.output || output;
        return views_.emplace_back(e.host.Reshape(t.shape()));
      }
      // A partial overlap involving an output has no defined result on any device.
      const bool overlap =
          t.nbytes() > 0 && e.device.nbytes() > 0 && begin < e_end && e_begin < end;
      CHECK(!overlap || !(output || e.output))
          << "strict " << op_ << ": " << t.ToString() << " partially overlaps "
          << e.device.ToString() << " and one of them is an output";
    }
    const DType host_dtype = IsFloat(t.dtype()) ? DType::kF32 : t.dtype();
    Tensor host = Tensor::Empty(t.shape(), host_dtype, MemoryCategory::kWorkspace);
    if (t.nbytes() > 0) {
      ConvertElements(host_dtype, host.raw_data(), t.dtype(), StrictHostAddress(t.raw_data()),
                      t.numel());
    }
    entries_.push_back({t, host, output});
    return views_.emplace_back(host);
  }

  std::string_view op_;
  std::vector<Entry> entries_;
  std::deque<Tensor> views_;  // what In/Out returned: a deque keeps their addresses stable
};

// Where a Copy argument's bytes are: host tensors as they are, strict ones untagged.
void* CopyAddress(const Tensor& t) {
  CHECK(t.defined()) << "strict Copy: an undefined tensor";
  if (t.device().is_cpu()) return t.raw_data();
  CHECK(t.device() == Device::Strict())
      << "strict Copy: " << t.ToString() << " is on neither the host nor the strict device";
  return StrictHostAddress(t.raw_data());
}

class Strict final : public Backend {
 public:
  Device device() const override { return Device::Strict(); }
  std::string_view name() const override { return "strict"; }

  void Zero(const Tensor& t) const override {
    CheckOnDevice("Zero", t);
    if (t.nbytes() > 0) std::memset(StrictHostAddress(t.raw_data()), 0, t.nbytes());
  }
  // Any of host <-> strict, strict <-> strict, host <-> host.
  void Copy(const Tensor& dst, const Tensor& src) const override {
    CHECK(dst.numel() == src.numel() && dst.dtype() == src.dtype())
        << "strict Copy: " << dst.ToString() << " <- " << src.ToString();
    void* to = CopyAddress(dst);
    const void* from = CopyAddress(src);
    if (dst.nbytes() > 0) std::memmove(to, from, dst.nbytes());
  }
  void Convert(const Tensor& dst, const Tensor& src) const override {
    CheckOnDevice("Convert", dst);
    CheckOnDevice("Convert", src);
    CHECK(dst.numel() == src.numel() && IsDeviceFloat(dst.dtype()) && IsDeviceFloat(src.dtype()))
        << "strict Convert: " << dst.ToString() << " <- " << src.ToString();
    if (dst.nbytes() == 0) return;
    ConvertElements(dst.dtype(), StrictHostAddress(dst.raw_data()), src.dtype(),
                    StrictHostAddress(src.raw_data()), dst.numel());
  }

  void LinearForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                     const Tensor* bias) const override {
    HostArgs h("LinearForward");
    cpu_.LinearForward(h.Out(out), h.In(inp), h.In(weight), h.In(bias));
    h.Upload();
  }
  void LinearBackward(const Tensor* dinp, GradWrite dinp_write, const Tensor* dweight,
                      const Tensor* dbias, const Tensor& dout, const Tensor& inp,
                      const Tensor& weight) const override {
    HostArgs h("LinearBackward");
    cpu_.LinearBackward(h.Out(dinp), dinp_write, h.Out(dweight), h.Out(dbias), h.In(dout),
                        h.In(inp), h.In(weight));
    h.Upload();
  }

  void LayerNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& gamma, const Tensor& beta, double eps) const override {
    HostArgs h("LayerNormForward");
    cpu_.LayerNormForward(h.Out(y), h.Out(mean), h.Out(rstd), h.In(x), h.In(gamma), h.In(beta),
                          eps);
    h.Upload();
  }
  void LayerNormBackward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                         const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd) const override {
    HostArgs h("LayerNormBackward");
    cpu_.LayerNormBackward(h.Out(dx), h.Out(dgamma), h.Out(dbeta), h.In(dy), h.In(x), h.In(gamma),
                           h.In(mean), h.In(rstd));
    h.Upload();
  }
  void DeepNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& g, const Tensor& gamma, const Tensor& beta, double alpha,
                       double eps) const override {
    HostArgs h("DeepNormForward");
    cpu_.DeepNormForward(h.Out(y), h.Out(mean), h.Out(rstd), h.In(x), h.In(g), h.In(gamma),
                         h.In(beta), alpha, eps);
    h.Upload();
  }
  void DeepNormBackward(const Tensor* dx, const Tensor* dg, const Tensor& dgamma,
                        const Tensor& dbeta, const Tensor& dy, const Tensor& x, const Tensor& g,
                        const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                        double alpha) const override {
    HostArgs h("DeepNormBackward");
    cpu_.DeepNormBackward(h.Out(dx), h.Out(dg), h.Out(dgamma), h.Out(dbeta), h.In(dy), h.In(x),
                          h.In(g), h.In(gamma), h.In(mean), h.In(rstd), alpha);
    h.Upload();
  }

  // `probs` is the real (B, H, Tq, Tk) softmax here, as on the CPU (not CUDA's stats buffer).
  void AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor* key_padding_mask,
                        const AttentionShape& shape, float dropout_p,
                        const RngStream& stream) const override {
    HostArgs h("AttentionForward");
    cpu_.AttentionForward(h.Out(out), h.Out(probs), h.In(q), h.In(k), h.In(v),
                          h.Mask(key_padding_mask), shape, dropout_p, stream);
    h.Upload();
  }
  void AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                         const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                         const AttentionShape& shape, float dropout_p,
                         const RngStream& stream) const override {
    HostArgs h("AttentionBackward");
    cpu_.AttentionBackward(h.Out(dq), h.Out(dk), h.Out(dv), h.In(dout), h.In(q), h.In(k), h.In(v),
                           h.In(probs), shape, dropout_p, stream);
    h.Upload();
  }

  void ActivationForward(ActivationKind kind, const Tensor& y, const Tensor& x) const override {
    HostArgs h("ActivationForward");
    cpu_.ActivationForward(kind, h.Out(y), h.In(x));
    h.Upload();
  }
  void ActivationBackward(ActivationKind kind, const Tensor& dx, const Tensor& dy,
                          const Tensor& x) const override {
    HostArgs h("ActivationBackward");
    cpu_.ActivationBackward(kind, h.Out(dx), h.In(dy), h.In(x));
    h.Upload();
  }
  void DropoutForward(const Tensor& y, const Tensor& x, float p,
                      const RngStream& stream) const override {
    HostArgs h("DropoutForward");
    cpu_.DropoutForward(h.Out(y), h.In(x), p, stream);
    h.Upload();
  }
  void DropoutBackward(const Tensor& dx, const Tensor& dy, float p,
                       const RngStream& stream) const override {
    HostArgs h("DropoutBackward");
    cpu_.DropoutBackward(h.Out(dx), h.In(dy), p, stream);
    h.Upload();
  }
  void Add(const Tensor& y, const Tensor& a, const Tensor& b) const override {
    HostArgs h("Add");
    cpu_.Add(h.Out(y), h.In(a), h.In(b));
    h.Upload();
  }
  void Axpy(const Tensor& y, const Tensor& x, double alpha) const override {
    HostArgs h("Axpy");
    cpu_.Axpy(h.Out(y), h.In(x), alpha);
    h.Upload();
  }
  void Scale(const Tensor& y, const Tensor& x, double alpha) const override {
    HostArgs h("Scale");
    cpu_.Scale(h.Out(y), h.In(x), alpha);
    h.Upload();
  }

  void EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table,
                        double scale) const override {
    HostArgs h("EmbeddingForward");
    cpu_.EmbeddingForward(h.Out(out), h.Ids(tokens), h.In(table), scale);
    h.Upload();
  }
  void EmbeddingBackward(const Tensor& dtable, const Tensor& tokens, const Tensor& dout,
                         double scale) const override {
    HostArgs h("EmbeddingBackward");
    cpu_.EmbeddingBackward(h.Out(dtable), h.Ids(tokens), h.In(dout), scale);
    h.Upload();
  }
  void PositionsAdd(const Tensor& x, int pos_offset) const override {
    HostArgs h("PositionsAdd");
    cpu_.PositionsAdd(h.Out(x), pos_offset);
    h.Upload();
  }

  void CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                           const Tensor& targets, double smoothing,
                           int ignore_index) const override {
    HostArgs h("CrossEntropyForward");
    cpu_.CrossEntropyForward(h.Out(losses), h.Out(lse), h.In(logits), h.Ids(targets), smoothing,
                             ignore_index);
    h.Upload();
  }
  void CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                            const Tensor& targets, double dloss, double smoothing,
                            int ignore_index) const override {
    HostArgs h("CrossEntropyBackward");
    cpu_.CrossEntropyBackward(h.Out(dlogits), h.In(logits), h.In(lse), h.Ids(targets), dloss,
                              smoothing, ignore_index);
    h.Upload();
  }

  // param f32 (the master) or 16-bit, m and v f32 (as on CUDA), grad any float dtype.
  void AdamW(const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& grad,
             const AdamWConfig& config, int64_t step, double grad_scale) const override {
    CHECK(m.dtype() == DType::kF32 && v.dtype() == DType::kF32)
        << "strict AdamW: moments must be f32, got " << m.ToString() << ", " << v.ToString();
    HostArgs h("AdamW");
    cpu_.AdamW(h.Out(param), h.Out(m), h.Out(v), h.In(grad), config, step, grad_scale);
    h.Upload();
  }
  double SumOfSquares(const Tensor& x) const override {
    HostArgs h("SumOfSquares");
    return cpu_.SumOfSquares(h.In(x));
  }

 private:
  const Backend& cpu_ = CpuBackend();
};

}  // namespace

const Backend& StrictBackend() {
  // Never destroyed: tensors may outlive main. The allocator is registered before the backend
  // exists, so its Empty works from the first call.
  static const Strict* backend = [] {
    RegisterAllocator(Device::Strict(), new StrictAllocator());
    return new Strict();
  }();
  return *backend;
}

}  // namespace deepnet
