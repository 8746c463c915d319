// Schedule files: parsing, the derived placement, the implied transfer kinds and groups.
#include "parallel/schedule_file.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "parallel/schedules/compute_order.h"
#include "runtime/atomic_file.h"

namespace deepnet {
namespace {

// One parsed line. `kind` is unset for plain send / recv until the pass order resolves it.
struct Line {
  int number = 0;
  int rank = 0;
  std::string word;  // the kind as written, lower case
  int micro_batch = 0;
  int chunk = 0;  // model chunk
};

std::string Lower(std::string_view text) {
  std::string lower;
  for (char ch : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return lower;
}

bool IsKnownWord(const std::string& word) {
  static const std::set<std::string> words = {
      "f", "b", "w", "send", "recv", "send-act", "recv-act", "send-grad", "recv-grad", "-"};
  return words.contains(word);
}

class Parser {
 public:
  explicit Parser(std::string_view name) : name_(name) {}

  Status ParseLines(std::string_view text);
  StatusOr<FileSchedule> Build();

 private:
  Status Fail(int line, const std::string& message) const {
    return InvalidArgument(std::string(name_) + ":" + std::to_string(line) + ": " + message);
  }
  StatusOr<ChunkPlacement> Placement();
  // The action of `line` on its rank; `forwarded` holds the (chunk, micro-batch) forwards seen.
  StatusOr<Action> ToAction(const Line& line, const ChunkPlacement& placement,
                            const std::set<std::tuple<int, int, int>>& forwarded) const;

  std::string_view name_;
  std::vector<Line> lines_;
  int ranks_ = 0;
  int micro_batches_ = 0;
  int chunks_ = 0;
  bool has_transfers_ = false;
  std::set<std::tuple<int, int, int>> weights_;  // (rank, chunk, micro-batch) with a W line
};

Status Parser::ParseLines(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string raw;
  for (int number = 1; std::getline(in, raw); ++number) {
    const size_t hash = raw.find('#');
    std::istringstream fields(hash == std::string::npos ? raw : raw.substr(0, hash));
    std::vector<std::string> words;
    for (std::string word; fields >> word;) words.push_back(word);
    if (words.empty()) continue;
    Line line{.number = number};
    auto number_at = [&](size_t i, const char* what, int& out) -> Status {
      try {
        size_t used = 0;
        out = std::stoi(words[i], &used);
        if (used != words[i].size() || out < 0) throw std::invalid_argument(what);
      } catch (const std::exception&) {
        return Fail(number, std::string(what) + " \"" + words[i] +
                                "\" is not a number >= 0 (fields: rank kind micro-batch chunk)");
      }
      return OkStatus();
    };
    RETURN_IF_ERROR(number_at(0, "rank", line.rank));
    if (words.size() < 2) return Fail(number, "a rank without a kind");
    line.word = Lower(words[1]);
    if (!IsKnownWord(line.word)) {
      return Fail(number, "unknown kind \"" + words[1] +
                              "\"; expected F, B, W, send, recv, send-act, recv-act, send-grad, "
                              "recv-grad or - (end of group)");
    }
    const size_t expected = line.word == "-" ? 2 : 4;
    if (words.size() != expected) {
      return Fail(number, "expected " + std::to_string(expected) +
                              " fields (rank kind micro-batch chunk), got " +
                              std::to_string(words.size()));
    }
    if (line.word != "-") {
      RETURN_IF_ERROR(number_at(2, "micro-batch", line.micro_batch));
      RETURN_IF_ERROR(number_at(3, "chunk", line.chunk));
      micro_batches_ = std::max(micro_batches_, line.micro_batch + 1);
      chunks_ = std::max(chunks_, line.chunk + 1);
      if (line.word == "w") weights_.insert({line.rank, line.chunk, line.micro_batch});
      if (line.word.starts_with("send") || line.word.starts_with("recv")) has_transfers_ = true;
    }
    if (line.rank >= 1024) return Fail(number, "rank " + words[0] + " is above 1023");
    ranks_ = std::max(ranks_, line.rank + 1);
    lines_.push_back(std::move(line));
  }
  if (lines_.empty()) return InvalidArgument(std::string(name_) + ": no actions");
  return OkStatus();
}

StatusOr<ChunkPlacement> Parser::Placement() {
  std::vector<int> rank_of(chunks_, -1);
  std::vector<int> first_line(chunks_, 0);
  for (const Line& line : lines_) {
    if (line.word != "f" && line.word != "b" && line.word != "w") continue;
    int& rank = rank_of[line.chunk];
    if (rank < 0) {
      rank = line.rank;
      first_line[line.chunk] = line.number;
    } else if (rank != line.rank) {
      return Fail(line.number, "model chunk " + std::to_string(line.chunk) + " runs on rank " +
                                   std::to_string(rank) + " (line " +
                                   std::to_string(first_line[line.chunk]) + "), not " +
                                   std::to_string(line.rank));
    }
  }
  for (int k = 0; k < chunks_; ++k) {
    if (rank_of[k] < 0) {
      return InvalidArgument(std::string(name_) + ": model chunk " + std::to_string(k) +
                             " has no F, B or W line (chunks 0.." + std::to_string(chunks_ - 1) +
                             " are named)");
    }
  }
  StatusOr<ChunkPlacement> placement = ChunkPlacement::FromRanks(ranks_, rank_of);
  if (!placement.ok()) return placement.status().WithContext(std::string(name_));
  return placement;
}

StatusOr<Action> Parser::ToAction(const Line& line, const ChunkPlacement& placement,
                                  const std::set<std::tuple<int, int, int>>& forwarded) const {
  const int k = line.chunk;
  Action action{.micro_batch = line.micro_batch};
  std::string word = line.word;
  const bool after_forward = forwarded.contains({line.rank, k, line.micro_batch});
  if (word == "send") word = after_forward ? "send-act" : "send-grad";
  if (word == "recv") word = after_forward ? "recv-grad" : "recv-act";
  // A send after the forward is the activation, unless the backward ran too: then the gradient.
  if (line.word == "send" && after_forward &&
      forwarded.contains({line.rank, -1 - k, line.micro_batch})) {
    word = "send-grad";
  }
  if (word == "f") action.kind = ActionKind::kForward;
  if (word == "b") {
    action.kind = weights_.contains({line.rank, k, line.micro_batch}) ? ActionKind::kBackwardInput
                                                                      : ActionKind::kBackward;
  }
  if (word == "w") action.kind = ActionKind::kBackwardWeight;
  const bool up = word == "send-act" || word == "recv-grad";  // talks to chunk k+1
  if (word == "send-act") action.kind = ActionKind::kSendActivation;
  if (word == "recv-act") action.kind = ActionKind::kRecvActivation;
  if (word == "send-grad") action.kind = ActionKind::kSendGradient;
  if (word == "recv-grad") action.kind = ActionKind::kRecvGradient;
  if (placement.RankOf(k) != line.rank) {
    return Fail(line.number, "model chunk " + std::to_string(k) + " is on rank " +
                                 std::to_string(placement.RankOf(k)) + ", not " +
                                 std::to_string(line.rank));
  }
  action.chunk = placement.LocalOf(k);
  if (IsCommunication(action.kind)) {
    const int neighbour = up ? k + 1 : k - 1;
    if (neighbour < 0 || neighbour >= placement.num_chunks()) {
      return Fail(line.number, ToString(action) + ": model chunk " + std::to_string(k) +
                                   " has no neighbour that way");
    }
    action.peer = placement.RankOf(neighbour);
    if (action.peer == line.rank) {
      return Fail(line.number, "model chunks " + std::to_string(std::min(k, neighbour)) + " and " +
                                   std::to_string(std::max(k, neighbour)) + " are both on rank " +
                                   std::to_string(line.rank) +
                                   ": they hand over without a send or recv");
    }
  }
  return action;
}

StatusOr<FileSchedule> Parser::Build() {
  ASSIGN_OR_RETURN(ChunkPlacement placement, Placement());
  FileSchedule schedule{.placement = placement, .micro_batches = micro_batches_};
  schedule.ranks.resize(ranks_);
  // (rank, chunk, mb) with a forward seen; (rank, −1−chunk, mb) with a backward seen.
  std::set<std::tuple<int, int, int>> passes;
  std::vector<int> next_group(ranks_, 0);
  std::vector<bool> open_group(ranks_, false);
  for (const Line& line : lines_) {
    std::vector<Action>& actions = schedule.ranks[line.rank];
    if (line.word == "-") {
      if (open_group[line.rank]) ++next_group[line.rank];
      open_group[line.rank] = false;
      continue;
    }
    ASSIGN_OR_RETURN(Action action, ToAction(line, placement, passes));
    if (action.kind == ActionKind::kForward)
      passes.insert({line.rank, line.chunk, line.micro_batch});
    if (action.kind == ActionKind::kBackward || action.kind == ActionKind::kBackwardInput) {
      passes.insert({line.rank, -1 - line.chunk, line.micro_batch});
    }
    if (IsCommunication(action.kind)) {
      action.group = next_group[line.rank];
      open_group[line.rank] = true;
    } else if (open_group[line.rank]) {
      ++next_group[line.rank];
      open_group[line.rank] = false;
    }
    actions.push_back(action);
  }
  if (!has_transfers_) {
    // Compute only: post every transfer when its producer ends (unit costs).
    std::vector<std::vector<schedules::Step>> steps(ranks_);
    for (int r = 0; r < ranks_; ++r) {
      for (const Action& action : schedule.ranks[r]) steps[r].push_back({action});
    }
    const ScheduleOptions options{
        .stages = ranks_, .micro_batches = micro_batches_, .pass_costs = {}};
    StatusOr<std::vector<std::vector<Action>>> posted =
        schedules::PostAtProducerTime(steps, options, placement);
    if (!posted.ok()) return posted.status().WithContext(std::string(name_));
    schedule.ranks = std::move(posted).value();
  }
  for (std::vector<Action>& actions : schedule.ranks) {
    actions.push_back({.kind = ActionKind::kReduceGradients});
    actions.push_back({.kind = ActionKind::kOptimizerStep});
  }
  return schedule;
}

}  // namespace

StatusOr<FileSchedule> ParseScheduleText(std::string_view text, std::string_view name) {
  Parser parser(name);
  RETURN_IF_ERROR(parser.ParseLines(text));
  return parser.Build();
}

StatusOr<FileSchedule> ReadScheduleFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadWholeFile(path));
  return ParseScheduleText(text, path);
}

