// Grid: rank arithmetic, the group communicators and the start-up table.
#include "parallel/grid.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace deepnet {
namespace {

constexpr size_t kPlaceBytes = 192;

std::string RankOrderName(RankOrder order) {
  return order == RankOrder::kStageMajor ? "stage-major" : "data-major";
}

}  // namespace

GridShape GridShape::FromConfig(const config::ParallelConfig& parallel) {
  GridShape shape;
  shape.data_parallel = std::max(1, parallel.data_parallel());
  shape.pipeline_stages = std::max(1, parallel.pipeline_stages());
  shape.rank_order = parallel.rank_order() == config::ParallelConfig::DATA_MAJOR
                         ? RankOrder::kDataMajor
                         : RankOrder::kStageMajor;
  return shape;
}

GridPosition PositionOfRank(const GridShape& shape, int world_rank) {
  if (shape.rank_order == RankOrder::kStageMajor) {
    return {world_rank % shape.data_parallel, world_rank / shape.data_parallel};
  }
  return {world_rank / shape.pipeline_stages, world_rank % shape.pipeline_stages};
}

int WorldRankAt(const GridShape& shape, GridPosition position) {
  if (shape.rank_order == RankOrder::kStageMajor) {
    return position.stage * shape.data_parallel + position.replica;
  }
  return position.replica * shape.pipeline_stages + position.stage;
}

StatusOr<std::unique_ptr<Grid>> Grid::Create(Communicator& world, const GridShape& shape,
                                             Communicator* device_world) {
  if (shape.data_parallel < 1 || shape.pipeline_stages < 1) {
    return InvalidArgument("grid needs at least one replica and one stage");
  }
  if (world.size() != shape.size()) {
    return FailedPrecondition(
        "the job has " + std::to_string(world.size()) + " ranks but the config asks for " +
        std::to_string(shape.size()) + " (" + std::to_string(shape.data_parallel) +
        " data-parallel replicas x " + std::to_string(shape.pipeline_stages) +
        " pipeline stages); launch with mpirun -np " + std::to_string(shape.size()));
  }
  std::unique_ptr<Grid> grid(new Grid(world, shape));
  grid->position_ = PositionOfRank(shape, world.rank());
  const GridPosition at = grid->position_;
  ASSIGN_OR_RETURN(grid->pipeline_, world.Split(/*color=*/at.replica, /*key=*/at.stage));
  ASSIGN_OR_RETURN(grid->data_, world.Split(/*color=*/at.stage, /*key=*/at.replica));
  if (grid->pipeline_->rank() != at.stage || grid->data_->rank() != at.replica) {
    return Internal("grid split gave pipeline rank " + std::to_string(grid->pipeline_->rank()) +
                    " and data rank " + std::to_string(grid->data_->rank()) + " for stage " +
                    std::to_string(at.stage) + ", replica " + std::to_string(at.replica));
  }
  if (device_world != nullptr) {
    ASSIGN_OR_RETURN(grid->device_pipeline_, device_world->Split(at.replica, at.stage));
    ASSIGN_OR_RETURN(grid->device_data_, device_world->Split(at.stage, at.replica));
  }
  return grid;
}

StatusOr<std::vector<std::string>> GatherRankPlaces(Communicator& world,
                                                    const std::string& device) {
  char mine[kPlaceBytes] = {};
  char host[64] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strncpy(host, "?", sizeof(host) - 1);
  std::snprintf(mine, sizeof(mine), "%s, %s", host, device.c_str());
  std::vector<char> all(kPlaceBytes * world.size());
  RETURN_IF_ERROR(world.AllGather(mine, kPlaceBytes, all.data()));
  std::vector<std::string> places;
  for (int rank = 0; rank < world.size(); ++rank) {
    const char* place = all.data() + rank * kPlaceBytes;
    places.emplace_back(place, strnlen(place, kPlaceBytes));
  }
  return places;
}

std::string FormatGrid(const GridShape& shape, const PartitionPlan& plan,
                       const std::vector<std::string>& unit_names,
                       const std::vector<std::string>& places) {
  std::ostringstream out;
  out << "grid: " << shape.data_parallel << " replica(s) x " << shape.pipeline_stages
      << " stage(s), " << RankOrderName(shape.rank_order) << "\n";
  const auto name = [&](int unit) {
    return unit >= 0 && unit < static_cast<int>(unit_names.size()) ? unit_names[unit] : "?";
  };
  for (int rank = 0; rank < shape.size(); ++rank) {
    const GridPosition at = PositionOfRank(shape, rank);
    out << "rank " << rank << "  replica " << at.replica << "  stage " << at.stage;
    for (const StagePlan& segment : plan.stages) {
      if (segment.rank != at.stage) continue;
      out << "  units [" << segment.first_unit << ", " << segment.end_unit << ") "
          << name(segment.first_unit) << " .. " << name(segment.end_unit - 1);
    }
    if (rank < static_cast<int>(places.size())) out << "  on " << places[rank];
    out << "\n";
  }
  return out.str();
}

}  // namespace deepnet
