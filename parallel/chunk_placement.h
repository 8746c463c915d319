// ChunkPlacement: which rank holds each model chunk, and in which order. The one owner of the
// chunk-to-rank rule; schedules, the validator, the simulator, the partitioner, the trainer's
// set-up and the engine all ask it.
//
// Letters: p ranks (pipeline stages), K model chunks (contiguous unit ranges, in model order
// 0..K−1), k a model chunk. A rank's local chunk c is the c-th of its model chunks in ascending
// order; an Action's `chunk` field is that local index. Activations flow k → k+1 and gradients
// k+1 → k: between two ranks as a send and a receive, within one rank as a local hand-off with
// no communication (ZB-V's turn at rank p−1 and its return at rank 0).
#pragma once

#include <string>
#include <vector>

#include "runtime/status.h"

namespace deepnet {

class ChunkPlacement {
 public:
  // One chunk per rank: rank r holds model chunk r.
  ChunkPlacement() : ChunkPlacement(Looped(1, 1)) {}

  // v chunks per rank, looping over the ranks: model chunk k on rank k mod p (1F1B, GPipe,
  // interleaved with v > 1).
  static ChunkPlacement Looped(int ranks, int chunks_per_rank);
  // Two chunks per rank in a V: rank r holds chunks r and 2p−1−r (ZB-V). Chunk p−1 and chunk p
  // are both on rank p−1, so the turn of the V needs no transfer.
  static ChunkPlacement V(int ranks);
  // rank_of_chunk[k] for every model chunk; every rank in [0, ranks) holds at least one.
  static StatusOr<ChunkPlacement> FromRanks(int ranks, std::vector<int> rank_of_chunk);

  int ranks() const { return static_cast<int>(chunks_of_rank_.size()); }
  int num_chunks() const { return static_cast<int>(rank_of_chunk_.size()); }
  // Most chunks any rank holds (v for Looped, 2 for V).
  int max_chunks_per_rank() const;
  int chunks_on(int rank) const { return static_cast<int>(chunks_of_rank_[rank].size()); }

  int RankOf(int model_chunk) const { return rank_of_chunk_[model_chunk]; }
  // Position of the chunk among its rank's chunks (the Action's `chunk`).
  int LocalOf(int model_chunk) const { return local_of_chunk_[model_chunk]; }
  // Model chunk of (rank, local chunk); −1 when the rank holds no such chunk.
  int ModelChunk(int rank, int local) const;
  // The rank's model chunks in ascending (local) order.
  const std::vector<int>& ChunksOf(int rank) const { return chunks_of_rank_[rank]; }
  // True when model chunks k and k+1 sit on one rank (a hand-off without communication).
  bool LocalEdge(int k) const { return RankOf(k) == RankOf(k + 1); }

  // "looped (chunk k on rank k mod 4)", "V (rank r holds r and 7-r)", or the list of ranks.
  std::string Describe() const;

  friend bool operator==(const ChunkPlacement& a, const ChunkPlacement& b) {
    return a.rank_of_chunk_ == b.rank_of_chunk_ && a.ranks() == b.ranks();
  }

 private:
  ChunkPlacement(int ranks, std::vector<int> rank_of_chunk);

  std::vector<int> rank_of_chunk_;
  std::vector<int> local_of_chunk_;
  std::vector<std::vector<int>> chunks_of_rank_;
};

}  // namespace deepnet