std::vector<std::vector<Action>> WithoutOptimizerStep(std::vector<std::vector<Action>> ranks) {
  for (std::vector<Action>& actions : ranks) {
    while (!actions.empty() && (actions.back().kind == ActionKind::kOptimizerStep ||
                                actions.back().kind == ActionKind::kReduceGradients)) {
      actions.pop_back();
    }
  }
  return ranks;
}

std::string FormatScheduleFile(const std::vector<std::vector<Action>>& ranks,
                               const ChunkPlacement& placement) {
  std::string text = "# rank kind micro-batch model-chunk (parallel/schedule_file.h)\n";
  for (int r = 0; r < static_cast<int>(ranks.size()); ++r) {
    const Action* previous = nullptr;
    for (const Action& action : ranks[r]) {
      if (action.kind == ActionKind::kReduceGradients ||
          action.kind == ActionKind::kOptimizerStep) {
        continue;
      }
      if (previous != nullptr && IsCommunication(previous->kind) && IsCommunication(action.kind) &&
          previous->group != action.group) {
        text += std::to_string(r) + " -\n";
      }
      std::string kind;
      switch (action.kind) {
        case ActionKind::kForward:
          kind = "F";
          break;
        case ActionKind::kBackward:
        case ActionKind::kBackwardInput:
          kind = "B";
          break;
        case ActionKind::kBackwardWeight:
          kind = "W";
          break;
        default:
          kind = std::string(ActionKindName(action.kind));
          break;
      }
      text += std::to_string(r) + " " + kind + " " + std::to_string(action.micro_batch) + " " +
              std::to_string(placement.ModelChunk(r, action.chunk)) + "\n";
      previous = &action;
    }
  }
  return text;
}

}  // namespace deepnet
