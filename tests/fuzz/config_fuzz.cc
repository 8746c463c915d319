// Fuzzes the run-config loader: the text-format file and the `--set` overrides
// (config::LoadConfigFromText, which LoadConfig and the launcher's LoadRunConfig end in).
//
// Input: the config file's text, then each --set value, separated by NUL bytes (a command-line
// argument cannot hold one): "model { heads: 2 }\0train.max_steps=5\0data { shuffle_buffer: 1 }".
// At most 8 overrides are used.
//
// Properties: no crash, sanitizer report or CHECK failure; a failure has a message; a config that
// loads survives the round trip a checkpoint makes (ConfigToText, then LoadConfigFromText) with
// every field equal.
#include <google/protobuf/util/message_differencer.h>

#include "configs/config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FLAGS_minloglevel = 2;  // glog: errors only
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deepnet;
  constexpr size_t kMaxOverrides = 8;
  std::vector<std::string> parts = fuzz::Split(fuzz::AsText(data, size), '\0');
  const std::string text = std::move(parts[0]);
  std::vector<std::string> overrides;
  for (size_t i = 1; i < parts.size() && overrides.size() < kMaxOverrides; ++i) {
    overrides.push_back(std::move(parts[i]));
  }

  StatusOr<config::RunConfig> loaded = config::LoadConfigFromText(text, "fuzz.pbtxt", overrides);
  if (!loaded.ok()) {
    FUZZ_CHECK(!loaded.status().message().empty(), "an error without a message");
    return 0;
  }
  const std::string saved = config::ConfigToText(*loaded);
  StatusOr<config::RunConfig> reloaded = config::LoadConfigFromText(saved, "state.json", {});
  FUZZ_CHECK(reloaded.ok(), "a loaded config does not load back from its text: " +
                                reloaded.status().ToString() + "\n--- text:\n" + saved);
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*loaded, *reloaded),
             "the config changed in the text round trip:\n" + saved + "\n--- reloaded:\n" +
                 config::ConfigToText(*reloaded));
  return 0;
}
