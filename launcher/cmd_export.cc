// `deepnet export --checkpoint DIR --out model.safetensors [--device cpu|cuda|strict]`: a
// checkpoint's model as docs/design.md#export-format fixes it. The model is loaded onto --device
// and its fp32 weights copied back, so the file is the same bytes on every device (the round trip
// exercises the device's copies).
#include <glog/logging.h>

#include "configs/config.h"
#include "kernels/backends.h"
#include "launcher/command_line.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/export.h"

namespace deepnet {

Status RunExportCommand(const CommandLine& command_line) {
  if (FLAGS_checkpoint.empty() || FLAGS_out.empty()) {
    return InvalidArgument("export needs --checkpoint DIR and --out FILE");
  }
  ASSIGN_OR_RETURN(const Backend* device, DeviceFromFlag());
  ASSIGN_OR_RETURN(const std::string dir, ResolveCheckpointDir(FLAGS_checkpoint));
  ASSIGN_OR_RETURN(const TrainingState state, ReadTrainingState(dir));
  ASSIGN_OR_RETURN(const config::RunConfig config,
                   config::LoadConfigFromText(state.config_text, dir + "/state.json", {}));
  ModelBuildOptions options;
  options.seed = state.seed;
  options.pad_id = state.special_ids.pad;
  options.backend = device;
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Build(config.model(), options));
  std::vector<Unit*> units;
  for (auto& unit : model->units()) units.push_back(unit.get());
  RETURN_IF_ERROR(LoadParameters(dir, units, *device));
  RETURN_IF_ERROR(ExportModel(FLAGS_out, units, config.model(), state.special_ids, *device));
  LOG(INFO) << "exported " << dir << " (step " << state.step << ", " << model->num_parameters()
            << " parameters) to " << FLAGS_out << " via " << DescribeDevice(*device);
  return OkStatus();
}

}  // namespace deepnet
