// Schedule files: every built-in schedule survives a round trip through the text format; a file
// of compute lines only gets its transfers; plain send / recv take the kind the passes imply;
// errors name file:line.
#include "parallel/schedule_file.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "parallel/simulator.h"
#include "parallel/validate.h"

namespace deepnet {
namespace {

void ExpectError(std::string_view text, const std::string& part) {
  const StatusOr<FileSchedule> schedule = ParseScheduleText(text, "my.schedule");
  ASSERT_FALSE(schedule.ok()) << text;
  EXPECT_NE(schedule.status().message().find(part), std::string::npos) << schedule.status();
}

TEST(ScheduleFileTest, EveryBuiltInScheduleRoundTrips) {
  for (const ScheduleKindInfo& info : AllScheduleKinds()) {
    for (const int p : {1, 2, 4}) {
      const ScheduleOptions options{
          .stages = p, .micro_batches = 4, .virtual_chunks = info.takes_virtual_chunks ? 2 : 1};
      if (!CheckScheduleOptions(info.kind, options).ok()) continue;
      SCOPED_TRACE(std::string(info.name) + " p=" + std::to_string(p));
      const std::vector<std::vector<Action>> ranks = BuildAllSchedules(info.kind, options).value();
      const ChunkPlacement placement = PlacementOf(info.kind, options).value();
      const std::string text = FormatScheduleFile(ranks, placement);
      const StatusOr<FileSchedule> parsed = ParseScheduleText(text, "roundtrip");
      ASSERT_TRUE(parsed.ok()) << parsed.status();
      EXPECT_EQ(parsed->placement, placement);
      EXPECT_EQ(parsed->micro_batches, 4);
      EXPECT_EQ(parsed->ranks, ranks);
    }
  }
}

TEST(ScheduleFileTest, ComputeOnlyFileGetsItsTransfersPosted) {
  // GPipe on 2 ranks, 2 micro-batches; model chunk 0 on rank 0, chunk 1 on rank 1.
  const std::string text =
      "# rank kind micro-batch chunk\n"
      "0 F 0 0\n0 F 1 0\n0 B 0 0\n0 B 1 0\n"
      "1 F 0 1\n1 F 1 1   # a comment after an action\n1 B 0 1\n1 B 1 1\n";
  const StatusOr<FileSchedule> schedule = ParseScheduleText(text, "gpipe.schedule");
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(schedule->placement, ChunkPlacement::Looped(2, 1));
  EXPECT_TRUE(
      ValidateSchedules(schedule->ranks, {.micro_batches = 2, .placement = schedule->placement})
          .ok());
  const StatusOr<Simulation> simulation =
      Simulate(schedule->ranks, SimulationCosts{}, schedule->placement);
  ASSERT_TRUE(simulation.ok()) << simulation.status();
  EXPECT_EQ(schedule->ranks[0].back().kind, ActionKind::kOptimizerStep);
}

TEST(ScheduleFileTest, PlainSendAndRecvTakeTheKindThePassesImply) {
  const std::string text =
      "0 F 0 0\n0 send 0 0\n1 recv 0 1\n1 F 0 1\n1 B 0 1\n1 send 0 1\n"
      "0 recv 0 0\n0 B 0 0\n0 W 0 0\n1 W 0 1\n";
  const StatusOr<FileSchedule> schedule = ParseScheduleText(text, "plain.schedule");
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  const std::vector<Action>& rank0 = schedule->ranks[0];
  EXPECT_EQ(rank0[1].kind, ActionKind::kSendActivation);
  EXPECT_EQ(rank0[2].kind, ActionKind::kRecvGradient);
  EXPECT_EQ(rank0[3].kind, ActionKind::kBackwardInput);  // the file has a W for it
  EXPECT_EQ(schedule->ranks[1][0].kind, ActionKind::kRecvActivation);
  EXPECT_EQ(schedule->ranks[1][3].kind, ActionKind::kSendGradient);
  EXPECT_TRUE(
      ValidateSchedules(schedule->ranks, {.micro_batches = 1, .placement = schedule->placement})
          .ok());
}

TEST(ScheduleFileTest, ErrorsNameFileAndLine) {
  ExpectError("0 F 0 0\n0 X 0 0\n", "my.schedule:2: unknown kind \"X\"");
  ExpectError("0 F 0 0\n1 F 1 0\n", "my.schedule:2: model chunk 0 runs on rank 0 (line 1), not 1");
  ExpectError("0 F zero 0\n", "my.schedule:1: micro-batch \"zero\" is not a number");
  ExpectError("0 F 0\n", "my.schedule:1: expected 4 fields");
  ExpectError("0 F 0 1\n", "model chunk 0 has no F, B or W line");
  // ZB-V's turn: chunks 1 and 2 of a 2-rank V are both on rank 1.
  ExpectError("0 F 0 0\n1 F 0 1\n1 send-act 0 1\n1 F 0 2\n0 F 0 3\n",
              "my.schedule:3: model chunks 1 and 2 are both on rank 1");
  ExpectError("", "my.schedule: no actions");
}

}  // namespace
}  // namespace deepnet
