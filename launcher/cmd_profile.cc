// `deepnet profile --config X [--stages p] [--micro-batches m] [--reps 10] [--warmup 3]
// [--batch B --src_len S --tgt_len T] [--cores N] [--out DIR]`: measures one unit of each kind,
// splits the model into p stages for each schedule with the measured costs, predicts step time and
// bubble, and writes DIR/profile.json, DIR/predictions.json, DIR/predicted_<schedule>.{json,svg}.
// Units run on the config's parallel.backend (CPU, CUDA, STRICT; e.g. --set
// parallel.backend=CUDA) in its parallel.precision, as a training rank would run them.
//
// Letters: B sentences per micro-batch, S source length, T target length.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "configs/config.h"
#include "kernels/backends.h"
#include "kernels/cpu/blas_core.h"
#include "launcher/command_line.h"
#include "parallel/pipeline_trainer.h"
#include "parallel/trace.h"
#include "profile/micro_batch_shape.h"
#include "profile/prediction.h"
#include "profile/timeline_svg.h"
#include "profile/unit_profiler.h"
#include "runtime/atomic_file.h"
#include "train/run_setup.h"
#include "train/trainer.h"

DECLARE_int32(stages);
DECLARE_int32(micro_batches);
DECLARE_int32(chunks);
DEFINE_int32(reps, 10, kHelpInCommandTable);
DEFINE_int32(warmup, 3, kHelpInCommandTable);
DEFINE_int32(batch, 0, kHelpInCommandTable);
DEFINE_int32(src_len, 0, kHelpInCommandTable);
DEFINE_int32(tgt_len, 0, kHelpInCommandTable);
DEFINE_double(bandwidth_gbps, 10.0, kHelpInCommandTable);
DEFINE_double(latency_us, 20.0, kHelpInCommandTable);
DEFINE_int32(cores, 0, kHelpInCommandTable);

