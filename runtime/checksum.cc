// CRC-32 through zlib (see the header).
#include "runtime/checksum.h"

#include <zlib.h>

#include <algorithm>

namespace deepnet {

uint32_t Crc32(const void* data, size_t size, uint32_t crc) {
  if (size == 0) return crc;  // (zlib answers 0 for a null buffer, whatever `crc` is)
  // crc32_z takes a size_t length; feed it in pieces anyway so that a z_size_t narrower than
  // size_t (a zlib built for 32 bits) cannot truncate.
  constexpr size_t kPiece = size_t{1} << 30;
  const auto* bytes = static_cast<const Bytef*>(data);
  uLong value = crc;
  while (size > 0) {
    const size_t n = std::min(size, kPiece);
    value = crc32_z(value, bytes, static_cast<z_size_t>(n));
    bytes += n;
    size -= n;
  }
  return static_cast<uint32_t>(value);
}

std::string Crc32Hex(uint32_t crc) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text(8, '0');
  for (int i = 7; i >= 0; --i, crc >>= 4) text[static_cast<size_t>(i)] = kDigits[crc & 0xf];
  return text;
}

std::optional<uint32_t> ParseCrc32Hex(std::string_view text) {
  if (text.size() != 8) return std::nullopt;
  uint32_t value = 0;
  for (const char c : text) {
    uint32_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    value = value << 4 | digit;
  }
  return value;
}

}  // namespace deepnet
