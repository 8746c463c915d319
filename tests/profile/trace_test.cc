// Chrome trace writer (parallel/trace.h) and SVG timeline (profile/timeline_svg.h) on simulated
// schedules: one event / box per pass with the right names, ranks, times and metadata.
#include "parallel/trace.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "parallel/schedule.h"
#include "parallel/simulator.h"
#include "profile/timeline_svg.h"

namespace deepnet {
namespace {

Simulation Simulated(ScheduleKind kind, int stages, int micro_batches) {
  ScheduleOptions options;
  options.stages = stages;
  options.micro_batches = micro_batches;
  StatusOr<std::vector<std::vector<Action>>> ranks = BuildAllSchedules(kind, options);
  EXPECT_TRUE(ranks.ok()) << ranks.status();
  StatusOr<Simulation> simulation = Simulate(*ranks, SimulationCosts{});
  EXPECT_TRUE(simulation.ok()) << simulation.status();
  return *simulation;
}

int CountOf(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(TraceTest, NamesAreEscaped) {
  TraceWriter trace;
  trace.NameProcess(0, "a\"b\\c\nd\x01", 0);
  EXPECT_NE(trace.ToJson().find(R"("args":{"name":"a\"b\\c\nd\u0001"})"), std::string::npos);
}

TEST(TraceTest, OneEventPerComputeAction) {
  const Simulation simulation = Simulated(ScheduleKind::kOneFOneB, 2, 3);
  SimulationTraceOptions options;
  options.us_per_second = 1e3;
  const TraceWriter trace = SimulationTrace(simulation, options);
  int compute = 0, forwards = 0;
  for (const RankTimeline& rank : simulation.ranks) {
    for (const TimedAction& t : rank.actions) {
      compute += IsCommunication(t.action.kind) ? 0 : 1;
      forwards += t.action.kind == ActionKind::kForward ? 1 : 0;
    }
  }
  int compute_events = 0;
  for (const TraceEvent& e : trace.events()) {
    if (e.tid == kComputeLane) ++compute_events;
    EXPECT_GE(e.duration_us, 0.0);
    EXPECT_TRUE(e.pid == 0 || e.pid == 1);
  }
  EXPECT_EQ(compute_events, compute);
  EXPECT_EQ(forwards, 6);
  // Rank 1's first forward starts after rank 0's (1 unit = 1000 us) and lasts one unit.
  for (const TraceEvent& e : trace.events()) {
    if (e.pid == 1 && e.name == "F0") {
      EXPECT_DOUBLE_EQ(e.start_us, 1000.0);
      EXPECT_DOUBLE_EQ(e.duration_us, 1000.0);
      ASSERT_FALSE(e.args.empty());
      EXPECT_EQ(e.args[0].key, "micro_batch");
      EXPECT_EQ(std::get<int64_t>(e.args[0].value), 0);
    }
  }
  // Rank 1 waits for rank 0's activation: a comm event on lane 1.
  bool waited = false;
  for (const TraceEvent& e : trace.events()) {
    waited |= e.pid == 1 && e.tid == kCommunicationLane && e.name.find("recv-act") == 0;
  }
  EXPECT_TRUE(waited);
}

TEST(TraceTest, JsonHasMetadataAndCompleteEvents) {
  const Simulation simulation = Simulated(ScheduleKind::kZeroBubbleH1, 2, 2);
  SimulationTraceOptions options;
  options.stage_of_rank = {0, 1};
  options.communication = false;
  const TraceWriter trace = SimulationTrace(simulation, options);
  const std::string json = trace.ToJson();
  EXPECT_EQ(json.rfind("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", 0), 0u);
  EXPECT_NE(json.find("\"rank 1 (stage 1)\""), std::string::npos);
  EXPECT_NE(json.find("\"name\":\"W1\",\"cat\":\"backward-weight\",\"ph\":\"X\",\"pid\":1"),
            std::string::npos);
  EXPECT_EQ(CountOf(json, "\"ph\":\"X\""), static_cast<int>(trace.events().size()));
  EXPECT_EQ(CountOf(json, "\"tid\":1,\"ts\""), 0);  // no communication events asked for
  EXPECT_EQ(CountOf(json, "{"), CountOf(json, "}"));
}

TEST(TraceTest, AppendMergesRanksAndWriteFileRoundTrips) {
  TraceWriter rank0, rank1;
  rank0.NameRank(0, 0);
  rank1.NameRank(1, 1);
  rank0.Add(ActionEvent({ActionKind::kForward, 2, 0, -1, -1}, 0, 10.0, 5.5));
  rank1.Add(ActionEvent({ActionKind::kRecvActivation, 2, 0, 0, 3}, 1, 12.0, 1.0));
  rank0.Append(rank1);
  ASSERT_EQ(rank0.events().size(), 2u);
  EXPECT_EQ(rank0.events()[1].tid, kCommunicationLane);
  EXPECT_EQ(rank0.events()[1].category, "comm");

  const std::string path = (std::filesystem::temp_directory_path() /
                            ("trace_test_" + std::to_string(getpid()) + ".json"))
                               .string();
  ASSERT_TRUE(rank0.WriteFile(path).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), rank0.ToJson());
  EXPECT_NE(text.str().find("\"ts\":10.000,\"dur\":5.500"), std::string::npos);
  EXPECT_NE(text.str().find("\"args\":{\"micro_batch\":2,\"chunk\":0,\"peer\":0}"),
            std::string::npos);
  std::filesystem::remove(path);
}

TEST(TraceClockTest, Monotonic) {
  TraceClock clock;
  const double a = clock.NowUs();
  const double b = clock.NowUs();
  EXPECT_GE(a, 0.0);
  EXPECT_GE(b, a);
}

TEST(SvgTimelineTest, OneBoxPerPassAndARowPerRank) {
  const Simulation simulation = Simulated(ScheduleKind::kZeroBubbleH1, 4, 8);
  SvgTimelineOptions options;
  options.title = "zb-h1 <4 stages>";
  options.unit_costs = true;
  const std::string svg = RenderTimelineSvg(simulation, options);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("zb-h1 &lt;4 stages&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">rank 3</text>"), std::string::npos);
  // 4 ranks × 8 micro-batches × (F, B, W) plus the optimizer step per rank; stage 0 runs each W
  // right after its B, fused into one backward.
  EXPECT_EQ(CountOf(svg, "<title>F"), 32);
  EXPECT_EQ(CountOf(svg, "<title>W"), 24);
  EXPECT_EQ(CountOf(svg, "<title>optimizer-step"), 4);
  EXPECT_EQ(CountOf(svg, "<title>reduce-grads"), 0);  // reduce_s 0: waiting only, drawn idle
  EXPECT_NE(svg.find("bubble 11.1%"), std::string::npos);
  EXPECT_NE(svg.find(">B input grad</text>"), std::string::npos);
  EXPECT_NE(svg.find(">B backward</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">reduce / optimizer</text>"), std::string::npos);  // legend: kinds drawn

  const std::string one_f_one_b =
      RenderTimelineSvg(Simulated(ScheduleKind::kOneFOneB, 2, 2), SvgTimelineOptions{});
  EXPECT_NE(one_f_one_b.find(">B backward</text>"), std::string::npos);
  EXPECT_EQ(one_f_one_b.find(">W weight grad</text>"), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
}

// The first problem of a text that is not well-formed XML: a '<' or '&' that starts no tag or
// entity, a closing tag that does not match, an unclosed element. Empty when well-formed.
std::string XmlProblem(const std::string& xml) {
  std::vector<std::string> open;
  for (size_t i = 0; i < xml.size(); ++i) {
    if (xml[i] == '&') {
      const size_t end = xml.find(';', i);
      const std::string entity = xml.substr(i, end == std::string::npos ? 1 : end - i + 1);
      if (entity != "&lt;" && entity != "&gt;" && entity != "&amp;" && entity != "&quot;") {
        return "stray '&' at " + std::to_string(i);
      }
    } else if (xml[i] == '>') {
      return "stray '>' at " + std::to_string(i);
    } else if (xml[i] == '<') {
      const size_t end = xml.find('>', i);
      if (end == std::string::npos) return "unclosed tag at " + std::to_string(i);
      const std::string tag = xml.substr(i + 1, end - i - 1);
      if (tag.find_first_of("<&") != std::string::npos) return "bad tag at " + std::to_string(i);
      const size_t quotes = static_cast<size_t>(std::count(tag.begin(), tag.end(), '"'));
      if (quotes % 2 != 0) return "unbalanced quotes in tag at " + std::to_string(i);
      const bool closing = tag.front() == '/';
      const bool empty = tag.back() == '/';
      const std::string name = tag.substr(closing ? 1 : 0, tag.find_first_of(" /", 1) - closing);
      if (closing) {
        if (open.empty() || open.back() != name) return "mismatched </" + name + ">";
        open.pop_back();
      } else if (!empty) {
        open.push_back(name);
      }
      i = end;
    }
  }
  return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

TEST(SvgTimelineTest, LongTitleWithMarkupStaysWellFormed) {
  SvgTimelineOptions options;
  for (int i = 0; i < 200; ++i) options.title += "<b> & \"quoted\" ";
  const std::string svg = RenderTimelineSvg(Simulated(ScheduleKind::kOneFOneB, 2, 4), options);
  EXPECT_EQ(XmlProblem(svg), "");
  EXPECT_NE(svg.find("&lt;b&gt; &amp; &quot;quoted&quot; &lt;b&gt;"), std::string::npos);
  EXPECT_EQ(CountOf(svg, "&lt;b&gt;"), 200);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_NE(XmlProblem("<svg><text>a < b</text></svg>"), "");  // the checker itself can fail
  EXPECT_NE(XmlProblem("<svg><text>a</svg>"), "");
}

}  // namespace
}  // namespace deepnet
