// `deepnet train --config X [--set ...] [--data_dir D] [--checkpoint_dir C] [--resume]`.
//
// One process (train/trainer.h) when the config asks for one rank; otherwise one process per rank
// of a data × pipeline grid (parallel/pipeline_trainer.h), started by MPI:
//   mpirun -np 4 deepnet train --config configs/deepnet-1000L.pbtxt
// With parallel.backend: CUDA each rank takes the GPU of its index on its node, and device tensors
// go over NCCL (parallel.comm: NCCL, the default there) or are staged through MPI.
//
// How a job of several ranks ends (README "Reliability"):
// - success, or a stop for requeue (SIGTERM / SIGUSR1 on any rank: every rank checkpoints after
//   the same step): a guarded barrier shows every rank is at its end, then MPI_Finalize; exit 0
//   or 75.
// - any failure (a peer gone or stopped: DEADLINE_EXCEEDED / UNAVAILABLE naming it after
//   parallel.comm_timeout_seconds; or this rank's own error, with peers possibly waiting on it):
//   this rank logs the error with its rank and host first, then MPI_Abort ends every rank of the
//   job (NCCL communicators go with their processes); mpirun exits 1. Never MPI_Finalize there:
//   it waits for every process, forever when one is stopped.
#include <glog/logging.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
#include "train/signals.h"
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

// Exit status of a job that a failing rank ended with MPI_Abort (mpirun passes it on): 1, as for
// any failed command (launcher/main.cc); 75 stays for a requested stop.
constexpr int kExitJobAborted = 1;

// Ends the whole job from this rank: logs `failure` (flushed) before anything that could wait
// for a peer, then MPI_Abort. Never returns.
[[noreturn]] void AbortJob(const Status& failure) {
  LOG(ERROR) << "deepnet train: error on world rank " << MpiCommunicator::WorldRank() << " of "
             << MpiCommunicator::WorldSize() << " (host " << HostName()
             << "): " << failure.ToString() << "\nending every rank of the job (MPI_Abort, exit "
             << kExitJobAborted << ")";
  google::FlushLogFiles(google::GLOG_INFO);  // when logging to files (--logtostderr=false)
  std::fflush(stderr);
  MpiCommunicator::Abort(kExitJobAborted);
}

// A failure on a job of several ranks ends the job at once (the file comment); a stop for requeue
// and a failure of a job of one process return.
void AbortJobIfFailed(const Status& status) {
  if (status.ok() || IsStoppedForRequeue(status)) return;
  if (MpiCommunicator::WorldSize() > 1) AbortJob(status);
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
      return nccl.status().WithContext("world rank " + std::to_string(world->rank()) + " on host " +
                                       HostName());
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
  const Status status = trainer.ok() ? (*trainer)->Run() : trainer.status();
  AbortJobIfFailed(status);  // before the trainer's destructors, which may still talk to peers
  if (IsStoppedForRequeue(status) && StopSignal() != 0) {
    LOG(WARNING) << "world rank " << world->rank() << " (host " << HostName() << ") received "
                 << "signal " << StopSignal() << " (" << strsignal(StopSignal())
                 << "): every rank stopped after the same step";
  }
  // Every rank is at its end (success or the agreed stop) unless one was lost since the last
  // collective: a guarded barrier makes sure before MPI_Finalize, which would wait for it forever.
  AbortJobIfFailed(world->Barrier().WithContext("at the end of training, before MPI_Finalize"));
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
  IgnoreBrokenPipe();  // a peer's closed socket is an error to report, not a silent death
  RETURN_IF_ERROR(MpiCommunicator::Init(nullptr, nullptr));
  const Status trained = TrainPipeline(config);
  // Failures before the trainer existed (joining the world, NCCL, the device) end the job here;
  // what reaches Finalize has every rank at its end, or is a job of one process.
  AbortJobIfFailed(trained);
  const Status finalized = MpiCommunicator::Finalize();
  RETURN_IF_ERROR(trained);
  return finalized;
}

}  // namespace deepnet
