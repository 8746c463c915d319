// runtime/json.h, deepnet's one JSON reader and writer: strict parsing, escaping, numbers
// (64-bit integers, doubles, non-finite values), nesting, key order and duplicate keys, and the
// compact and indented forms that traces, profiles and state files are written in.
#include "runtime/json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace deepnet {
namespace {

TEST(JsonTest, ParsesAndSerializesStrictly) {
  StatusOr<JsonValue> v = ParseJson(
      R"( {"a": [1, -2.5e3, true, null], "s": "\u00f1\ud83d\ude00\n", "big": 18446744073709551615} )");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v->Find("big")->AsUint64(), UINT64_MAX);
  EXPECT_EQ(*v->Find("a")->elements()[1].AsDouble(), -2500.0);
  EXPECT_FALSE(v->Find("a")->elements()[1].AsInt64().ok());
  EXPECT_EQ(v->Find("s")->text(), "ñ😀\n");
  EXPECT_EQ(v->Serialize(), R"({"a":[1,-2.5e3,true,null],"s":"ñ😀\n","big":18446744073709551615})");
  for (const char* bad : {"", "01", "1.", "[1,]", "{\"a\":1,}", "{'a':1}", "nan", "\"\t\"", "[1] 2",
                          "\"\\ud800\"", "{\"a\":1,\"a\":2}"}) {
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  }
}

TEST(JsonTest, QuoteEscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonQuote("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
  EXPECT_EQ(JsonQuote("\t\r\b\f\x1f"), "\"\\t\\r\\b\\f\\u001f\"");
  EXPECT_EQ(JsonQuote("send-act 3 -> 2 ñ"), "\"send-act 3 -> 2 ñ\"");  // UTF-8 passes through
  // Every escaped string reads back as itself.
  std::string all;
  for (int c = 1; c < 128; ++c) all += static_cast<char>(c);
  StatusOr<JsonValue> back = ParseJson(JsonValue::String(all).Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->text(), all);
}

TEST(JsonTest, IntegersKeepAll64Bits) {
  for (const int64_t x : {int64_t{0}, int64_t{-1}, std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max(), (int64_t{1} << 53) | 1}) {
    StatusOr<JsonValue> v = ParseJson(JsonValue::Int(x).Serialize());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v->AsInt64(), x);
  }
  EXPECT_EQ(JsonValue::Uint(UINT64_MAX).Serialize(), "18446744073709551615");
  EXPECT_FALSE(ParseJson("18446744073709551616")->AsUint64().ok());  // one past: refused, not cut
  EXPECT_FALSE(ParseJson("-1")->AsUint64().ok());
  EXPECT_FALSE(ParseJson("9223372036854775808")->AsInt64().ok());
}

TEST(JsonTest, DoublesRoundTripExactly) {
  for (double x : {0.1, 1e-7, 5e-4 / 3.0, 123456789.123456789, -0.0, 1e300}) {
    StatusOr<JsonValue> v = ParseJson(JsonValue::Double(x).Serialize());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v->AsDouble(), x);
  }
  EXPECT_EQ(JsonValue::Double(1.0 / 3.0, 9).Serialize(), "0.333333333");
  EXPECT_EQ(JsonValue::Fixed(10.0, 3).Serialize(), "10.000");
  EXPECT_EQ(JsonValue::Fixed(5.0000004, 3).Serialize(), "5.000");
  EXPECT_TRUE(ParseJson(JsonValue::Fixed(1e300, 3).Serialize()).ok());  // too long for %f: %g
}

TEST(JsonTest, NonFiniteNumbersBecomeNull) {
  for (const double x :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity()}) {
    EXPECT_TRUE(JsonValue::Double(x).is_null());
    EXPECT_TRUE(JsonValue::Double(x, 9).is_null());
    EXPECT_TRUE(JsonValue::Fixed(x, 3).is_null());
  }
  JsonValue object = JsonValue::Object();
  object.AddNew("loss", JsonValue::Double(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_EQ(object.Serialize(), R"({"loss":null})");
}

TEST(JsonTest, NestingUpToTheLimit) {
  JsonValue value = JsonValue::Int(7);
  for (int depth = 0; depth < 63; ++depth) {
    JsonValue outer = depth % 2 == 0 ? JsonValue::Array() : JsonValue::Object();
    if (outer.is_array()) {
      outer.Append(std::move(value));
    } else {
      outer.AddNew("k", std::move(value));
    }
    value = std::move(outer);
  }
  StatusOr<JsonValue> back = ParseJson(value.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Serialize(), value.Serialize());
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(ParseJson(deep).ok());
}

TEST(JsonTest, KeysKeepTheirOrderAndDuplicatesAreRefusedOnRead) {
  JsonValue object = JsonValue::Object();
  object.Set("b", JsonValue::Int(1));
  object.Set("a", JsonValue::Int(2));
  object.Set("b", JsonValue::Int(3));  // Set replaces in place
  EXPECT_EQ(object.Serialize(), R"({"b":3,"a":2})");
  StatusOr<JsonValue> duplicate = ParseJson(R"({"x": {"a": 1, "b": 2, "a": 3}})");
  ASSERT_FALSE(duplicate.ok());
  EXPECT_NE(duplicate.status().message().find("duplicate"), std::string::npos)
      << duplicate.status();
}

TEST(JsonTest, IndentedFormReadsBackTheSame) {
  StatusOr<JsonValue> v =
      ParseJson(R"({"shape":{"batch":4},"units":[{"kind":"output","t":0.5},[]],"empty":{}})");
  ASSERT_TRUE(v.ok()) << v.status();
  const std::string indented = v->SerializeIndented();
  EXPECT_EQ(indented,
            "{\n"
            "  \"shape\": {\n"
            "    \"batch\": 4\n"
            "  },\n"
            "  \"units\": [\n"
            "    {\n"
            "      \"kind\": \"output\",\n"
            "      \"t\": 0.5\n"
            "    },\n"
            "    []\n"
            "  ],\n"
            "  \"empty\": {}\n"
            "}");
  StatusOr<JsonValue> back = ParseJson(indented);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Serialize(), v->Serialize());
  EXPECT_EQ(JsonValue::String("x").SerializeIndented(), "\"x\"");
}

}  // namespace
}  // namespace deepnet
