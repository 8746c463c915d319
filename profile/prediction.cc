// Step-time prediction (see the header).
#include "profile/prediction.h"

#include <algorithm>
#include <cstdio>

#include "parallel/cost_model.h"
#include "parallel/cost_model_config.h"

namespace deepnet {

int64_t BoundaryMessageBytes(const config::ModelConfig& model, const ProfileShape& shape) {
  int64_t elements = 0;
  if (model.architecture() != config::ModelConfig::DECODER_ONLY) {
    elements += shape.batch * shape.source_len * model.d_model();
  }
  if (model.architecture() != config::ModelConfig::ENCODER_ONLY) {
    elements += shape.batch * shape.target_len * model.d_model();
  }
  return elements * static_cast<int64_t>(sizeof(float));
}

SimulationCosts ChunkCosts(const PartitionPlan& plan, const ProfiledCosts& costs, double send_s) {
  SimulationCosts sim;
  sim.forward_s.clear();
  sim.backward_input_s.clear();
  sim.backward_weight_s.clear();
  for (const StagePlan& stage : plan.stages) {
    double forward = 0, backward = 0, input = 0, weight = 0;
    if (sim.optimizer_s.size() <= static_cast<size_t>(stage.rank)) {
      sim.optimizer_s.resize(stage.rank + 1, 0.0);
    }
    for (int u = stage.first_unit; u < stage.end_unit; ++u) {
      const UnitCost& unit = costs.units[u];
      sim.optimizer_s[stage.rank] += unit.optimizer_s;
      forward += unit.forward_s;
      backward += unit.backward_s + unit.recompute_s;
      input += costs.backward_input_s[u] + unit.recompute_s;
      weight += costs.backward_weight_s[u];
    }
    sim.forward_s.push_back(forward);
    sim.backward_s.push_back(backward);
    sim.backward_input_s.push_back(input);
    sim.backward_weight_s.push_back(weight);
  }
  sim.send_latency_s = send_s;
  return sim;
}

SchedulePrediction PredictSchedule(const ProfiledCosts& costs, ScheduleKind kind,
                                   const PredictionOptions& options) {
  SchedulePrediction prediction;
  prediction.kind = kind;
  prediction.virtual_chunks = InfoOf(kind).takes_virtual_chunks ? options.interleaved_chunks : 1;
  ScheduleOptions schedule;
  schedule.stages = options.stages;
  schedule.micro_batches = options.micro_batches;
  schedule.virtual_chunks = prediction.virtual_chunks;
  schedule.pass_costs = options.pass_costs;
  prediction.status = CheckScheduleOptions(kind, schedule);
  if (!prediction.status.ok()) return prediction;

  PartitionOptions partition;
  partition.stages = options.stages;
  partition.virtual_chunks = prediction.virtual_chunks;
  partition.micro_batches = options.micro_batches;
  partition.schedule = kind;
  partition.pass_costs = options.pass_costs;
  partition.memory_limit_bytes = options.memory_limit_bytes;
  StatusOr<PartitionPlan> plan = PartitionUnits(costs.units, partition);
  if (!plan.ok()) {
    prediction.status = plan.status();
    return prediction;
  }
  prediction.plan = std::move(plan).value();

  StatusOr<std::vector<std::vector<Action>>> ranks = BuildAllSchedules(kind, schedule);
  if (!ranks.ok()) {
    prediction.status = ranks.status();
    return prediction;
  }
  SimulationCosts simulation_costs = ChunkCosts(prediction.plan, costs, options.send_s);
  simulation_costs.cores = options.cores;
  StatusOr<Simulation> simulation =
      Simulate(*ranks, simulation_costs, PlacementOf(kind, schedule).value());
  if (!simulation.ok()) {
    prediction.status = simulation.status();
    return prediction;
  }
  prediction.simulation = std::move(simulation).value();
  std::vector<int64_t> rank_bytes(options.stages, 0);
  for (const StagePlan& stage : prediction.plan.stages)
    rank_bytes[stage.rank] += stage.memory_bytes;
  prediction.peak_stage_bytes = *std::max_element(rank_bytes.begin(), rank_bytes.end());
  return prediction;
}

std::vector<SchedulePrediction> PredictAllSchedules(const ProfiledCosts& costs,
                                                    const PredictionOptions& options) {
  std::vector<SchedulePrediction> predictions;
  for (const ScheduleKindInfo& info : AllScheduleKinds()) {
    predictions.push_back(PredictSchedule(costs, info.kind, options));
  }
  return predictions;
}

std::string FormatPredictions(const std::vector<SchedulePrediction>& predictions,
                              const ProfiledCosts& costs, int micro_batches) {
  double one_rank_s = 0.0;
  double optimizer_s = 0.0;
  for (const UnitCost& unit : costs.units) {
    one_rank_s += unit.time_s();
    optimizer_s += unit.optimizer_s;
  }
  one_rank_s = one_rank_s * micro_batches + optimizer_s;
  char line[256];
  std::snprintf(line, sizeof(line), "one rank, %d micro-batches: %s per step\n", micro_batches,
                FormatPassTime(one_rank_s).c_str());
  std::string text = line;
  text += "schedule           step time   bubble   bottleneck     fullest rank  speed-up\n";
  for (const SchedulePrediction& p : predictions) {
    std::string name = std::string(ScheduleKindName(p.kind));
    if (p.virtual_chunks > 1) name += " (v=" + std::to_string(p.virtual_chunks) + ")";
    if (!p.status.ok()) {
      text += name + std::string(name.size() < 18 ? 18 - name.size() : 1, ' ') + " -- " +
              p.status.message() + "\n";
      continue;
    }
    const double step_s = p.simulation.makespan_s;
    std::snprintf(line, sizeof(line), "%-18s %-11s %5.1f%%   %-13s  %-12s  %.2fx\n", name.c_str(),
                  FormatPassTime(step_s).c_str(), 100.0 * p.simulation.bubble_fraction,
                  FormatPassTime(p.plan.bottleneck_s).c_str(),
                  FormatMiB(p.peak_stage_bytes).c_str(), step_s > 0 ? one_rank_s / step_s : 0.0);
    text += line;
  }
  return text;
}

ProfiledCosts ScaledToStep(const ProfiledCosts& costs, const config::ModelConfig& model,
                           const StepShape& measured, const StepShape& step) {
  // FLOPs are linear in rows: the model is evaluated at one row and scaled by the rows.
  auto flops_per_row = [&](const StepShape& shape) {
    CostModelOptions options;
    options.batch = 1;
    options.source_len = shape.source_len;
    options.target_len = shape.target_len;
    options.flops_per_s = 1.0;
    return EstimateUnitCosts(ModelShapeOf(model), options);
  };
  const std::vector<UnitCost> at_measured = flops_per_row(measured);
  const std::vector<UnitCost> at_step = flops_per_row(step);
  ProfiledCosts scaled = costs;
  if (at_measured.size() != costs.units.size() || measured.rows <= 0.0) return scaled;
  for (size_t u = 0; u < scaled.units.size(); ++u) {
    const double reference = measured.rows * at_measured[u].forward_s;
    const double ratio = reference > 0.0 ? step.rows * at_step[u].forward_s / reference : 1.0;
    UnitCost& unit = scaled.units[u];
    unit.forward_s *= ratio;
    unit.backward_s *= ratio;
    unit.recompute_s *= ratio;
    scaled.backward_input_s[u] *= ratio;
    scaled.backward_weight_s[u] *= ratio;
  }
  return scaled;
}

std::string PredictionsToJson(const std::vector<SchedulePrediction>& predictions,
                              const std::vector<UnitCost>& units) {
  JsonValue json = JsonValue::Array();
  for (const SchedulePrediction& p : predictions) {
    JsonValue& prediction = json.Append(JsonValue::Object());
    prediction.AddNew("schedule", JsonValue::String(ScheduleFileStem(p.kind)));
    prediction.AddNew("virtual_chunks", JsonValue::Int(p.virtual_chunks));
    if (!p.status.ok()) {
      prediction.AddNew("error", JsonValue::String(p.status.ToString()));
      continue;
    }
    prediction.AddNew("step_s", SecondsJson(p.simulation.makespan_s));
    prediction.AddNew("bubble", JsonValue::Double(p.simulation.bubble_fraction, 9));
    prediction.AddNew("bottleneck_s", SecondsJson(p.plan.bottleneck_s));
    prediction.AddNew("peak_rank_bytes", JsonValue::Int(p.peak_stage_bytes));
    JsonValue& stages = prediction.AddNew("stages", JsonValue::Array());
    for (const StagePlan& s : p.plan.stages) {
      JsonValue& stage = stages.Append(JsonValue::Object());
      stage.AddNew("rank", JsonValue::Int(s.rank));
      stage.AddNew("chunk", JsonValue::Int(s.chunk));
      stage.AddNew("first_unit", JsonValue::Int(s.first_unit));
      stage.AddNew("end_unit", JsonValue::Int(s.end_unit));
      stage.AddNew("first", JsonValue::String(units[s.first_unit].name));
      stage.AddNew("last", JsonValue::String(units[s.end_unit - 1].name));
      stage.AddNew("time_s", SecondsJson(s.time_s));
      stage.AddNew("memory_bytes", JsonValue::Int(s.memory_bytes));
    }
  }
  return json.SerializeIndented() + "\n";
}

std::string ScheduleFileStem(ScheduleKind kind) { return std::string(ScheduleKindName(kind)); }

}  // namespace deepnet
