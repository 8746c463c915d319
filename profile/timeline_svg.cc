// SVG timeline (see the header). Geometry in pixels; time maps linearly onto the plot width.
#include "profile/timeline_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace deepnet {
namespace {

constexpr int kLeftPx = 70;
constexpr int kRightPx = 20;
constexpr int kTopPx = 52;
constexpr int kRowPx = 26;
constexpr int kRowGapPx = 6;
constexpr int kAxisPx = 34;
constexpr int kLegendPx = 26;
constexpr double kCharPx = 6.6;  // width of one 11 px digit

// printf into the end of `out`, whatever the length (a title or a name may be long).
__attribute__((format(printf, 2, 3))) void Appendf(std::string& out, const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int length = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  if (length > 0) {
    const size_t old_size = out.size();
    out.resize(old_size + static_cast<size_t>(length) + 1);  // vsnprintf writes a terminating NUL
    std::vsnprintf(out.data() + old_size, static_cast<size_t>(length) + 1, format, again);
    out.resize(old_size + static_cast<size_t>(length));
  }
  va_end(again);
}

// Text for element content and attribute values.
std::string XmlEscape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '&') {
      out += "&amp;";
    } else if (c == '"') {
      out += "&quot;";
    } else {
      out += c;
    }
  }
  return out;
}

struct Rgb {
  int r, g, b;
};

Rgb BaseColour(ActionKind kind) {
  switch (kind) {
    case ActionKind::kForward:
      return {78, 121, 167};
    case ActionKind::kBackward:
    case ActionKind::kBackwardInput:
      return {242, 142, 43};
    case ActionKind::kBackwardWeight:
      return {89, 161, 79};
    default:
      return {148, 148, 148};
  }
}

// Local chunk c > 0 is drawn lighter (mixed with white).
std::string Colour(ActionKind kind, int chunk) {
  const Rgb base = BaseColour(kind);
  const double keep = std::pow(0.6, std::min(chunk, 3));
  auto mix = [&](int channel) { return static_cast<int>(255 - (255 - channel) * keep); };
  std::string text;
  Appendf(text, "#%02x%02x%02x", mix(base.r), mix(base.g), mix(base.b));
  return text;
}

// 1, 2 or 5 times a power of ten, giving about `ticks` intervals over `span`.
double NiceStep(double span, int ticks) {
  const double raw = span / ticks;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0}) {
    if (m * power >= raw) return m * power;
  }
  return 10.0 * power;
}

struct AxisUnit {
  double scale;  // axis value per second
  const char* name;
};

AxisUnit ChooseAxisUnit(double makespan_s, bool unit_costs) {
  if (unit_costs) return {1.0, "time units"};
  if (makespan_s < 1e-2) return {1e6, "us"};
  if (makespan_s < 10.0) return {1e3, "ms"};
  return {1.0, "s"};
}

std::string Label(const Action& action) {
  std::string label = std::to_string(action.micro_batch);
  if (action.chunk > 0) label += "." + std::to_string(action.chunk);
  return label;
}

void AppendBox(const TimedAction& timed, double x0, double px_per_s, double y, std::string& svg) {
  const Action& a = timed.action;
  const double x = x0 + timed.start_s * px_per_s;
  const double w = std::max(0.5, (timed.end_s - timed.start_s) * px_per_s);
  Appendf(svg,
          "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
          "stroke=\"#ffffff\" stroke-width=\"0.6\"><title>%s</title></rect>\n",
          x, y, w, kRowPx, Colour(a.kind, a.chunk).c_str(), XmlEscape(ToString(a)).c_str());
  if (a.micro_batch < 0) return;
  const std::string label = Label(a);
  if (w < kCharPx * static_cast<double>(label.size()) + 3) return;
  const char* ink = a.chunk > 0 ? "#222222" : "#ffffff";
  Appendf(svg, "<text x=\"%.2f\" y=\"%.1f\" fill=\"%s\" text-anchor=\"middle\">%s</text>\n",
          x + w / 2, y + kRowPx / 2.0 + 4, ink, label.c_str());
}

void AppendAxis(double makespan_s, const AxisUnit& unit, double x0, double plot_px, double y,
                std::string& svg) {
  const double span = makespan_s * unit.scale;
  const double step = NiceStep(span > 0 ? span : 1.0, 10);
  Appendf(svg, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>\n", x0,
          y, x0 + plot_px, y);
  for (double v = 0.0; v <= span * (1 + 1e-9); v += step) {
    const double x = x0 + (span > 0 ? v / span : 0.0) * plot_px;
    Appendf(svg,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
            x, y, x, y + 4, x, y + 16, v);
  }
  Appendf(svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", x0 + plot_px, y + 30,
          unit.name);
}

