// CRC-32 (runtime/checksum.h): zlib's checksum, the one Python's zlib.crc32 gives, and its hex
// form.
#include "runtime/checksum.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace deepnet {
namespace {

TEST(ChecksumTest, Crc32KnownValues) {
  // The CRC-32/ISO-HDLC check value, and values Python's zlib.crc32 gives.
  EXPECT_EQ(Crc32("123456789"), 0xcbf43926u);
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32(std::string(1, '\0')), 0xd202ef8du);
  EXPECT_EQ(Crc32("The quick brown fox jumps over the lazy dog"), 0x414fa339u);
  EXPECT_EQ(Crc32(nullptr, 0, 0x12345678u), 0x12345678u);
}

TEST(ChecksumTest, Crc32Continues) {
  std::vector<char> bytes(100000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 + 7);
  const uint32_t whole = Crc32(bytes.data(), bytes.size());
  const uint32_t head = Crc32(bytes.data(), 12345);
  EXPECT_EQ(Crc32(bytes.data() + 12345, bytes.size() - 12345, head), whole);
  // Any single flipped bit changes it.
  for (size_t bit : {0, 8 * 50000 + 3, 8 * 99999 + 7}) {
    bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_NE(Crc32(bytes.data(), bytes.size()), whole) << bit;
    bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
  }
}

TEST(ChecksumTest, HexRoundTrip) {
  EXPECT_EQ(Crc32Hex(0xcbf43926u), "cbf43926");
  EXPECT_EQ(Crc32Hex(0), "00000000");
  EXPECT_EQ(Crc32Hex(0xffffffffu), "ffffffff");
  EXPECT_EQ(ParseCrc32Hex("cbf43926"), 0xcbf43926u);
  EXPECT_EQ(ParseCrc32Hex("CBF43926"), 0xcbf43926u);
  EXPECT_EQ(ParseCrc32Hex("00000000"), 0u);
  for (const char* bad :
       {"", "cbf4392", "cbf439260", "xbf43926", "-bf43926", " bf43926", "0x123456"}) {
    EXPECT_FALSE(ParseCrc32Hex(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace deepnet
