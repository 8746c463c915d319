// A simulated (or measured) pipeline timeline as an SVG picture: one row per rank, time to the
// right, a coloured box per pass (F blue, B orange, W green, gradient reduction and optimizer step
// grey), idle time (waiting for a peer or a collective) left white. Boxes carry the micro-batch
// number ("3", "3.1" on local chunk 1, whose colours are lighter) when they are wide enough to
// read.
#pragma once

#include <string>
#include <vector>

#include "parallel/simulator.h"

namespace deepnet {

struct SvgTimelineOptions {
  std::string title;        // first line, e.g. "1f1b: 4 stages, 8 micro-batches"
  bool unit_costs = false;  // axis in abstract time units instead of seconds
  int width_px = 1000;      // whole picture
  // The gradient reduction's own cost: its box covers only the last reduce_s of the collective
  // (the rest is waiting for the other ranks, drawn idle).
  double reduce_s = 0.0;
};

std::string RenderTimelineSvg(const Simulation& simulation, const SvgTimelineOptions& options);

}  // namespace deepnet
