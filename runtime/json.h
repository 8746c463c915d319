// A small, strict JSON value with a parser and an emitter: deepnet's one JSON reader and writer
// (safetensors headers, checkpoint state, metrics lines, traces, profiles and predictions).
//
// Strict means RFC 8259 and nothing more: no comments, no trailing commas, no NaN, no duplicate
// object keys, nesting at most 64 deep. Numbers keep their literal text, so 64-bit integers (steps,
// seeds) survive a round trip exactly; objects keep their key order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/status.h"

namespace deepnet {

class JsonValue {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  using Member = std::pair<std::string, JsonValue>;

  JsonValue() = default;  // null
  static JsonValue Bool(bool value);
  static JsonValue Int(int64_t value);
  static JsonValue Uint(uint64_t value);
  // `significant_digits` 17 (the default) reads back as the same double; fewer give shorter text
  // for measurements. Non-finite values become null (JSON has no NaN or infinity).
  static JsonValue Double(double value, int significant_digits = 17);
  // `decimals` digits after the point, no exponent (trace timestamps: µs to the nanosecond).
  // Non-finite values become null.
  static JsonValue Fixed(double value, int decimals);
  static JsonValue String(std::string value);
  static JsonValue Array();
  static JsonValue Object();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool bool_value() const { return bool_; }
  // The number's literal text, or the string's (unescaped) contents.
  const std::string& text() const { return text_; }
  // Exact conversions: fail when the number has a fraction, an exponent or does not fit.
  StatusOr<int64_t> AsInt64() const;
  StatusOr<uint64_t> AsUint64() const;
  StatusOr<double> AsDouble() const;

  // Arrays.
  const std::vector<JsonValue>& elements() const { return elements_; }
  JsonValue& Append(JsonValue value);

  // Objects (insertion order kept).
  const std::vector<Member>& members() const { return members_; }
  const JsonValue* Find(std::string_view key) const;  // null when absent
  // Adds or replaces `key`.
  JsonValue& Set(std::string key, JsonValue value);
  // Appends `key`, which the caller knows is new (no search: large headers stay linear).
  JsonValue& AddNew(std::string key, JsonValue value);

  // Compact JSON text (no whitespace).
  std::string Serialize() const;
  // JSON text for people to read: one member or element per line, `indent` spaces per level, ": "
  // after keys; empty arrays and objects stay "[]" and "{}". Ends without a newline.
  std::string SerializeIndented(int indent = 2) const;

 private:
  friend class JsonParser;

  // `value` printed as %.*g (or %.*f when `fixed`) with `digits`; null when not finite.
  static JsonValue FormattedNumber(double value, int digits, bool fixed);

  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<JsonValue> elements_;
  std::vector<Member> members_;
};

// Parses exactly one JSON value (surrounding whitespace allowed). Errors are InvalidArgument
// with the byte offset; callers add the file name and pick their own code.
StatusOr<JsonValue> ParseJson(std::string_view text);

// `text` as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view text);

}  // namespace deepnet
