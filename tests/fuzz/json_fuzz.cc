// Fuzzes the strict JSON parser behind checkpoint state files (train/checkpoint.cc reads
// state.json with it), safetensors headers and their metadata values: ParseJson, then every
// accessor those readers call.
//
// Properties: no crash or sanitizer report (nesting is bounded, so no stack overflow); a failure
// is InvalidArgument naming the byte; every number's exact conversions agree with each other;
// Find returns each key's own member (keys are unique); and a parsed value round-trips:
// Serialize, parse again, Serialize gives the same text.
#include "runtime/json.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FLAGS_minloglevel = 2;
  return 0;
}

namespace {

using deepnet::JsonValue;
using deepnet::StatusOr;

void Walk(const JsonValue& value, int depth) {
  FUZZ_CHECK(depth <= 65, "nesting deeper than the parser allows");
  switch (value.kind()) {
    case JsonValue::Kind::kNumber: {
      const StatusOr<int64_t> i = value.AsInt64();
      const StatusOr<uint64_t> u = value.AsUint64();
      FUZZ_CHECK(value.AsDouble().ok(), "a number that is not a double: " + value.text());
      // ("-0" is an int64 but not a uint64: AsUint64 refuses every minus sign.)
      if (i.ok() && *i >= 0 && !value.text().starts_with('-')) {
        FUZZ_CHECK(u.ok() && *u == static_cast<uint64_t>(*i), value.text());
      }
      if (u.ok() && *u <= INT64_MAX) FUZZ_CHECK(i.ok(), value.text());
      break;
    }
    case JsonValue::Kind::kArray:
      for (const JsonValue& element : value.elements()) Walk(element, depth + 1);
      break;
    case JsonValue::Kind::kObject:
      for (const JsonValue::Member& member : value.members()) {
        FUZZ_CHECK(value.Find(member.first) == &member.second, "duplicate key " + member.first);
        Walk(member.second, depth + 1);
      }
      break;
    default:
      FUZZ_CHECK(!value.AsInt64().ok() && !value.AsUint64().ok() && !value.AsDouble().ok(),
                 "a non-number converts to a number");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deepnet;
  StatusOr<JsonValue> json = ParseJson(fuzz::AsText(data, size));
  if (!json.ok()) {
    FUZZ_CHECK(json.status().code() == StatusCode::kInvalidArgument, json.status().ToString());
    FUZZ_CHECK(json.status().message().starts_with("JSON at byte "), json.status().message());
    return 0;
  }
  Walk(*json, 0);
  // The fields state.json holds, read as ReadTrainingState reads them.
  for (const char* key : {"step", "seed", "vocab_size", "pad_id", "config", "data_position"}) {
    if (const JsonValue* field = json->Find(key)) {
      (void)field->AsInt64();
      (void)field->AsUint64();
      if (const JsonValue* batch = field->Find("batch")) (void)batch->AsInt64();
    }
  }
  const std::string text = json->Serialize();
  StatusOr<JsonValue> again = ParseJson(text);
  FUZZ_CHECK(again.ok(), "serialized JSON does not parse: " + again.status().ToString());
  FUZZ_CHECK(again->Serialize() == text, "the round trip changed the text: " + text);
  return 0;
}
