// Philox 4x32-10 counter-based random numbers (Salmon et al., SC'11), host and device.
//
// A dropout mask is a pure function of (seed, step, micro-batch, site, element): the same bits
// come out when a layer is recomputed in backward, on another pipeline stage, or on the CUDA
// backend. No generator state is carried anywhere.
//
// Counter layout: {element / 4, site, micro_batch, step}; key: the 64-bit seed. One Philox call
// yields four 32-bit words, used for four consecutive elements.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DEEPNET_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DEEPNET_HOST_DEVICE inline
#endif

namespace deepnet {

struct Philox4x32 {
  uint32_t v[4];
};

DEEPNET_HOST_DEVICE uint32_t MulHiLo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

// Ten rounds of Philox4x32 on `counter` with `key`.
DEEPNET_HOST_DEVICE Philox4x32 Philox4x32_10(Philox4x32 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = MulHiLo32(kMul0, counter.v[0], &hi0);
    const uint32_t lo1 = MulHiLo32(kMul1, counter.v[2], &hi1);
    counter = {{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// Where a stream of random numbers belongs: one dropout site of one micro-batch of one step.
struct RngStream {
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t micro_batch = 0;
  uint32_t site = 0;  // e.g. unit index * 8 + dropout site within the unit
};

// Four random words for elements [4*group, 4*group + 4) of `stream`.
DEEPNET_HOST_DEVICE Philox4x32 PhiloxBlock(const RngStream& stream, uint32_t group) {
  return Philox4x32_10({{group, stream.site, stream.micro_batch, stream.step}},
                       static_cast<uint32_t>(stream.seed),
                       static_cast<uint32_t>(stream.seed >> 32));
}

// A uniform float in [0, 1) from 24 random bits (exactly representable in fp32).
DEEPNET_HOST_DEVICE float UniformFromBits(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// The uniform number of element `index` of `stream`.
DEEPNET_HOST_DEVICE float PhiloxUniform(const RngStream& stream, uint64_t index) {
  const Philox4x32 block = PhiloxBlock(stream, static_cast<uint32_t>(index >> 2));
  return UniformFromBits(block.v[index & 3]);
}

}  // namespace deepnet
