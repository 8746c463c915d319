// Builds a RunConfig from the embedded defaults, a text-format file and --set overrides.
//
// Each layer is parsed on its own into an empty RunConfig (a field written twice in one layer is
// an error) and then merged with Message::MergeFrom. Every scalar field is `optional`, so a value
// written as 0 or false carries presence and replaces the default beneath it.
#include "configs/config.h"

#include <google/protobuf/io/tokenizer.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <utility>

#include "configs/config_util.h"

namespace deepnet::config {

namespace pb = google::protobuf;

struct ParseInfo::Source {
  std::string label;
  bool has_positions;
  pb::TextFormat::ParseInfoTree tree;
};

ParseInfo::ParseInfo() = default;
ParseInfo::~ParseInfo() = default;

pb::TextFormat::ParseInfoTree* ParseInfo::AddSource(std::string label, bool has_positions) {
  sources_.push_back(std::make_unique<Source>());
  sources_.back()->label = std::move(label);
  sources_.back()->has_positions = has_positions;
  return &sources_.back()->tree;
}

std::string ParseInfo::Locate(std::string_view dotted_path) const {
  const std::vector<const pb::FieldDescriptor*> path = ResolveFieldPath(dotted_path);
  if (path.empty()) return "";
  // The last layer that wrote the field is the one whose value survived the merge.
  for (auto source = sources_.rbegin(); source != sources_.rend(); ++source) {
    const pb::TextFormat::ParseInfoTree* tree = &(*source)->tree;
    for (size_t i = 0; i + 1 < path.size() && tree != nullptr; ++i) {
      tree = tree->GetTreeForNested(path[i], -1);
    }
    if (tree == nullptr) continue;
    const pb::TextFormat::ParseLocation location = tree->GetLocation(path.back(), -1);
    if (location.line < 0) continue;
    if (!(*source)->has_positions) return (*source)->label;
    return (*source)->label + ":" + std::to_string(location.line + 1) + ":" +
           std::to_string(location.column + 1);
  }
  return "";
}

namespace {

// The enum values a field of this name accepts, searched over every config section ("type" is
// both optimizer.type and lr_schedule.type, so each candidate is named).
std::string EnumChoicesForField(const std::string& field_name) {
  std::vector<std::string> choices;
  const pb::Descriptor* root = RunConfig::descriptor();
  for (int i = 0; i < root->field_count(); ++i) {
    const pb::FieldDescriptor* field = root->field(i)->message_type()->FindFieldByName(field_name);
    if (field == nullptr || field->enum_type() == nullptr) continue;
    choices.push_back(EnumChoices(field->enum_type()) + " (" + root->field(i)->name() + "." +
                      field_name + ")");
  }
  if (choices.size() == 1) return choices[0].substr(0, choices[0].rfind(" ("));
  return JoinNames(choices, " or ");
}

// Finds `<literal 1>"<name 1>"<literal 2>"<name 2>"...` in `message` and returns the names, or
// an empty vector; `*at` gets the offset of the match (the first one that matches in full). Names
// are one or more of [A-Za-z0-9_] (the first may also hold dots when `first_dotted`). Written out
// by hand rather than with std::regex: libstdc++'s matcher recurses once per character and
// overflowed the stack on a long name in a config (tests/fuzz/regressions/config/).
std::vector<std::string> FindQuotedNames(std::string_view message,
                                         std::initializer_list<std::string_view> literals,
                                         bool first_dotted = false, size_t* at = nullptr) {
  const auto is_name_char = [](char c, bool dotted) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (dotted && c == '.');
  };
  const std::string_view first = *literals.begin();
  for (size_t start = message.find(first); start != std::string_view::npos;
       start = message.find(first, start + 1)) {
    std::vector<std::string> names;
    size_t pos = start;
    for (const std::string_view literal : literals) {
      if (message.substr(pos, literal.size()) != literal) break;
      pos += literal.size();
      if (pos >= message.size() || message[pos] != '"') break;
      const size_t name_begin = ++pos;
      const bool dotted = first_dotted && names.empty();
      while (pos < message.size() && is_name_char(message[pos], dotted)) ++pos;
      if (pos == name_begin || pos >= message.size() || message[pos] != '"') break;
      names.emplace_back(message.substr(name_begin, pos - name_begin));
      ++pos;
    }
    if (names.size() == literals.size()) {
      if (at != nullptr) *at = start;
      return names;
    }
  }
  return {};
}

// Adds a hint to the parser messages that name a mistyped field or enum value:
// `Message type "T" has no field named "f"` and `Unknown enumeration value of "V" for field "f"`.
std::string Explain(const std::string& message) {
  const std::vector<std::string> field =
      FindQuotedNames(message, {"Message type ", " has no field named "}, /*first_dotted=*/true);
  if (!field.empty()) {
    const pb::Descriptor* type =
        pb::DescriptorPool::generated_pool()->FindMessageTypeByName(field[0]);
    if (type == nullptr) return message;
    const std::vector<std::string> names = FieldNames(type);
    const std::string guess = ClosestName(field[1], names);
    if (!guess.empty()) return message + " Did you mean \"" + guess + "\"?";
    return message + " Its fields: " + JoinNames(names) + ".";
  }
  const std::vector<std::string> value =
      FindQuotedNames(message, {"Unknown enumeration value of ", " for field "});
  if (!value.empty()) {
    const std::string choices = EnumChoicesForField(value[1]);
    if (!choices.empty()) return message + " Expected one of " + choices + ".";
  }
  return message;
}

// A position in text as the protobuf tokenizer counts it: 0-based line, 0-based column with
// tabs advancing to the next multiple of 8.
struct TextPosition {
  int line = 0;
  int column = 0;
};

TextPosition PositionOf(std::string_view text, size_t offset) {
  TextPosition position;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++position.line;
      position.column = 0;
    } else {
      position.column =
          text[i] == '\t' ? position.column + 8 - position.column % 8 : position.column + 1;
    }
  }
  return position;
}

