// GradientReducer: tied embeddings across stages, data-parallel all-reduce, global norm.
#include "parallel/engine_reduce.h"

#include <array>

namespace deepnet {
namespace {

// Pipeline tags 0..16383 carry activations and gradients (engine.cc); this one the tied swap.
constexpr int kTiedGradientTag = 30000;

}  // namespace

GradientReducer::GradientReducer(Communicator& pipeline, Communicator& data,
                                 std::vector<int> unit_stage, std::vector<Unit*> units, bool tied,
                                 const Backend& backend, Communicator* device_pipeline,
                                 Communicator* device_data)
    : pipeline_(pipeline),
      pipeline_transfers_(device_pipeline != nullptr ? *device_pipeline : pipeline, backend),
      data_transfers_(device_data != nullptr ? *device_data : data, backend),
      unit_stage_(std::move(unit_stage)),
      units_(std::move(units)),
      backend_(backend),
      tied_(tied) {
  if (!tied_) return;
  const int last = static_cast<int>(unit_stage_.size()) - 1;
  for (Unit* unit : units_) {
    if (unit->parameters().empty()) continue;
    Parameter& first = unit->parameters().front();
    if (unit->index() == 0 && !first.tied_copy) embedding_ = &first;
    if (unit->index() == last && first.tied_copy) tied_copy_ = &first;
  }
}

Status GradientReducer::SumTiedGradients() {
  if (embedding_ != nullptr && tied_copy_ != nullptr) {
    backend_.Add(embedding_->grad, embedding_->grad, tied_copy_->grad);
    backend_.Copy(tied_copy_->grad, embedding_->grad);
    return OkStatus();
  }
  if (embedding_ == nullptr && tied_copy_ == nullptr) return OkStatus();
  // One end here, the other on `peer`: swap, then add in the order embedding + output.
  Parameter& mine = embedding_ != nullptr ? *embedding_ : *tied_copy_;
  const int peer = embedding_ != nullptr ? unit_stage_.back() : unit_stage_.front();
  Tensor theirs = backend_.Empty(mine.grad.shape(), mine.grad.dtype(), MemoryCategory::kWorkspace);
  std::array<Request, 2> requests;
  DeviceTransfers& transfers = pipeline_transfers_;
  transfers.GroupStart();
  StatusOr<Request> send = transfers.Isend(mine.grad, peer, kTiedGradientTag);
  StatusOr<Request> recv = transfers.Irecv(theirs, peer, kTiedGradientTag);
  RETURN_IF_ERROR(transfers.GroupEnd());
  RETURN_IF_ERROR(send.status());
  RETURN_IF_ERROR(recv.status());
  requests = {*send, *recv};
  RETURN_IF_ERROR(transfers.WaitAll(requests).WithContext("tied embedding gradients"));
  if (embedding_ != nullptr) {
    backend_.Add(mine.grad, mine.grad, theirs);
  } else {
    backend_.Add(theirs, theirs, mine.grad);
    backend_.Copy(mine.grad, theirs);
  }
  return OkStatus();
}

Status GradientReducer::ReduceGradients() {
  RETURN_IF_ERROR(SumTiedGradients());
  if (data_transfers_.comm().size() == 1) return OkStatus();
  for (Unit* unit : units_) {
    if (unit->flat_grads().numel() == 0) continue;
    RETURN_IF_ERROR(data_transfers_.AllReduceSum(unit->flat_grads())
                        .WithContext("data-parallel all-reduce of " + unit->name()));
  }
  return OkStatus();
}

StatusOr<double> GradientReducer::GlobalSumOfSquares(const std::vector<UnitGradSquares>& local) {
  const size_t n = unit_stage_.size();
  std::vector<double> mine(n, 0.0);
  for (const UnitGradSquares& unit : local) mine.at(unit.unit_index) = unit.sum_of_squares;
  std::vector<double> all(n * pipeline_.size());
  RETURN_IF_ERROR(pipeline_.AllGather(mine.data(), n * sizeof(double), all.data())
                      .WithContext("gradient norm"));
  double total = 0.0;
  for (size_t u = 0; u < n; ++u) total += all[unit_stage_[u] * n + u];
  return total;
}

}  // namespace deepnet
