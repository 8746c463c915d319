// `deepnet train --config X [--set ...] [--data_dir D] [--checkpoint_dir C] [--resume]`.
//
// One process (train/trainer.h) when the config asks for one rank; otherwise one process per rank
// of a data × pipeline grid (parallel/pipeline_trainer.h), started by MPI:
//   mpirun -np 4 deepnet train --config configs/deepnet-1000L.pbtxt
// With parallel.backend: CUDA each rank takes the GPU of its index on its node, and device tensors
// go over NCCL (parallel.comm: NCCL, the default there) or are staged through MPI.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "configs/config.h"
#include "launcher/command_line.h"
#include "parallel/pipeline_trainer.h"
#include "runtime/mpi_communicator.h"
#ifdef DEEPNET_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "runtime/nccl_communicator.h"
#endif
#include "train/run_setup.h"
#include "train/trainer.h"

namespace deepnet {
namespace {

// Processes an MPI launcher started together (Open MPI, MPICH / Hydra); 1 without one.
int LaunchedRanks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* value = std::getenv(name);
    if (value != nullptr) return std::max(1, std::atoi(value));
  }
  return 1;
}

Status TrainPipeline(const config::RunConfig& config) {
  const double timeout = config.parallel().comm_timeout_seconds() > 0
                             ? config.parallel().comm_timeout_seconds()
                             : Communicator::kDefaultTimeoutSeconds;
  ASSIGN_OR_RETURN(std::unique_ptr<MpiCommunicator> world, MpiCommunicator::World(timeout));
  LOG_IF(INFO, world->rank() == 0) << "config:\n" << config::ConfigToText(config);
  RankDevice device;
  device.local_rank = world->local_rank();
  std::unique_ptr<Communicator> device_world;
  if (CommOf(config.parallel()) == config::ParallelConfig::NCCL) {
#ifdef DEEPNET_HAVE_CUDA
    // Collective: every rank learns whether all have a GPU before any enters NCCL.
    StatusOr<std::unique_ptr<NcclCommunicator>> nccl = NcclCommunicator::Create(*world, timeout);
    if (!nccl.ok()) {
      return nccl.status().WithContext("world rank " + std::to_string(world->rank()) +
                                       " on host " + HostName());
    }
    // NCCL sends what the compute stream produced: its launches wait for that stream's work.
    StatusOr<const Backend*> gpu = OpenBackend(BackendKind::kCuda, device.local_rank);
    if (!gpu.ok()) return gpu.status().WithContext("world rank " + std::to_string(world->rank()));
    (*nccl)->set_compute_stream(static_cast<const cuda::CudaBackend*>(*gpu)->stream());
    device_world = std::move(*nccl);
    device.device_world = device_world.get();
#else
    return Unavailable("parallel.comm: NCCL, but this deepnet was built without CUDA");
#endif
  }
  StatusOr<std::unique_ptr<PipelineTrainer>> trainer =
      PipelineTrainer::Create(config, *world, LocalFileSystem(), device);
  Status status = trainer.ok() ? (*trainer)->Run() : trainer.status();
  return status.WithContext("world rank " + std::to_string(world->rank()));
}

}  // namespace

Status RunTrainCommand(const CommandLine& command_line) {
  ASSIGN_OR_RETURN(const config::RunConfig config,
                   LoadRunConfig(command_line, /*require_file=*/true));
  const int grid = config.parallel().pipeline_stages() * config.parallel().data_parallel();
  if (grid == 1 && LaunchedRanks() == 1) {
    LOG(INFO) << "config:\n" << config::ConfigToText(config);
    ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer, Trainer::Create(config));
    return trainer->Run();
  }
  RETURN_IF_ERROR(MpiCommunicator::Init(nullptr, nullptr));
  const Status trained = TrainPipeline(config);
  // Open MPI's Finalize waits for every process: a rank that failed waits here for the others,
  // which give up on it after parallel.comm_timeout_seconds.
  const Status finalized = MpiCommunicator::Finalize();
  RETURN_IF_ERROR(trained);
  return finalized;
}

}  // namespace deepnet