size_t OffsetOf(std::string_view text, TextPosition position) {
  size_t offset = 0;
  for (int line = 0; line < position.line && offset < text.size(); ++offset) {
    if (text[offset] == '\n') ++line;
  }
  for (int column = 0; column < position.column && offset < text.size(); ++offset) {
    if (text[offset] == '\n') break;
    column = text[offset] == '\t' ? column + 8 - column % 8 : column + 1;
  }
  return offset;
}

bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The parser reports an unknown field or enum value after consuming it, at the next token; this
// moves the position back to the last whole-word `name` at or before it.
TextPosition PointAtName(std::string_view text, TextPosition reported, const std::string& name) {
  size_t end = OffsetOf(text, reported);
  while (end > 0) {
    const size_t found = text.substr(0, end).rfind(name);
    if (found == std::string_view::npos) break;
    const size_t after = found + name.size();
    const bool whole_word = (found == 0 || !IsNameChar(text[found - 1])) &&
                            (after >= text.size() || !IsNameChar(text[after]));
    if (whole_word) return PositionOf(text, found);
    end = found;
  }
  return reported;
}

// The quoted name in messages about a field or value that is unknown or written twice: the first
// of `has no field named "f"`, `Unknown enumeration value of "V"`, `Non-repeated field "f"`.
std::string NamedToken(const std::string& message) {
  std::string name;
  size_t first = std::string::npos;
  for (const std::string_view literal :
       {"has no field named ", "Unknown enumeration value of ", "Non-repeated field "}) {
    size_t at = 0;
    const std::vector<std::string> names = FindQuotedNames(message, {literal}, false, &at);
    if (!names.empty() && at < first) {
      first = at;
      name = names[0];
    }
  }
  return name;
}

