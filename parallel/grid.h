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
  // and data groups. `world` must outlive the grid.
  static StatusOr<std::unique_ptr<Grid>> Create(Communicator& world, const GridShape& shape);

  const GridShape& shape() const { return shape_; }
  GridPosition position() const { return position_; }
  int replica() const { return position_.replica; }
  int stage() const { return position_.stage; }
  Communicator& world() const { return world_; }
  Communicator& pipeline() const { return *pipeline_; }  // rank = stage
  Communicator& data() const { return *data_; }          // rank = replica

 private:
  Grid(Communicator& world, const GridShape& shape) : shape_(shape), world_(world) {}

  GridShape shape_;
  GridPosition position_;
  Communicator& world_;
  std::unique_ptr<Communicator> pipeline_;
  std::unique_ptr<Communicator> data_;
};

// Collective over `world`: every rank's host name, indexed by world rank.
StatusOr<std::vector<std::string>> GatherHostNames(Communicator& world);

// The grid as the job prints it at start, one line per world rank:
//   rank 1  replica 1  stage 0  units [0, 5)  embedding .. encoder.layers.3  host node7
// (several chunks per rank with the interleaved schedule). `unit_names` are the model's units.
std::string FormatGrid(const GridShape& shape, const PartitionPlan& plan,
                       const std::vector<std::string>& unit_names,
                       const std::vector<std::string>& hosts);

}  // namespace deepnet