namespace deepnet {
namespace {

// The trainer's mean micro-batch (profile/micro_batch_shape.h), then the flags' overrides;
// *mean_rows = the unrounded mean rows, 0 when --batch sets them.
ProfileShape ChooseShape(const config::RunConfig& config, std::string* source, double* mean_rows) {
  const MicroBatchShape mean = MeanMicroBatchShape(config);
  ProfileShape shape = mean.shape;
  *source = mean.source;
  *mean_rows = mean.mean_rows;
  if (FLAGS_src_len > 0) shape.source_len = FLAGS_src_len;
  if (FLAGS_tgt_len > 0) shape.target_len = FLAGS_tgt_len;
  if (FLAGS_batch > 0) {
    shape.batch = FLAGS_batch;
    *mean_rows = 0.0;
  }
  return shape;
}

StatusOr<config::ModelConfig> ResolvedModel(const config::RunConfig& config) {
  config::ModelConfig model = config.model();
  if (model.vocab_size() == 0) model.set_vocab_size(config.data().spm_vocab_size());
  if (model.vocab_size() == 0) {
    return InvalidArgument("model.vocab_size and data.spm_vocab_size are both 0");
  }
  return model;
}

PredictionOptions PredictionOptionsOf(const config::RunConfig& config, const ProfileShape& shape) {
  const config::ParallelConfig& parallel = config.parallel();
  PredictionOptions options;
  options.stages = FLAGS_stages > 0 ? FLAGS_stages : parallel.pipeline_stages();
  options.micro_batches = FLAGS_micro_batches > 0 ? FLAGS_micro_batches : parallel.micro_batches();
  options.interleaved_chunks =
      FLAGS_chunks > 0 ? FLAGS_chunks : std::max(2, parallel.virtual_chunks());
  options.memory_limit_bytes = parallel.stage_memory_limit_mb() << 20;
  const double bytes = static_cast<double>(BoundaryMessageBytes(config.model(), shape));
  options.send_s = FLAGS_latency_us * 1e-6 + bytes / (FLAGS_bandwidth_gbps * 1e9);
  options.cores = FLAGS_cores;
  options.pass_costs = PassCostsOf(parallel);
  return options;
}

// The configured schedule's split (1F1B when the configured one has no prediction).
void PrintStageTable(const std::vector<SchedulePrediction>& predictions, const ProfiledCosts& costs,
                     const config::ParallelConfig& parallel) {
  StatusOr<ScheduleKind> configured = ScheduleKindOf(parallel);
  for (const ScheduleKind kind :
       {configured.ok() ? *configured : ScheduleKind::kOneFOneB, ScheduleKind::kOneFOneB}) {
    for (const SchedulePrediction& p : predictions) {
      if (p.kind != kind || !p.status.ok()) continue;
      std::cout << "\nstages under " << ScheduleKindName(kind) << " (time = forward + backward + "
                << "recompute per micro-batch; memory = static + held activations):\n"
                << FormatPartition(p.plan, costs.units);
      return;
    }
  }
}

// Pictures are titled "<config name>, <schedule>: p stages, m micro-batches".
Status WritePredictionFiles(const std::vector<SchedulePrediction>& predictions,
                            const PredictionOptions& options, const std::string& model_name,
                            const std::string& dir) {
  for (const SchedulePrediction& p : predictions) {
    if (!p.status.ok()) continue;
    const std::string stem = dir + "/predicted_" + ScheduleFileStem(p.kind);
    RETURN_IF_ERROR(SimulationTrace(p.simulation, {}).WriteFile(stem + ".json"));
    SvgTimelineOptions svg;
    svg.title =
        model_name + ", " + std::string(ScheduleKindName(p.kind)) + ": " +
        std::to_string(options.stages) + " stages, " + std::to_string(options.micro_batches) +
        " micro-batches" +
        (p.virtual_chunks > 1 ? ", " + std::to_string(p.virtual_chunks) + " chunks/rank" : "") +
        " (profiled costs)";
    RETURN_IF_ERROR(ReplaceFileAtomically(stem + ".svg", RenderTimelineSvg(p.simulation, svg)));
  }
  return OkStatus();
}

}  // namespace

Status RunProfileCommand(const CommandLine& command_line) {
  ASSIGN_OR_RETURN(const config::RunConfig config,
                   LoadRunConfig(command_line, /*require_file=*/true));
  ASSIGN_OR_RETURN(const config::ModelConfig model, ResolvedModel(config));
  if (FLAGS_cores < 0) return InvalidArgument("--cores must be >= 0 (0: a core or GPU per rank)");
  // The device first: a CUDA request without a usable GPU fails before anything is measured.
  ASSIGN_OR_RETURN(const Backend* backend, OpenBackend(BackendKindOf(config.parallel())));
  std::string shape_source;
  double mean_rows = 0.0;
  const ProfileShape shape = ChooseShape(config, &shape_source, &mean_rows);
  UnitProfileOptions options;
  options.warmup = FLAGS_warmup;
  options.repetitions = FLAGS_reps;
  options.recompute = RecomputeOf(config.parallel());
  options.seed = config.train().seed();
  options.optimizer = OptimizerOptions::FromConfig(config);
  options.scaler = LossScalerOptionsOf(config.parallel());
  options.backend = backend;
  options.compute_dtype = ComputeDTypeOf(config.parallel());
  std::cout << "profiling " << model.encoder_layers() << "+" << model.decoder_layers()
            << " layers, d_model " << model.d_model() << ", vocab " << model.vocab_size() << " on "
            << DescribeDevice(*backend) << ", precision "
            << config::ParallelConfig::Precision_Name(config.parallel().precision())
            << ", recompute "
            << config::ParallelConfig::Recompute_Name(config.parallel().recompute())
            << "; shape from " << shape_source << "\n";
  std::cout << cpu::BlasStartupLine(cpu::CurrentBlasReport()) << "\n";
  ModelProfile profile;
  ASSIGN_OR_RETURN(const ProfiledCosts costs,
                   ProfileCostsAtMeanRows(model, shape, mean_rows, options, &profile));
  std::cout << FormatModelProfile(profile);
  if (mean_rows > 0 && mean_rows != static_cast<double>(shape.batch)) {
    std::printf("predictions use times interpolated to the mean of %.2f rows per micro-batch\n",
                mean_rows);
  }
  const PredictionOptions prediction = PredictionOptionsOf(config, shape);
  const std::vector<SchedulePrediction> predictions = PredictAllSchedules(costs, prediction);
  PrintStageTable(predictions, costs, config.parallel());
  std::cout << "\npredicted step, " << prediction.stages << " stages, " << prediction.micro_batches
            << " micro-batches"
            << (prediction.cores > 0
                    ? ", all ranks sharing " + std::to_string(prediction.cores) + " cores"
                    : std::string())
            << ", send " << FormatPassTime(prediction.send_s) << " per message ("
            << FormatMiB(BoundaryMessageBytes(model, shape)) << " at " << FLAGS_bandwidth_gbps
            << " GB/s):\n"
            << FormatPredictions(predictions, costs, prediction.micro_batches);

  const std::string dir = FLAGS_out.empty() ? "runs/profile" : FLAGS_out;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return InvalidArgument("cannot create " + dir + ": " + error.message());
  RETURN_IF_ERROR(ReplaceFileAtomically(dir + "/profile.json", ModelProfileToJson(profile)));
  RETURN_IF_ERROR(ReplaceFileAtomically(dir + "/predictions.json",
                                        PredictionsToJson(predictions, costs.units)));
  const std::string model_name = std::filesystem::path(FLAGS_config).stem().string();
  RETURN_IF_ERROR(WritePredictionFiles(predictions, prediction, model_name, dir));
  std::cout << "wrote " << dir << "/{profile,predictions}.json and predicted_<schedule>.{json,svg}"
            << "\n";
  return OkStatus();
}

}  // namespace deepnet