// Which kinds of boxes the picture has, for the legend.
struct Present {
  bool forward = false, backward = false, backward_input = false, weight = false, other = false;
};

Present KindsPresent(const Simulation& simulation, double reduce_s) {
  Present present;
  for (const RankTimeline& rank : simulation.ranks) {
    for (const TimedAction& timed : rank.actions) {
      switch (timed.action.kind) {
        case ActionKind::kForward:
          present.forward = true;
          break;
        case ActionKind::kBackward:
          present.backward = true;
          break;
        case ActionKind::kBackwardInput:
          present.backward_input = true;
          break;
        case ActionKind::kBackwardWeight:
          present.weight = true;
          break;
        case ActionKind::kReduceGradients:
          present.other |= reduce_s > 0;
          break;
        case ActionKind::kOptimizerStep:
          present.other |= timed.end_s > timed.start_s;
          break;
        default:
          break;
      }
    }
  }
  return present;
}

void AppendLegend(const Present& present, double x, double y, std::string& svg) {
  const struct {
    bool shown;
    ActionKind kind;
    const char* name;
    const char* fill;  // null: the kind's colour
  } entries[] = {{present.forward, ActionKind::kForward, "F forward", nullptr},
                 {present.backward, ActionKind::kBackward, "B backward", nullptr},
                 {present.backward_input, ActionKind::kBackwardInput, "B input grad", nullptr},
                 {present.weight, ActionKind::kBackwardWeight, "W weight grad", nullptr},
                 {present.other, ActionKind::kOptimizerStep, "reduce / optimizer", nullptr},
                 {true, ActionKind::kForward, "idle", "#ffffff"}};
  for (const auto& e : entries) {
    if (!e.shown) continue;
    const std::string fill = e.fill != nullptr ? e.fill : Colour(e.kind, 0);
    Appendf(svg,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"12\" fill=\"%s\" "
            "stroke=\"#bbbbbb\" stroke-width=\"0.5\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
            x, y, fill.c_str(), x + 19, y + 10, e.name);
    x += 34 + 6.2 * static_cast<double>(std::string(e.name).size());
  }
}

}  // namespace

std::string RenderTimelineSvg(const Simulation& simulation, const SvgTimelineOptions& options) {
  const int ranks = static_cast<int>(simulation.ranks.size());
  const double plot_px = options.width_px - kLeftPx - kRightPx;
  const double makespan = simulation.makespan_s;
  const double px_per_s = makespan > 0 ? plot_px / makespan : 0.0;
  const int rows_px = ranks * (kRowPx + kRowGapPx);
  const int height = kTopPx + rows_px + kAxisPx + kLegendPx + 8;
  const AxisUnit unit = ChooseAxisUnit(makespan, options.unit_costs);

  std::string svg;
  Appendf(svg,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Arial, sans-serif\" "
          "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
          options.width_px, height, options.width_px, height);
  Appendf(svg,
          "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n"
          "<text x=\"%d\" y=\"38\" fill=\"#444444\">step %.4g %s, bubble %.1f%% "
          "(idle / total)</text>\n",
          kLeftPx, XmlEscape(options.title).c_str(), kLeftPx, makespan * unit.scale, unit.name,
          100.0 * simulation.bubble_fraction);
  for (int r = 0; r < ranks; ++r) {
    const double y = kTopPx + r * (kRowPx + kRowGapPx);
    Appendf(svg,
            "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">rank %d</text>\n"
            "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"#ffffff\" "
            "stroke=\"#cccccc\"/>\n",
            kLeftPx - 8, y + kRowPx / 2.0 + 4, r, kLeftPx, y, plot_px, kRowPx);
    for (TimedAction timed : simulation.ranks[r].actions) {
      if (IsCommunication(timed.action.kind)) continue;
      if (timed.action.kind == ActionKind::kReduceGradients) {
        if (options.reduce_s <= 0.0) continue;
        timed.start_s = std::max(timed.start_s, timed.end_s - options.reduce_s);
      }
      AppendBox(timed, kLeftPx, px_per_s, y, svg);
    }
  }
  const double axis_y = kTopPx + rows_px + 2;
  AppendAxis(makespan, unit, kLeftPx, plot_px, axis_y, svg);
  AppendLegend(KindsPresent(simulation, options.reduce_s), kLeftPx, axis_y + kAxisPx, svg);
  return svg + "</svg>\n";
}

}  // namespace deepnet
