// Strict JSON: recursive-descent parser, compact and indented emitters.
#include "runtime/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>

namespace deepnet {

JsonValue JsonValue::Bool(bool value) {
  JsonValue v;
  v.kind_ = Kind::kBool;
  v.bool_ = value;
  return v;
}

JsonValue JsonValue::Int(int64_t value) {
  JsonValue v;
  v.kind_ = Kind::kNumber;
  v.text_ = std::to_string(value);
  return v;
}

JsonValue JsonValue::Uint(uint64_t value) {
  JsonValue v;
  v.kind_ = Kind::kNumber;
  v.text_ = std::to_string(value);
  return v;
}

JsonValue JsonValue::FormattedNumber(double value, int digits, bool fixed) {
  if (!std::isfinite(value)) return JsonValue();
  // Large enough for %.17g of any double; %f of a huge value does not fit and falls back to that.
  char buffer[64];
  int n = fixed ? std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value)
                : std::snprintf(buffer, sizeof(buffer), "%.*g", digits, value);
  if (n <= 0 || n >= static_cast<int>(sizeof(buffer))) {
    n = std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  }
  JsonValue v;
  v.kind_ = Kind::kNumber;
  v.text_.assign(buffer, n);
  return v;
}

JsonValue JsonValue::Double(double value, int significant_digits) {
  return FormattedNumber(value, std::clamp(significant_digits, 1, 17), /*fixed=*/false);
}

JsonValue JsonValue::Fixed(double value, int decimals) {
  return FormattedNumber(value, std::clamp(decimals, 0, 17), /*fixed=*/true);
}

JsonValue JsonValue::String(std::string value) {
  JsonValue v;
  v.kind_ = Kind::kString;
  v.text_ = std::move(value);
  return v;
}

JsonValue JsonValue::Array() {
  JsonValue v;
  v.kind_ = Kind::kArray;
  return v;
}

JsonValue JsonValue::Object() {
  JsonValue v;
  v.kind_ = Kind::kObject;
  return v;
}

StatusOr<int64_t> JsonValue::AsInt64() const {
  if (!is_number()) return InvalidArgument("expected an integer");
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text_.data(), text_.data() + text_.size(), value);
  if (error != std::errc() || end != text_.data() + text_.size()) {
    return InvalidArgument("not a 64-bit integer: " + text_);
  }
  return value;
}

StatusOr<uint64_t> JsonValue::AsUint64() const {
  if (!is_number() || text_.starts_with('-'))
    return InvalidArgument("expected an unsigned integer");
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text_.data(), text_.data() + text_.size(), value);
  if (error != std::errc() || end != text_.data() + text_.size()) {
    return InvalidArgument("not an unsigned 64-bit integer: " + text_);
  }
  return value;
}

StatusOr<double> JsonValue::AsDouble() const {
  if (!is_number()) return InvalidArgument("expected a number");
  return std::strtod(text_.c_str(), nullptr);
}

JsonValue& JsonValue::Append(JsonValue value) {
  CHECK(is_array()) << "Append on a non-array JSON value";
  elements_.push_back(std::move(value));
  return elements_.back();
}

const JsonValue* JsonValue::Find(std::string_view key) const {
  for (const Member& member : members_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

JsonValue& JsonValue::Set(std::string key, JsonValue value) {
  CHECK(is_object()) << "Set on a non-object JSON value";
  for (Member& member : members_) {
    if (member.first == key) {
      member.second = std::move(value);
      return member.second;
    }
  }
  members_.emplace_back(std::move(key), std::move(value));
  return members_.back().second;
}

JsonValue& JsonValue::AddNew(std::string key, JsonValue value) {
  CHECK(is_object()) << "AddNew on a non-object JSON value";
  members_.emplace_back(std::move(key), std::move(value));
  return members_.back().second;
}

std::string JsonQuote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned char>(c));
          out += buffer;
        } else {
          out += c;  // UTF-8 passes through unchanged
        }
    }
  }
  out += '"';
  return out;
}

std::string JsonValue::Serialize() const {
  switch (kind_) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return bool_ ? "true" : "false";
    case Kind::kNumber:
      return text_;
    case Kind::kString:
      return JsonQuote(text_);
    case Kind::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < elements_.size(); ++i) {
        if (i > 0) out += ',';
        out += elements_[i].Serialize();
      }
      return out + "]";
    }
    case Kind::kObject: {
      std::string out = "{";
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i > 0) out += ',';
        out += JsonQuote(members_[i].first) + ":" + members_[i].second.Serialize();
      }
      return out + "}";
    }
  }
  return "null";
}

std::string JsonValue::SerializeIndented(int indent) const {
  std::string out;
  // Appends `value` whose first line is already placed, nested `depth` levels deep.
  auto append = [&](auto& self, const JsonValue& value, int depth) -> void {
    const bool array = value.is_array();
    if ((!array && !value.is_object()) ||
        (array ? value.elements_.empty() : value.members_.empty())) {
      out += value.Serialize();
      return;
    }
    const std::string inner(static_cast<size_t>(indent) * (depth + 1), ' ');
    out += array ? "[\n" : "{\n";
    const size_t count = array ? value.elements_.size() : value.members_.size();
    for (size_t i = 0; i < count; ++i) {
      out += inner;
      if (array) {
        self(self, value.elements_[i], depth + 1);
      } else {
        out += JsonQuote(value.members_[i].first) + ": ";
        self(self, value.members_[i].second, depth + 1);
      }
      out += i + 1 < count ? ",\n" : "\n";
    }
    out += std::string(static_cast<size_t>(indent) * depth, ' ') + (array ? "]" : "}");
  };
  append(append, *this, 0);
  return out;
}

