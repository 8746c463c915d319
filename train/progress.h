// Training progress: the periodic log line and the JSON-lines metrics file.
//
// The line reads
//   step 120/20000 | loss 7.4120 | lr 1.50e-05 | gnorm 2.310 | 5123 tok/s | elapsed 0:01:02 | eta
//   2:41:10
// with the loss per non-pad target token averaged over the steps since the previous line, the
// learning rate and gradient norm (before clipping) of the last step, target tokens per second
// over the same steps, and the ETA from this run's mean step time.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>

#include "runtime/status.h"

namespace deepnet {

// "1:02:03" (hours unbounded).
std::string FormatDuration(double seconds);

struct ProgressRecord {
  int64_t step = 0;
  double loss = 0.0;  // per token
  double lr = 0.0;
  double grad_norm = 0.0;
  double tokens_per_second = 0.0;
  double elapsed_seconds = 0.0;
  double eta_seconds = 0.0;
};

std::string FormatProgressLine(const ProgressRecord& record, int64_t max_steps);

class ProgressMeter {
 public:
  // `first_step`: the step the run starts from (after a resume, the restored one).
  ProgressMeter(int64_t first_step, int64_t max_steps);

  // Adds one finished step's loss sum, its tokens, and its learning rate and gradient norm.
  void AddStep(double loss_sum, int64_t loss_tokens, double lr, double grad_norm);
  // The record for the steps since the previous call (or the start); starts a new interval.
  ProgressRecord TakeRecord(int64_t step);

  int64_t max_steps() const { return max_steps_; }
  double elapsed_seconds() const;

 private:
  using Clock = std::chrono::steady_clock;

  int64_t first_step_;
  int64_t max_steps_;
  Clock::time_point start_;
  Clock::time_point interval_start_;
  double loss_sum_ = 0.0;
  int64_t loss_tokens_ = 0;
  double last_lr_ = 0.0;
  double last_grad_norm_ = 0.0;
};

// Appends one JSON object per line to a file (created with its directory if missing).
class MetricsWriter {
 public:
  static StatusOr<MetricsWriter> Open(const std::string& path);  // "" = a writer that drops all
  Status WriteProgress(const ProgressRecord& record);
  Status WriteValidation(int64_t step, double valid_loss);
  Status WriteUpdateNorm(int64_t step, double update_norm);  // train.update_norm_every

 private:
  Status WriteLine(const std::string& line);
  std::string path_;
  std::ofstream out_;
  bool blas_reported_ = false;  // the first progress line carries the BLAS report
};

}  // namespace deepnet
