// The `deepnet` command table through the real binary: each command takes only its own flags (an
// unknown flag, or one of another command, is a usage error naming the command and listing its
// flags), per-command help, and launcher/README.md holding exactly `deepnet help`.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "runtime/atomic_file.h"
#include "tests/runtime/test_files.h"

namespace deepnet {
namespace {

std::string Slurp(const std::string& path) {
  StatusOr<std::string> text = ReadWholeFile(path);
  return text.ok() ? *text : "";
}

struct Result {
  int exit_code = -1;
  std::string out, err;
};

class CommandTableTest : public ::testing::Test {
 protected:
  // Runs `deepnet <args>` from the source tree (configs/ paths resolve).
  Result Run(const std::string& args) {
    const std::string out = dir_.path() + "/stdout.txt", err = dir_.path() + "/stderr.txt";
    const std::string command = std::string("cd ") + DEEPNET_SOURCE_DIR + " && " + DEEPNET_BINARY +
                                " " + args + " > " + out + " 2> " + err;
    const int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = Slurp(out);
    result.err = Slurp(err);
    return result;
  }

  TempDir dir_{"command_table_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())};
};

TEST_F(CommandTableTest, FlagOfAnotherCommandIsAUsageError) {
  const Result result = Run("eval --checkpoint runs/none --stages 2");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("deepnet eval: --stages is a flag of schedule, profile, not of eval"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("--checkpoint DIR"), std::string::npos) << "lists eval's flags";
  EXPECT_NE(result.err.find("--samples K"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("--stages P"), std::string::npos) << "lists only eval's flags";
}

TEST_F(CommandTableTest, UnknownFlagIsAUsageError) {
  for (const char* args :
       {"train --config configs/tiny.pbtxt --no_such_flag=3",
        "train --config configs/tiny.pbtxt -no_such_flag", "config --flagfile=/dev/null"}) {
    const Result result = Run(args);
    EXPECT_EQ(result.exit_code, 2) << args << "\n" << result.err;
    EXPECT_NE(result.err.find("unknown flag --"), std::string::npos) << args << "\n" << result.err;
  }
  const Result result = Run("train --config configs/tiny.pbtxt --no_such_flag=3");
  EXPECT_NE(result.err.find("deepnet train: unknown flag --no_such_flag; `deepnet train` takes:"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("--resume"), std::string::npos) << "lists train's flags";
}

TEST_F(CommandTableTest, SetBelongsToTheCommandsThatLoadAConfig) {
  const Result result = Run("translate --checkpoint runs/none --set train.max_steps=1");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(
      result.err.find("deepnet translate: --set is a flag of prepare, train, config, profile"),
      std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find(", not of translate;"), std::string::npos) << result.err;
}

TEST_F(CommandTableTest, ValuesAndSpellingsGflagsAccepts) {
  // A dash for an underscore, `--flag=value`, a negative value, a boolean's `no` prefix, and a
  // logging flag: all accepted as before.
  Result result = Run("schedule --stages 2 --micro-batches=3 --schedule 1f1b --v=0");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("1f1b: 2 stages, 3 micro-batches"), std::string::npos) << result.out;
  result = Run("config --config configs/tiny.pbtxt --noresume --set train.max_steps=7");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("max_steps: 7"), std::string::npos) << result.out;
  result = Run("translate --checkpoint runs/none --beam -1");
  EXPECT_EQ(result.exit_code, 1) << "a value, checked by the command: " << result.err;
  EXPECT_NE(result.err.find("--beam must be >= 1"), std::string::npos) << result.err;
}

// Not a flag but a config name: the old train.micro_batches still works, with a warning.
TEST_F(CommandTableTest, OldConfigNameWarnsAndNamesTheNewOne) {
  const Result result = Run("config --config configs/tiny.pbtxt --set train.micro_batches=2");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("accumulation_steps: 2"), std::string::npos) << result.out;
  EXPECT_NE(result.err.find("train.micro_batches is deprecated: write train.accumulation_steps"),
            std::string::npos)
      << result.err;
}

TEST_F(CommandTableTest, MissingValueAndStrayArgumentsAreUsageErrors) {
  Result result = Run("export --out x.safetensors --checkpoint");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("deepnet export: --checkpoint needs a value (DIR)"), std::string::npos)
      << result.err;
  result = Run("config --config configs/tiny.pbtxt extra");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("unexpected argument \"extra\""), std::string::npos) << result.err;
}

TEST_F(CommandTableTest, PerCommandHelp) {
  const Result flag = Run("schedule --help");
  EXPECT_EQ(flag.exit_code, 0) << flag.err;
  EXPECT_NE(flag.out.find("usage: deepnet schedule [flags]"), std::string::npos) << flag.out;
  EXPECT_NE(flag.out.find("--micro_batches M"), std::string::npos) << flag.out;
  EXPECT_NE(flag.out.find("(default 1f1b)"), std::string::npos) << "defaults from the flags";
  EXPECT_EQ(flag.out.find("--config"), std::string::npos) << "only schedule's flags";
  const Result word = Run("help schedule");
  EXPECT_EQ(word.exit_code, 0);
  EXPECT_EQ(word.out, flag.out);
  const Result unknown = Run("help nosuchcommand");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command \"nosuchcommand\""), std::string::npos);
}

TEST_F(CommandTableTest, HelpListsEveryCommandAndTheReadmeHoldsIt) {
  const Result help = Run("help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const char* command : {"prepare", "train", "export", "config", "translate", "score", "eval",
                              "schedule", "profile"}) {
    EXPECT_NE(help.out.find("\ndeepnet " + std::string(command) + ": "), std::string::npos)
        << command;
  }
  const Result bare = Run("");
  EXPECT_EQ(bare.exit_code, 2) << "no command";
  EXPECT_EQ(bare.err, help.out);

  const std::string readme = Slurp(std::string(DEEPNET_SOURCE_DIR) + "/launcher/README.md");
  const std::string begin = "<!-- deepnet help: begin -->\n```\n";
  const std::string end = "```\n<!-- deepnet help: end -->";
  const size_t from = readme.find(begin), to = readme.find(end);
  ASSERT_NE(from, std::string::npos) << "launcher/README.md lacks " << begin;
  ASSERT_NE(to, std::string::npos) << "launcher/README.md lacks " << end;
  EXPECT_EQ(readme.substr(from + begin.size(), to - from - begin.size()), help.out)
      << "launcher/README.md is behind the command table: run "
         "scripts/update_launcher_readme.sh";
}

}  // namespace
}  // namespace deepnet
