// Usage text and per-command flag checks, generated from the command table.
#include "launcher/command_flags.h"

#include <gflags/gflags.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string_view>
#include <vector>

namespace deepnet {
namespace {

constexpr size_t kHelpColumn = 24;  // where flag help starts
constexpr size_t kLineWidth = 100;

constexpr std::string_view kSetFlag = "set";  // taken out of argv by main.cc, not a gflag

// The flag's default as its definition says, or "" when it says nothing worth printing (empty,
// 0, false: the help text says what they mean).
std::string DefaultOf(std::string_view name) {
  gflags::CommandLineFlagInfo info;
  if (name == kSetFlag || !gflags::GetCommandLineFlagInfo(std::string(name).c_str(), &info)) {
    return "";
  }
  if (info.type == "double") {
    const double value = std::strtod(info.default_value.c_str(), nullptr);
    if (value == 0) return "";
    char text[32];
    std::snprintf(text, sizeof(text), "%g", value);
    return text;
  }
  if (info.default_value == "0" || info.default_value == "false") return "";
  return info.default_value;
}

// `words` wrapped to kLineWidth, every line but the first indented to kHelpColumn.
void AppendWrapped(std::string_view words, std::string* out) {
  size_t column = kHelpColumn;
  bool first = true;
  while (!words.empty()) {
    const size_t end = words.find(' ');
    const std::string_view word = words.substr(0, end);
    words = end == std::string_view::npos ? std::string_view() : words.substr(end + 1);
    if (!first && column + 1 + word.size() > kLineWidth) {
      *out += "\n" + std::string(kHelpColumn, ' ');
      column = kHelpColumn;
    } else if (!first) {
      *out += ' ';
      ++column;
    }
    *out += word;
    column += word.size();
    first = false;
  }
  *out += '\n';
}

void AppendFlag(const FlagDoc& flag, bool with_default, std::string* out) {
  std::string left = "  --" + std::string(flag.name);
  if (!flag.value.empty()) left += " " + std::string(flag.value);
  if (left.size() + 2 > kHelpColumn) {
    *out += left + "\n" + std::string(kHelpColumn, ' ');
  } else {
    *out += left + std::string(kHelpColumn - left.size(), ' ');
  }
  std::string help(flag.help);
  const std::string default_value = with_default && flag.show_default ? DefaultOf(flag.name) : "";
  if (!default_value.empty()) help += " (default " + default_value + ")";
  AppendWrapped(help, out);
}

void AppendFlags(const Command& command, std::string* out) {
  for (const FlagDoc& flag : command.flags) AppendFlag(flag, /*with_default=*/true, out);
}

void AppendCommandFlags(const Command& command, std::string* out) {
  *out += "deepnet " + std::string(command.name) + ": " + std::string(command.summary) + "\n";
  AppendFlags(command, out);
}

void AppendLoggingFlags(std::string* out) {
  *out += "logging flags (every command; logs go to stderr):\n";
  for (const FlagDoc& flag : LoggingFlags()) AppendFlag(flag, /*with_default=*/false, out);
}

const FlagDoc* FindFlag(const std::vector<FlagDoc>& flags, std::string_view name) {
  for (const FlagDoc& flag : flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

bool IsBoolFlag(std::string_view name) {
  gflags::CommandLineFlagInfo info;
  return name != kSetFlag && gflags::GetCommandLineFlagInfo(std::string(name).c_str(), &info) &&
         info.type == "bool";
}

// `name` as the command accepts it (dashes read as underscores, as gflags does; a boolean's
// `no` prefix dropped), or nullptr.
const FlagDoc* AcceptedFlag(const Command& command, std::string* name) {
  for (char& c : *name) c = c == '-' ? '_' : c;
  for (const std::vector<FlagDoc>* flags : {&command.flags, &LoggingFlags()}) {
    if (const FlagDoc* flag = FindFlag(*flags, *name)) return flag;
    if (name->starts_with("no")) {
      const FlagDoc* flag = FindFlag(*flags, std::string_view(*name).substr(2));
      if (flag != nullptr && IsBoolFlag(flag->name)) return flag;
    }
  }
  return nullptr;
}

// The commands that take the flag `name`, e.g. "schedule, profile".
std::string CommandsTaking(std::string_view name) {
  std::string owners;
  for (const Command& command : Commands()) {
    if (FindFlag(command.flags, name) == nullptr) continue;
    owners += (owners.empty() ? "" : ", ") + std::string(command.name);
  }
  return owners;
}

}  // namespace

std::string UsageText() {
  std::string out =
      "usage: deepnet <command> [flags]\n"
      "       deepnet help [<command>]   (or: deepnet <command> --help)\n\ncommands:\n";
  for (const Command& command : Commands()) {
    std::string name = "  " + std::string(command.name);
    name.resize(13, ' ');
    out += name + std::string(command.summary) + "\n";
  }
  out += "\nA command takes only the flags listed for it; any other flag is an error.\n";
  for (const Command& command : Commands()) {
    out += "\n";
    AppendCommandFlags(command, &out);
  }
  out += "\n";
  AppendLoggingFlags(&out);
  return out;
}

std::string CommandUsage(const Command& command) {
  std::string out = "usage: deepnet " + std::string(command.name) + " [flags]\n\n";
  AppendCommandFlags(command, &out);
  out += "\n";
  AppendLoggingFlags(&out);
  return out;
}

Status CheckCommandFlags(const Command& command, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;  // gflags leaves the rest alone; main.cc rejects it
    if (arg.size() < 2 || arg[0] != '-') {
      return InvalidArgument("unexpected argument \"" + std::string(arg) + "\"");
    }
    const std::string_view spelled = arg.substr(arg[1] == '-' ? 2 : 1);
    const size_t equals = spelled.find('=');
    std::string name(spelled.substr(0, equals));
    const FlagDoc* flag = AcceptedFlag(command, &name);
    if (flag == nullptr) {
      const std::string owners = CommandsTaking(name);
      std::string message = owners.empty() ? "unknown flag --" + name
                                           : "--" + name + " is a flag of " + owners + ", not of " +
                                                 std::string(command.name);
      message += "; `deepnet " + std::string(command.name) + "` takes:\n";
      AppendFlags(command, &message);
      return InvalidArgument(message + "and the logging flags (deepnet help)");
    }
    const bool takes_value = name == flag->name && !IsBoolFlag(flag->name);
    if (takes_value && equals == std::string_view::npos && ++i >= argc) {
      return InvalidArgument("--" + name + " needs a value (" +
                             std::string(flag->value.empty() ? "VALUE" : flag->value) + ")");
    }
  }
  return OkStatus();
}

Status CheckCommandTable() {
  for (const Command& command : Commands()) {
    for (const FlagDoc& flag : command.flags) {
      gflags::CommandLineFlagInfo info;
      if (flag.name != kSetFlag &&
          !gflags::GetCommandLineFlagInfo(std::string(flag.name).c_str(), &info)) {
        return Internal("the command table gives `" + std::string(command.name) + "` the flag --" +
                        std::string(flag.name) + ", which no DEFINE_* defines");
      }
    }
  }
  return OkStatus();
}

}  // namespace deepnet
