// MpiCommunicator: the Communicator over MPI, for the CPU backend.
//
// Every blocking path is a nonblocking MPI call (MPI_Isend/Irecv, MPI_Iallreduce, MPI_Ibcast,
// MPI_Iallgather, MPI_Ibarrier, MPI_Comm_idup) completed by polling MPI_Test against the deadline,
// so a peer that never answers gives kDeadlineExceeded instead of a hang. Errors come back as
// Status (the communicators use MPI_ERRORS_RETURN) with MPI_Error_string's text.
//
// Naming the missing ranks of a collective: when a collective times out, the rank tells every
// peer "I am stuck in collective #k" over a private duplicate of the communicator and collects
// the same notices for a short grace period; the ranks it hears nothing from are named.
//
// Threading: MPI is initialised MPI_THREAD_FUNNELED; only the thread that called Init may use
// any MpiCommunicator.
//
// Ending a job: Open MPI's MPI_Finalize waits for every process to reach it, with no timeout. A
// process that leaves early stays in Finalize until the others finish, and a survivor that gave
// up on a peer reaches Finalize only if that peer does too: one that is stopped (SIGSTOP, a hung
// node) never does. So a program calls Finalize only when every rank is known to be at its end
// (e.g. after a guarded Barrier), and ends the whole job with Abort otherwise, after printing its
// error (launcher/cmd_train.cc).
//
// Not guarded by the deadline: MPI_Init_thread and MPI_Finalize themselves, and the
// communicator-creating calls (MPI_Comm_split, MPI_Comm_split_type), which are entered only after
// a guarded all-gather or barrier has shown that every rank got there.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/communicator.h"

namespace deepnet {

class MpiCommunicator : public Communicator {
 public:
  // MPI_Init_thread (FUNNELED) once per process; later calls do nothing. A program started
  // without mpirun runs as a singleton: a world of one rank.
  static Status Init(int* argc, char*** argv);
  static bool initialized();
  // Destroy every MpiCommunicator first. Idempotent. Waits for every process (see above).
  static Status Finalize();
  // Ends every process of the job now: MPI_Abort on MPI_COMM_WORLD, after which mpirun (or srun)
  // kills the other ranks and exits with `exit_code`. Print the error before calling it: the
  // other ranks may be killed before they print theirs. Needs no MpiCommunicator to be destroyed
  // and never waits for a peer; if MPI_Abort has not ended this process within
  // kAbortGraceSeconds (or MPI is not running) the process _Exits with `exit_code`, and the
  // launcher ends the job on seeing it go.
  [[noreturn]] static void Abort(int exit_code);
  static constexpr double kAbortGraceSeconds = 10.0;
  // This process in MPI_COMM_WORLD; 0 and 1 when MPI is not running (before Init, after Finalize).
  static int WorldRank();
  static int WorldSize();
  // A communicator over all processes (a duplicate of MPI_COMM_WORLD). Needs Init.
  static StatusOr<std::unique_ptr<MpiCommunicator>> World(
      double timeout_seconds = kDefaultTimeoutSeconds);

  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string DescribeRank(int rank) const override;
  void Progress() override;
  // Rank and size among the processes of this communicator on the same node (shared memory),
  // e.g. to pick a GPU.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  MPI_Comm comm() const { return comm_; }

  // Messages and collectives above this size are split into several MPI calls (MPI counts are
  // ints). Tests lower it to exercise the split.
  void set_max_chunk_bytes_for_testing(size_t bytes) {
    max_chunk_bytes_ = std::min<size_t>(bytes, INT_MAX);
  }

 protected:
  StatusOr<Request> IsendImpl(const void* data, size_t bytes, int peer, int tag) override;
  StatusOr<Request> IrecvImpl(void* data, size_t bytes, int peer, int tag) override;
  Status WaitAllImpl(std::span<Request> requests) override;
  Status AllReduceSumImpl(float* data, size_t count) override;
  Status AllReduceSumImpl(double* data, size_t count) override;
  Status BroadcastImpl(void* data, size_t bytes, int root) override;
  Status AllGatherImpl(const void* send, size_t bytes_per_rank, void* recv) override;
  Status BarrierImpl() override;
  StatusOr<std::unique_ptr<Communicator>> SplitImpl(int color, int key) override;

 private:
  // One posted Isend or Irecv: several MPI requests when the message is split into chunks.
  struct PointToPoint {
    bool is_send = false;
    int peer = 0;
    int tag = 0;
    size_t bytes = 0;
    std::vector<MPI_Request> requests;
    std::vector<int> chunk_bytes;  // expected size of each chunk (receives check it)
  };

  // Takes ownership of comm; builds the control duplicate, world ranks and local rank.
  static StatusOr<std::unique_ptr<MpiCommunicator>> Create(MPI_Comm comm, std::string name,
                                                           double timeout_seconds);
  MpiCommunicator(MPI_Comm comm, std::string name, double timeout_seconds);

  StatusOr<Request> Post(bool is_send, void* data, size_t bytes, int peer, int tag);
  // Waits for a collective's requests; on timeout names the ranks that never reached it.
  // `op` #k (`detail`) names it in errors: "all-reduce #3 (f32, 1024 elements)".
  Status WaitCollective(std::vector<MPI_Request>& requests, const std::string& op,
                        const std::string& detail);
  std::vector<int> RanksNotReaching(int64_t seq);
  Status GatherHosts();
  Status Check(int mpi_error, const std::string& what) const;
  void Abandon(PointToPoint& op);
  template <typename T>
  Status AllReduce(T* data, size_t count, MPI_Datatype type, const char* type_name);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm control_ = MPI_COMM_NULL;  // private duplicate for timeout diagnostics
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::vector<int> world_ranks_;  // rank i of comm_ is world rank world_ranks_[i]
  // Host of each world rank when the job spans several hosts (shared by splits), else null.
  std::shared_ptr<const std::vector<std::string>> world_hosts_;
  bool is_world_ = false;
  size_t max_chunk_bytes_ = size_t{1} << 30;  // fits an int count
  uint64_t next_request_id_ = 1;
  std::unordered_map<uint64_t, PointToPoint> requests_;
  int64_t collective_seq_ = 0;
};

}  // namespace deepnet