// Recursive descent over the text; `pos_` is the next unread byte.
class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  StatusOr<JsonValue> ParseDocument() {
    SkipWhitespace();
    ASSIGN_OR_RETURN(JsonValue value, ParseValue(0));
    SkipWhitespace();
    if (pos_ != text_.size()) return Error("trailing characters after the JSON value");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 64;

  Status Error(std::string_view what) const {
    return InvalidArgument("JSON at byte " + std::to_string(pos_) + ": " + std::string(what));
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  void SkipWhitespace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }
  bool Consume(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) return false;
    pos_ += literal.size();
    return true;
  }

  StatusOr<JsonValue> ParseValue(int depth) {
    if (depth > kMaxDepth) return Error("nesting deeper than 64");
    const char c = Peek();
    if (c == '{') return ParseObject(depth);
    if (c == '[') return ParseArray(depth);
    if (c == '"') {
      ASSIGN_OR_RETURN(std::string s, ParseString());
      return JsonValue::String(std::move(s));
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber();
    if (Consume("true")) return JsonValue::Bool(true);
    if (Consume("false")) return JsonValue::Bool(false);
    if (Consume("null")) return JsonValue();
    return Error(AtEnd() ? "unexpected end of input" : "unexpected character");
  }

  StatusOr<JsonValue> ParseObject(int depth) {
    ++pos_;  // '{'
    JsonValue object = JsonValue::Object();
    std::set<std::string, std::less<>> keys;
    SkipWhitespace();
    if (Consume("}")) return object;
    while (true) {
      SkipWhitespace();
      if (Peek() != '"') return Error("expected a string key");
      ASSIGN_OR_RETURN(std::string key, ParseString());
      if (!keys.insert(key).second) return Error("duplicate key \"" + key + "\"");
      SkipWhitespace();
      if (!Consume(":")) return Error("expected ':'");
      SkipWhitespace();
      ASSIGN_OR_RETURN(JsonValue value, ParseValue(depth + 1));
      object.members_.emplace_back(std::move(key), std::move(value));
      SkipWhitespace();
      if (Consume("}")) return object;
      if (!Consume(",")) return Error("expected ',' or '}'");
    }
  }

  StatusOr<JsonValue> ParseArray(int depth) {
    ++pos_;  // '['
    JsonValue array = JsonValue::Array();
    SkipWhitespace();
    if (Consume("]")) return array;
    while (true) {
      SkipWhitespace();
      ASSIGN_OR_RETURN(JsonValue value, ParseValue(depth + 1));
      array.elements_.push_back(std::move(value));
      SkipWhitespace();
      if (Consume("]")) return array;
      if (!Consume(",")) return Error("expected ',' or ']'");
    }
  }

  StatusOr<JsonValue> ParseNumber() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t first = pos_;
      while (!AtEnd() && Peek() >= '0' && Peek() <= '9') ++pos_;
      return pos_ - first;
    };
    Consume("-");
    if (Peek() == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return Error("malformed number");
    }
    if (Consume(".") && digits() == 0) return Error("malformed number");
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (digits() == 0) return Error("malformed number");
    }
    JsonValue value;
    value.kind_ = JsonValue::Kind::kNumber;
    value.text_ = std::string(text_.substr(start, pos_ - start));
    return value;
  }

  StatusOr<uint32_t> ParseHex4() {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      code <<= 4;
      if (h >= '0' && h <= '9')
        code |= h - '0';
      else if (h >= 'a' && h <= 'f')
        code |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        code |= h - 'A' + 10;
      else
        return Error("bad hex digit in \\u escape");
    }
    return code;
  }

  static void AppendUtf8(uint32_t code, std::string& out) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  StatusOr<uint32_t> ParseEscapedCodePoint() {
    ASSIGN_OR_RETURN(uint32_t code, ParseHex4());
    if (code >= 0xDC00 && code <= 0xDFFF) return Error("lone low surrogate");
    if (code < 0xD800 || code > 0xDBFF) return code;
    if (!Consume("\\u")) return Error("high surrogate without its low half");
    ASSIGN_OR_RETURN(uint32_t low, ParseHex4());
    if (low < 0xDC00 || low > 0xDFFF) return Error("high surrogate without its low half");
    return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
  }

  StatusOr<std::string> ParseString() {
    ++pos_;  // '"'
    std::string out;
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (AtEnd()) return Error("unterminated string");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          ASSIGN_OR_RETURN(uint32_t code, ParseEscapedCodePoint());
          AppendUtf8(code, out);
          break;
        }
        default:
          return Error("bad escape in string");
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

StatusOr<JsonValue> ParseJson(std::string_view text) { return JsonParser(text).ParseDocument(); }

}  // namespace deepnet
