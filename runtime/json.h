// A small, strict JSON value with a parser and an emitter, for file headers and state files
// (safetensors headers, checkpoint state, metrics lines).
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
  static JsonValue Double(double value);  // non-finite values become null
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

 private:
  friend class JsonParser;

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
