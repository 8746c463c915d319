// Loading, checking and printing the run configuration (configs/deepnet.proto).
//
// A config is built in layers, each merged over the previous one:
//   1. the embedded defaults (configs/defaults.pbtxt),
//   2. the user's file (text format),
//   3. each --set override in order: a text-format fragment (`model { d_model: 128 }`) or a dotted
//      assignment (`train.max_steps=5`, also `train.max_steps: 5`).
// A field written in a layer, even as 0 or false, replaces the value below it. Errors name where
// the text came from: `file.pbtxt:7:3: message` (1-based line and column) or `--set #2: message`
// (overrides are numbered from 1).
#pragma once

#include <google/protobuf/text_format.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "configs/deepnet.pb.h"
#include "runtime/status.h"

namespace deepnet::config {

// Where each field of a loaded config was written: the user file and the overrides, in merge
// order. Lets ValidateConfig point at the line that set an offending value.
class ParseInfo {
 public:
  ParseInfo();
  ~ParseInfo();
  ParseInfo(const ParseInfo&) = delete;
  ParseInfo& operator=(const ParseInfo&) = delete;

  // Adds a layer; `label` is "file.pbtxt" or "--set #k". `has_positions` is false when line and
  // column mean nothing to the user (a dotted override, rewritten before parsing). Returns the
  // tree the parser fills.
  google::protobuf::TextFormat::ParseInfoTree* AddSource(std::string label, bool has_positions);

  // "file.pbtxt:7:3" or "--set #2" for the last layer that wrote the field at `dotted_path`
  // ("model.heads"); "" when no layer did (the value is a default).
  std::string Locate(std::string_view dotted_path) const;

 private:
  struct Source;
  std::vector<std::unique_ptr<Source>> sources_;
};

// The embedded defaults, as text format.
std::string_view DefaultConfigText();

// The defaults alone, parsed (always valid).
RunConfig DefaultConfig();

// Defaults, then the file at `path`, then `overrides`; validated. NotFound when the file does
// not exist, InvalidArgument (every problem, one per line) when it does not parse or validate.
StatusOr<RunConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides);

// Like LoadConfig for text already in memory (a config saved in a checkpoint); `source_name`
// labels its errors.
StatusOr<RunConfig> LoadConfigFromText(std::string_view text, const std::string& source_name,
                                       const std::vector<std::string>& overrides);

// Semantic checks (ranges, divisibility, combinations). `locations` may be null; with it,
// messages start with the place that set the offending value. Every problem, one per line.
Status ValidateConfig(const RunConfig& config, const ParseInfo* locations);

// Text format of every set field, for logs and checkpoints; LoadConfigFromText reads it back.
std::string ConfigToText(const RunConfig& config);

}  // namespace deepnet::config
