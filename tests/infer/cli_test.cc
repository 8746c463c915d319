// The translate, score, eval and export commands of the real `deepnet` binary, on a tiny model
// trained for a few steps on the first verses of the corpus: output formats, line order,
// consistency between score and eval, errors as messages with exit code 1, and --device strict
// (the test device whose memory the host cannot read: a host dereference would crash the command)
// giving the CPU's output exactly.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/atomic_file.h"
#include "tests/train/corpus_run.h"
#include "tests/runtime/test_files.h"
#include "text/file_io.h"

namespace deepnet {
namespace {

std::string Slurp(const std::string& path) {
  StatusOr<std::string> text = ReadWholeFile(path);
  return text.ok() ? *text : "";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class InferCliTest : public ::testing::Test {
 protected:
  // One tiny run for the whole suite: prepare (200-piece tokenizer) and 3 training steps.
  static void SetUpTestSuite() {
    dir_ = new TempDir("infer_cli");
    const std::string d = dir_->path();
    ASSERT_TRUE(
        ReplaceFileAtomically(d + "/train.tsv", CorpusHead(DEEPNET_SOURCE_DIR, "train.tsv", 400))
            .ok());
    ASSERT_TRUE(
        ReplaceFileAtomically(d + "/valid.tsv", CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", 12))
            .ok());
    const std::string config = CorpusRunConfigText(d, 3);
    ASSERT_TRUE(ReplaceFileAtomically(d + "/run.pbtxt", config).ok());
    ASSERT_EQ(Run("prepare --config " + d + "/run.pbtxt"), 0) << Slurp(d + "/stderr.txt");
    ASSERT_EQ(Run("train --config " + d + "/run.pbtxt"), 0) << Slurp(d + "/stderr.txt");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // Runs `deepnet <args>` (stdout, stderr into files of the suite's directory); the exit code.
  static int Run(const std::string& args, const std::string& stdin_file = "") {
    const std::string d = dir_->path();
    std::string command = std::string(DEEPNET_BINARY) + " " + args + " > " + d + "/stdout.txt 2> " +
                          d + "/stderr.txt";
    if (!stdin_file.empty()) command += " < " + stdin_file;
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  static std::string Out() { return Slurp(dir_->path() + "/stdout.txt"); }
  static std::string Err() { return Slurp(dir_->path() + "/stderr.txt"); }
  static std::string Checkpoint() { return " --checkpoint " + dir_->path() + "/ck"; }
  static std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = dir_->path() + "/" + name;
    EXPECT_TRUE(ReplaceFileAtomically(path, contents).ok());
    return path;
  }

  static TempDir* dir_;
};

TempDir* InferCliTest::dir_ = nullptr;

struct ScoreLine {
  int64_t line, tokens;
  double nll, ppl;
};

// Parses score's output; the summary goes into *mean_nll and *tokens.
std::vector<ScoreLine> ParseScores(const std::string& out, double* mean_nll, int64_t* tokens) {
  const std::regex pair(
      R"(\{"line": ?(\d+), ?"tokens": ?(\d+), ?"nll": ?([0-9.]+), ?"ppl": ?([0-9.e+]+)\})");
  const std::regex summary(R"(\{"mean_nll": ?([0-9.]+), ?"tokens": ?(\d+)\})");
  std::vector<ScoreLine> scores;
  const std::vector<std::string> lines = Lines(out);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (i + 1 < lines.size()) {
      EXPECT_TRUE(std::regex_match(lines[i], m, pair)) << lines[i];
      if (m.empty()) continue;
      scores.push_back({std::stoll(m[1]), std::stoll(m[2]), std::stod(m[3]), std::stod(m[4])});
    } else {
      EXPECT_TRUE(std::regex_match(lines[i], m, summary)) << lines[i];
      if (m.empty()) continue;
      *mean_nll = std::stod(m[1]);
      *tokens = std::stoll(m[2]);
    }
  }
  return scores;
}

TEST_F(InferCliTest, ScorePrintsJsonLinesWithFileLineNumbers) {
  const std::string valid = CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", 3);
  const std::vector<std::string> rows = Lines(valid);
  const std::string pairs = Write("pairs.tsv", rows[0] + "\n\n" + rows[1] + "\n" + rows[2] + "\n");
  ASSERT_EQ(Run("score" + Checkpoint() + " --input " + pairs), 0) << Err();
  double mean_nll = 0;
  int64_t tokens = 0;
  const std::vector<ScoreLine> scores = ParseScores(Out(), &mean_nll, &tokens);
  ASSERT_EQ(scores.size(), 3u) << Out();
  EXPECT_EQ(scores[0].line, 1);
  EXPECT_EQ(scores[1].line, 3);  // the blank line 2 is skipped but counted
  EXPECT_EQ(scores[2].line, 4);
  double weighted = 0;
  int64_t total = 0;
  for (const ScoreLine& s : scores) {
    EXPECT_GT(s.tokens, 1);
    EXPECT_GT(s.nll, 0.5);  // three training steps: far from fitting anything
    EXPECT_NEAR(s.ppl, std::exp(s.nll), 1e-4 * s.ppl);
    weighted += s.nll * static_cast<double>(s.tokens);
    total += s.tokens;
  }
  EXPECT_EQ(tokens, total);
  EXPECT_NEAR(mean_nll, weighted / static_cast<double>(total), 1e-5);

  // The same pairs as a two-column file give the same numbers.
  std::string two_columns;
  for (const std::string& row : rows) two_columns += row.substr(row.find('\t') + 1) + "\n";
  const std::string pairs2 = Write("pairs2.tsv", two_columns);
  ASSERT_EQ(
      Run("score" + Checkpoint() + " --input " + pairs2 + " --source_column 1 --target_column 2"),
      0)
      << Err();
  double mean_nll2 = 0;
  int64_t tokens2 = 0;
  ParseScores(Out(), &mean_nll2, &tokens2);
  EXPECT_EQ(tokens2, tokens);
  EXPECT_DOUBLE_EQ(mean_nll2, mean_nll);
}

TEST_F(InferCliTest, TranslateKeepsLineOrderFromFileAndStdin) {
  std::string input;
  for (const std::string& row : Lines(CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", 5))) {
    const size_t first = row.find('\t'), second = row.find('\t', first + 1);
    input += row.substr(first + 1, second - first - 1) + "\n";
  }
  input += "\n";  // an empty line still gets a (possibly empty) translation line
  const std::string file = Write("input.txt", input);
  for (const char* beam : {"1", "3"}) {
    ASSERT_EQ(Run(std::string("translate") + Checkpoint() + " --input " + file + " --beam " + beam +
                  " --batch 2"),
              0)
        << Err();
    const std::string from_file = Out();
    EXPECT_EQ(Lines(from_file).size(), 6u) << from_file;
    EXPECT_NE(Err().find("sentences/s"), std::string::npos) << Err();
    ASSERT_EQ(Run(std::string("translate") + Checkpoint() + " --beam " + beam + " --batch 2", file),
              0)
        << Err();
    EXPECT_EQ(Out(), from_file);
  }
  // Blocking repeated trigrams still gives one line per input line.
  ASSERT_EQ(Run("translate" + Checkpoint() + " --input " + file + " --beam 2 --no_repeat_ngram 3"),
            0)
      << Err();
  EXPECT_EQ(Lines(Out()).size(), 6u) << Out();
}

TEST_F(InferCliTest, EvalReportsLossBleuAndSamples) {
  ASSERT_EQ(Run("eval" + Checkpoint() + " --limit 6 --beam 2 --samples 2"), 0) << Err();
  const std::string out = Out();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(6 sentences \| valid loss ([0-9.]+))")))
      << out;
  const double eval_loss = std::stod(m[1]);
  EXPECT_NE(out.find("BLEU = "), std::string::npos) << out;
  EXPECT_NE(out.find("beam 2"), std::string::npos) << out;
  size_t samples = 0;
  for (size_t at = out.find("hypothesis:"); at != std::string::npos;
       at = out.find("hypothesis:", at + 1)) {
    ++samples;
  }
  EXPECT_EQ(samples, 2u) << out;

  // The validation loss is the token-weighted score of the same pairs.
  const std::string valid = Write("valid6.tsv", CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", 6));
  ASSERT_EQ(Run("score" + Checkpoint() + " --input " + valid), 0) << Err();
  double mean_nll = 0;
  int64_t tokens = 0;
  ParseScores(Out(), &mean_nll, &tokens);
  EXPECT_NEAR(eval_loss, mean_nll, 1e-4);
}

// The translation input of the first `count` validation pairs: their source column.
std::string ValidSources(int count) {
  std::string input;
  for (const std::string& row : Lines(CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", count))) {
    const size_t first = row.find('\t'), second = row.find('\t', first + 1);
    input += row.substr(first + 1, second - first - 1) + "\n";
  }
  return input;
}

// eval's output without what depends on the clock (seconds, sentences/s).
std::string WithoutTimes(const std::string& out) {
  std::string text = std::regex_replace(out, std::regex(R"([0-9.]+ s\))"), "T s)");
  return std::regex_replace(text, std::regex(R"([0-9.]+ sentences/s)"), "T sentences/s");
}

TEST_F(InferCliTest, TranslateOnStrictDeviceEqualsCpu) {
  const std::string file = Write("strict_input.txt", ValidSources(6) + "\n");
  for (const std::string flags :
       {" --beam 1 --batch 4", " --beam 3 --batch 2", " --beam 2 --no_repeat_ngram 2"}) {
    ASSERT_EQ(Run("translate" + Checkpoint() + " --input " + file + flags), 0) << Err();
    const std::string cpu = Out();
    ASSERT_EQ(Lines(cpu).size(), 7u) << cpu;
    ASSERT_EQ(Run("translate" + Checkpoint() + " --input " + file + flags + " --device strict"), 0)
        << Err();
    EXPECT_EQ(Out(), cpu) << flags;
    EXPECT_NE(Err().find("strict"), std::string::npos) << Err();  // the log names the device
  }
  // --device cpu is the default.
  ASSERT_EQ(Run("translate" + Checkpoint() + " --input " + file + " --device cpu"), 0) << Err();
  const std::string explicit_cpu = Out();
  ASSERT_EQ(Run("translate" + Checkpoint() + " --input " + file), 0) << Err();
  EXPECT_EQ(Out(), explicit_cpu);
}

TEST_F(InferCliTest, ScoreAndEvalOnStrictDeviceEqualCpu) {
  const std::string pairs =
      Write("strict_pairs.tsv", CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", 8));
  ASSERT_EQ(Run("score" + Checkpoint() + " --input " + pairs), 0) << Err();
  const std::string cpu_scores = Out();
  ASSERT_EQ(Lines(cpu_scores).size(), 9u) << cpu_scores;
  ASSERT_EQ(Run("score" + Checkpoint() + " --input " + pairs + " --device strict"), 0) << Err();
  EXPECT_EQ(Out(), cpu_scores);

  const std::string eval = "eval" + Checkpoint() + " --limit 6 --beam 2 --samples 3";
  ASSERT_EQ(Run(eval), 0) << Err();
  const std::string cpu_eval = WithoutTimes(Out());
  EXPECT_NE(cpu_eval.find("BLEU = "), std::string::npos) << cpu_eval;
  ASSERT_EQ(Run(eval + " --device strict"), 0) << Err();
  EXPECT_EQ(WithoutTimes(Out()), cpu_eval);
}

TEST_F(InferCliTest, ExportOnStrictDeviceWritesTheCpuBytes) {
  const std::string cpu_file = dir_->path() + "/cpu.safetensors";
  const std::string strict_file = dir_->path() + "/strict.safetensors";
  ASSERT_EQ(Run("export" + Checkpoint() + " --out " + cpu_file), 0) << Err();
  ASSERT_EQ(Run("export" + Checkpoint() + " --out " + strict_file + " --device strict"), 0)
      << Err();
  const std::string cpu = Slurp(cpu_file);
  EXPECT_GT(cpu.size(), 4096u);
  EXPECT_TRUE(cpu == Slurp(strict_file)) << "the strict export differs from the CPU's";
}

TEST_F(InferCliTest, UnknownOrUnavailableDeviceIsAnError) {
  const std::string input = Write("dev.txt", "In the beginning.\n");
  EXPECT_EQ(Run("translate" + Checkpoint() + " --input " + input + " --device tpu"), 1);
  EXPECT_NE(Err().find("--device"), std::string::npos) << Err();
  EXPECT_NE(Err().find("cpu, cuda or strict"), std::string::npos) << Err();
  EXPECT_EQ(
      Run("export" + Checkpoint() + " --out " + dir_->path() + "/x.safetensors" + " --device nope"),
      1);
  EXPECT_NE(Err().find("unknown device"), std::string::npos) << Err();
  // Without a usable GPU (a CPU-only build, no GPU), --device cuda is an error message, not a
  // crash.
  const int code =
      Run("score" + Checkpoint() + " --input " +
          Write("dev.tsv", CorpusHead(DEEPNET_SOURCE_DIR, "valid.tsv", 1)) + " --device cuda");
  if (code != 0) {
    EXPECT_EQ(code, 1);
    EXPECT_NE(Err().find("cuda"), std::string::npos) << Err();
  }
}

TEST_F(InferCliTest, ErrorsAreMessagesWithExitCodeOne) {
  const std::string input = Write("ok.txt", "In the beginning.\n");
  EXPECT_EQ(Run("translate --checkpoint " + dir_->path() + "/none --input " + input), 1);
  EXPECT_NE(Err().find("does not exist"), std::string::npos) << Err();

  EXPECT_EQ(
      Run("translate" + Checkpoint() + " --data_dir " + dir_->path() + "/none --input " + input),
      1);
  EXPECT_NE(Err().find("spm.model"), std::string::npos) << Err();

  const std::string bad = Write("bad.txt", "fine\nnot \xC3\x28 utf-8\n");
  EXPECT_EQ(Run("translate" + Checkpoint() + " --input " + bad), 1);
  EXPECT_NE(Err().find("input line 2"), std::string::npos) << Err();
  EXPECT_NE(Err().find("UTF-8"), std::string::npos) << Err();

  EXPECT_EQ(Run("translate" + Checkpoint() + " --input " + input + " --beam 0"), 1);
  EXPECT_EQ(Run("eval" + Checkpoint() + " --no_repeat_ngram -1"), 1);
  EXPECT_NE(Err().find("--no_repeat_ngram must be >= 0"), std::string::npos) << Err();
  EXPECT_EQ(Run("score" + Checkpoint()), 1);
  EXPECT_NE(Err().find("--input"), std::string::npos) << Err();

  const std::string one_column = Write("one.tsv", "just one column\n");
  EXPECT_EQ(Run("score" + Checkpoint() + " --input " + one_column), 1);
  EXPECT_NE(Err().find("one.tsv:1:"), std::string::npos) << Err();
}

}  // namespace
}  // namespace deepnet