// Collects the parser's errors as "label:line:column: message" (1-based line and column).
class ErrorList : public pb::io::ErrorCollector {
 public:
  ErrorList(std::string label, bool has_positions, std::string_view text)
      : label_(std::move(label)), has_positions_(has_positions), text_(text) {}

  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    std::string where = label_;
    if (has_positions_ && line >= 0) {
      TextPosition position{line, column};
      const std::string name = NamedToken(message);
      if (!name.empty()) position = PointAtName(text_, position, name);
      where += ":" + std::to_string(position.line + 1) + ":" + std::to_string(position.column + 1);
    }
    errors_.push_back(where + ": " + Explain(message));
  }

  Status ToStatus() const {
    if (errors_.empty()) return InvalidArgument(label_ + ": does not parse");
    return InvalidArgument(JoinNames(errors_, "\n"));
  }

 private:
  std::string label_;
  bool has_positions_;
  std::string_view text_;
  std::vector<std::string> errors_;
};

// train.micro_batches is the old name of train.accumulation_steps: a layer that writes it still
// loads (old configs, the config text inside old checkpoints), with a warning naming the new field.
Status RenameDeprecatedFields(const ParseInfo& info, RunConfig* layer) {
  if (!layer->train().has_micro_batches()) return OkStatus();
  const std::string where = info.Locate("train.micro_batches");
  TrainConfig* train = layer->mutable_train();
  if (train->has_accumulation_steps()) {
    return InvalidArgument(where + ": train.micro_batches is the old name of "
                           "train.accumulation_steps; write only train.accumulation_steps");
  }
  LOG(WARNING) << where << ": train.micro_batches is deprecated: write train.accumulation_steps "
               << "(the same setting: batches whose gradients are summed per optimizer step)";
  train->set_accumulation_steps(train->micro_batches());
  train->clear_micro_batches();
  return OkStatus();
}

// Parses one layer on its own and merges it over `config`, recording where each field was set.
Status MergeLayer(const std::string& text, std::string label, bool has_positions, RunConfig* config,
                  ParseInfo* info) {
  ErrorList errors(label, has_positions, text);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(info->AddSource(std::move(label), has_positions));
  RunConfig layer;
  if (!parser.ParseFromString(text, &layer)) return errors.ToStatus();
  RETURN_IF_ERROR(RenameDeprecatedFields(*info, &layer));
  config->MergeFrom(layer);
  return OkStatus();
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

// A dotted override: "train.max_steps=5" or "train.max_steps: 5".
struct Assignment {
  std::string path;
  std::string value;
};

// The assignment `text` spells, or nullopt for a text-format fragment. `name=value` is always an
// assignment; `name: value` only with a dot in the name (`model: {...}` is text format).
std::optional<Assignment> ParseAssignment(std::string_view text) {
  text = Trim(text);
  size_t end = 0;
  while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) ||
                               text[end] == '_' || text[end] == '.')) {
    ++end;
  }
  if (end == 0) return std::nullopt;
  const std::string_view path = text.substr(0, end);
  const std::string_view rest = Trim(text.substr(end));
  if (rest.empty()) return std::nullopt;
  const bool dotted = path.find('.') != std::string_view::npos;
  if (rest[0] != '=' && !(rest[0] == ':' && dotted)) return std::nullopt;
  return Assignment{std::string(path), std::string(Trim(rest.substr(1)))};
}

// A bare string value becomes a quoted text-format string; a quoted one is kept as written.
std::string QuoteString(const std::string& value) {
  if (!value.empty() && (value[0] == '"' || value[0] == '\'')) return value;
  std::string quoted = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') quoted += '\\';
    if (c == '\n') {
      quoted += "\\n";
      continue;
    }
    quoted += c;
  }
  return quoted + "\"";
}

std::string UnknownFieldMessage(const std::string& name, const std::string& parent,
                                const pb::Descriptor* type) {
  const std::vector<std::string> names = FieldNames(type);
  const std::string guess = ClosestName(name, names);
  std::string message = "no field \"" + name + "\" in " + (parent.empty() ? "the config" : parent);
  if (!guess.empty()) return message + "; did you mean \"" + guess + "\"?";
  return message + "; its fields: " + JoinNames(names);
}

