// Progress line and metrics file.
#include "train/progress.h"

#include <cstdio>
#include <filesystem>

#include "kernels/cpu/blas_core.h"
#include "runtime/json.h"

namespace deepnet {

std::string FormatDuration(double seconds) {
  const auto total = static_cast<int64_t>(seconds < 0 ? 0 : seconds + 0.5);
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  return buffer;
}

std::string FormatProgressLine(const ProgressRecord& r, int64_t max_steps) {
  char buffer[256];
  std::snprintf(buffer, sizeof(buffer),
                "step %lld/%lld | loss %.4f | lr %.3e | gnorm %.3f | %.0f tok/s | elapsed %s | "
                "eta %s",
                static_cast<long long>(r.step), static_cast<long long>(max_steps), r.loss, r.lr,
                r.grad_norm, r.tokens_per_second, FormatDuration(r.elapsed_seconds).c_str(),
                FormatDuration(r.eta_seconds).c_str());
  return buffer;
}

ProgressMeter::ProgressMeter(int64_t first_step, int64_t max_steps)
    : first_step_(first_step),
      max_steps_(max_steps),
      start_(Clock::now()),
      interval_start_(start_) {}

double ProgressMeter::elapsed_seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

void ProgressMeter::AddStep(double loss_sum, int64_t loss_tokens, double lr, double grad_norm) {
  loss_sum_ += loss_sum;
  loss_tokens_ += loss_tokens;
  last_lr_ = lr;
  last_grad_norm_ = grad_norm;
}

ProgressRecord ProgressMeter::TakeRecord(int64_t step) {
  const Clock::time_point now = Clock::now();
  const double interval = std::chrono::duration<double>(now - interval_start_).count();
  ProgressRecord record;
  record.step = step;
  record.loss = loss_tokens_ > 0 ? loss_sum_ / static_cast<double>(loss_tokens_) : 0.0;
  record.lr = last_lr_;
  record.grad_norm = last_grad_norm_;
  record.tokens_per_second = interval > 0 ? static_cast<double>(loss_tokens_) / interval : 0.0;
  record.elapsed_seconds = std::chrono::duration<double>(now - start_).count();
  const int64_t done = step - first_step_;
  if (done > 0) {
    record.eta_seconds =
        record.elapsed_seconds / static_cast<double>(done) * static_cast<double>(max_steps_ - step);
  }
  loss_sum_ = 0.0;
  loss_tokens_ = 0;
  interval_start_ = now;
  return record;
}

StatusOr<MetricsWriter> MetricsWriter::Open(const std::string& path) {
  MetricsWriter writer;
  writer.path_ = path;
  if (path.empty()) return writer;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  writer.out_.open(path, std::ios::app);
  if (!writer.out_) return FailedPrecondition(path + ": cannot open the metrics file");
  return writer;
}

Status MetricsWriter::WriteLine(const std::string& line) {
  if (path_.empty()) return OkStatus();
  out_ << line << '\n';
  out_.flush();
  if (!out_) return ResourceExhausted(path_ + ": cannot write the metrics file");
  return OkStatus();
}

Status MetricsWriter::WriteProgress(const ProgressRecord& r) {
  JsonValue json = JsonValue::Object();
  json.Set("step", JsonValue::Int(r.step));
  json.Set("loss", JsonValue::Double(r.loss));
  json.Set("lr", JsonValue::Double(r.lr));
  json.Set("grad_norm", JsonValue::Double(r.grad_norm));
  json.Set("tokens_per_second", JsonValue::Double(r.tokens_per_second));
  json.Set("elapsed_seconds", JsonValue::Double(r.elapsed_seconds));
  if (!blas_reported_) {  // which BLAS core the run's numbers came from (kernels/cpu/blas_core.h)
    json.Set("blas", cpu::BlasReportJson(cpu::CurrentBlasReport()));
    blas_reported_ = true;
  }
  return WriteLine(json.Serialize());
}

Status MetricsWriter::WriteValidation(int64_t step, double valid_loss) {
  JsonValue json = JsonValue::Object();
  json.Set("step", JsonValue::Int(step));
  json.Set("valid_loss", JsonValue::Double(valid_loss));
  return WriteLine(json.Serialize());
}

Status MetricsWriter::WriteUpdateNorm(int64_t step, double update_norm) {
  JsonValue json = JsonValue::Object();
  json.Set("step", JsonValue::Int(step));
  json.Set("update_norm", JsonValue::Double(update_norm));
  return WriteLine(json.Serialize());
}

}  // namespace deepnet
