// Grid: the ranks of a data × pipeline parallel job and the communicators of their groups.
//
// Letters: R data-parallel replicas, p pipeline stages, w a world rank in [0, R·p).
// Rank order (ParallelConfig.rank_order):
//   stage-major  w = stage·R + replica  (the replicas of a stage are neighbours: the gradient
//                                        all-reduce stays within a node)
//   data-major   w = replica·p + stage  (the stages of a pipeline are neighbours: activations stay
//                                        within a node)
// The pipeline group holds the p ranks of one replica, ranked by stage (its rank is the stage, the
// `peer` of a schedule's Action); the data group holds the R ranks of one stage, ranked by replica.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "parallel/partitioner.h"
#include "runtime/communicator.h"
#include "runtime/status.h"

namespace deepnet {

enum class RankOrder { kStageMajor, kDataMajor };

struct GridShape {
  int data_parallel = 1;    // R
  int pipeline_stages = 1;  // p
  RankOrder rank_order = RankOrder::kStageMajor;

  int size() const { return data_parallel * pipeline_stages; }
  static GridShape FromConfig(const config::ParallelConfig& parallel);
};

struct GridPosition {
  int replica = 0;
  int stage = 0;
  friend bool operator==(const GridPosition&, const GridPosition&) = default;
};

GridPosition PositionOfRank(const GridShape& shape, int world_rank);
int WorldRankAt(const GridShape& shape, GridPosition position);

class Grid {
 public:
  // Collective over `world`, whose size must be shape.size(): splits it into this rank's pipeline
  // and data groups. `device_world` (the same ranks over NCCL, or null) is split alike into the
  // groups that carry device tensors. Both must outlive the grid.
  static StatusOr<std::unique_ptr<Grid>> Create(Communicator& world, const GridShape& shape,
                                                Communicator* device_world = nullptr);

  const GridShape& shape() const { return shape_; }
  GridPosition position() const { return position_; }
  int replica() const { return position_.replica; }
  int stage() const { return position_.stage; }
  Communicator& world() const { return world_; }
  Communicator& pipeline() const { return *pipeline_; }  // rank = stage
  Communicator& data() const { return *data_; }          // rank = replica
  // The same groups for device tensors: over NCCL when the grid has a device world, else the
  // host groups (device tensors are then staged, parallel/device_transfers.h).
  Communicator& device_pipeline() const {
    return device_pipeline_ != nullptr ? *device_pipeline_ : *pipeline_;
  }
  Communicator& device_data() const { return device_data_ != nullptr ? *device_data_ : *data_; }

 private:
  Grid(Communicator& world, const GridShape& shape) : shape_(shape), world_(world) {}

  GridShape shape_;
  GridPosition position_;
  Communicator& world_;
  std::unique_ptr<Communicator> pipeline_;
  std::unique_ptr<Communicator> data_;
  std::unique_ptr<Communicator> device_pipeline_;
  std::unique_ptr<Communicator> device_data_;
};

// Collective over `world`: where every rank runs, "<host name>, <device>" (`device` is this rank's
// kernels/backends.h DescribeDevice), indexed by world rank.
StatusOr<std::vector<std::string>> GatherRankPlaces(Communicator& world, const std::string& device);

// The grid as the job prints it at start, one line per world rank:
//   rank 1  replica 1  stage 0  units [0, 5)  embedding .. encoder.layers.3  on node7, cuda:1 ...
// (several chunks per rank with the interleaved schedule). `unit_names` are the model's units,
// `places` what GatherRankPlaces returned.
std::string FormatGrid(const GridShape& shape, const PartitionPlan& plan,
                       const std::vector<std::string>& unit_names,
                       const std::vector<std::string>& places);

}  // namespace deepnet
