// ChunkPlacement: the placements the schedules use, and the derived per-rank tables.
#include "parallel/chunk_placement.h"

#include <algorithm>
#include <utility>

namespace deepnet {

ChunkPlacement::ChunkPlacement(int ranks, std::vector<int> rank_of_chunk)
    : rank_of_chunk_(std::move(rank_of_chunk)),
      local_of_chunk_(rank_of_chunk_.size(), 0),
      chunks_of_rank_(ranks) {
  for (size_t k = 0; k < rank_of_chunk_.size(); ++k) {
    std::vector<int>& mine = chunks_of_rank_[rank_of_chunk_[k]];
    local_of_chunk_[k] = static_cast<int>(mine.size());
    mine.push_back(static_cast<int>(k));
  }
}

ChunkPlacement ChunkPlacement::Looped(int ranks, int chunks_per_rank) {
  ranks = std::max(ranks, 1);
  std::vector<int> rank_of_chunk;
  for (int k = 0; k < ranks * std::max(chunks_per_rank, 1); ++k) rank_of_chunk.push_back(k % ranks);
  return ChunkPlacement(ranks, std::move(rank_of_chunk));
}

ChunkPlacement ChunkPlacement::V(int ranks) {
  ranks = std::max(ranks, 1);
  std::vector<int> rank_of_chunk;
  for (int k = 0; k < 2 * ranks; ++k) rank_of_chunk.push_back(k < ranks ? k : 2 * ranks - 1 - k);
  return ChunkPlacement(ranks, std::move(rank_of_chunk));
}

StatusOr<ChunkPlacement> ChunkPlacement::FromRanks(int ranks, std::vector<int> rank_of_chunk) {
  if (ranks < 1) return InvalidArgument("a placement needs at least 1 rank");
  std::vector<int> count(ranks, 0);
  for (size_t k = 0; k < rank_of_chunk.size(); ++k) {
    if (rank_of_chunk[k] < 0 || rank_of_chunk[k] >= ranks) {
      return InvalidArgument("model chunk " + std::to_string(k) + " is placed on rank " +
                             std::to_string(rank_of_chunk[k]) + ", outside [0, " +
                             std::to_string(ranks) + ")");
    }
    ++count[rank_of_chunk[k]];
  }
  for (int r = 0; r < ranks; ++r) {
    if (count[r] == 0) return InvalidArgument("rank " + std::to_string(r) + " holds no chunk");
  }
  return ChunkPlacement(ranks, std::move(rank_of_chunk));
}

int ChunkPlacement::max_chunks_per_rank() const {
  int most = 0;
  for (const std::vector<int>& mine : chunks_of_rank_)
    most = std::max(most, static_cast<int>(mine.size()));
  return most;
}

int ChunkPlacement::ModelChunk(int rank, int local) const {
  if (rank < 0 || rank >= ranks() || local < 0 || local >= chunks_on(rank)) return -1;
  return chunks_of_rank_[rank][local];
}

std::string ChunkPlacement::Describe() const {
  const int p = ranks();
  if (*this == Looped(p, num_chunks() / p) && num_chunks() % p == 0) {
    return "looped (chunk k on rank k mod " + std::to_string(p) + ")";
  }
  if (*this == V(p)) {
    return "V (rank r holds r and " + std::to_string(2 * p - 1) + "-r)";
  }
  std::string text = "rank of chunk 0..:";
  for (int rank : rank_of_chunk_) text += " " + std::to_string(rank);
  return text;
}

}  // namespace deepnet
