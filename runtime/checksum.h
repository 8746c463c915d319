// Checksums that guard deepnet's files against silent damage (safetensors checkpoints and
// exports, token shards).
//
// The checksum is CRC-32 as zlib computes it (the ISO-HDLC / IEEE 802.3 polynomial, reflected,
// initial value and final xor 0xffffffff): the same number as Python's zlib.crc32 or
// binascii.crc32, `crc32` of Perl, 7-Zip and most other tools, so a file can be checked without
// deepnet. It is written as 8 lowercase hex digits. CRC-32 detects every burst of up to 32 flipped
// bits and all but one in 2^32 random damages; it is no defence against deliberate tampering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace deepnet {

// CRC-32 of `size` bytes at `data`, continuing from `crc` (the CRC of the bytes before them; 0 to
// start). Crc32(b, Crc32(a)) == Crc32(a + b).
uint32_t Crc32(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t Crc32(std::string_view bytes, uint32_t crc = 0) {
  return Crc32(bytes.data(), bytes.size(), crc);
}

// "1a2b3c4d": 8 lowercase hex digits.
std::string Crc32Hex(uint32_t crc);
// The value of exactly 8 hex digits (either case); nullopt for anything else.
std::optional<uint32_t> ParseCrc32Hex(std::string_view text);

}  // namespace deepnet