// "train.max_steps" = "5" -> "train { max_steps: 5 }".
StatusOr<std::string> AssignmentToText(const Assignment& assignment) {
  if (assignment.value.empty()) return InvalidArgument("no value after the field name");
  const pb::Descriptor* type = RunConfig::descriptor();
  std::string opening, closing, parent;
  std::string_view rest = assignment.path;
  while (true) {
    const size_t dot = rest.find('.');
    const std::string name(rest.substr(0, dot));
    const pb::FieldDescriptor* field = type->FindFieldByName(name);
    if (field == nullptr) return InvalidArgument(UnknownFieldMessage(name, parent, type));
    parent += (parent.empty() ? "" : ".") + name;
    if (dot == std::string_view::npos) {
      if (field->message_type() != nullptr) {
        return InvalidArgument("\"" + parent + "\" is a section; set one of its fields, e.g. " +
                               parent + "." + field->message_type()->field(0)->name() + "=...");
      }
      const bool is_string = field->type() == pb::FieldDescriptor::TYPE_STRING;
      const std::string value = is_string ? QuoteString(assignment.value) : assignment.value;
      return opening + name + ": " + value + closing;
    }
    if (field->message_type() == nullptr) {
      return InvalidArgument("\"" + parent + "\" is a value, not a section");
    }
    opening += name + " { ";
    closing += " }";
    type = field->message_type();
    rest = rest.substr(dot + 1);
  }
}

// Merges override number `number` (1-based) in either form.
Status MergeOverride(const std::string& text, int number, RunConfig* config, ParseInfo* info) {
  const std::string label = "--set #" + std::to_string(number);
  const std::optional<Assignment> assignment = ParseAssignment(text);
  if (!assignment) return MergeLayer(text, label, /*has_positions=*/true, config, info);
  // Columns of the rewritten text mean nothing to the user: name the override instead.
  const std::string dotted_label = label + " (" + std::string(Trim(text)) + ")";
  StatusOr<std::string> fragment = AssignmentToText(*assignment);
  if (!fragment.ok()) return fragment.status().WithContext(dotted_label);
  return MergeLayer(*fragment, dotted_label, /*has_positions=*/false, config, info);
}

// The embedded defaults set both stacks; the stack an architecture lacks is zeroed unless the
// user wrote it (then validation explains the conflict).
void ClearUnusedStack(const ParseInfo& info, RunConfig* config) {
  ModelConfig* model = config->mutable_model();
  if (model->architecture() == ModelConfig::DECODER_ONLY &&
      info.Locate("model.encoder_layers").empty()) {
    model->set_encoder_layers(0);
  }
  if (model->architecture() == ModelConfig::ENCODER_ONLY &&
      info.Locate("model.decoder_layers").empty()) {
    model->set_decoder_layers(0);
  }
}

}  // namespace

RunConfig DefaultConfig() {
  RunConfig config;
  CHECK(pb::TextFormat::ParseFromString(std::string(DefaultConfigText()), &config))
      << "the embedded configs/defaults.pbtxt does not parse";
  return config;
}

StatusOr<RunConfig> LoadConfigFromText(std::string_view text, const std::string& source_name,
                                       const std::vector<std::string>& overrides) {
  RunConfig config = DefaultConfig();
  ParseInfo info;
  RETURN_IF_ERROR(
      MergeLayer(std::string(text), source_name, /*has_positions=*/true, &config, &info));
  for (size_t i = 0; i < overrides.size(); ++i) {
    RETURN_IF_ERROR(MergeOverride(overrides[i], static_cast<int>(i) + 1, &config, &info));
  }
  ClearUnusedStack(info, &config);
  RETURN_IF_ERROR(ValidateConfig(config, &info));
  return config;
}

StatusOr<RunConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return NotFound("config file not found: " + path);
  }
  if (std::filesystem::is_directory(path, error)) {
    return InvalidArgument("config path is a directory, not a file: " + path);
  }
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  if (!file.good() && !file.eof()) return InvalidArgument("cannot read config file: " + path);
  return LoadConfigFromText(text.str(), path, overrides);
}

std::string ConfigToText(const RunConfig& config) {
  std::string text;
  CHECK(pb::TextFormat::PrintToString(config, &text));
  return text;
}

}  // namespace deepnet::config
