// Stop-request flag set from signal handlers (see the header).
#include "train/signals.h"

#include <atomic>
#include <csignal>
#include <string>

namespace deepnet {
namespace {

constexpr char kStoppedMessage[] = "stopped for requeue";
constexpr int kRequestedWithoutSignal = -1;

// 0: no request; a signal number; or kRequestedWithoutSignal. Lock-free, so safe in a handler.
std::atomic<int> stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void OnStopSignal(int signal) { stop_signal.store(signal, std::memory_order_relaxed); }

void Install(int signal, int flags) {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | flags;
  sigaction(signal, &action, nullptr);
}

}  // namespace

void InstallStopSignalHandlers() {
  Install(SIGUSR1, 0);
  Install(SIGTERM, SA_RESETHAND);
}

void IgnoreBrokenPipe() { std::signal(SIGPIPE, SIG_IGN); }

bool StopRequested() { return stop_signal.load(std::memory_order_relaxed) != 0; }

int StopSignal() {
  const int signal = stop_signal.load(std::memory_order_relaxed);
  return signal == kRequestedWithoutSignal ? 0 : signal;
}

void RequestStop() { stop_signal.store(kRequestedWithoutSignal, std::memory_order_relaxed); }

void ClearStopRequest() { stop_signal.store(0, std::memory_order_relaxed); }

Status StoppedForRequeue(int64_t step) {
  return Unavailable(std::string(kStoppedMessage) + " at step " + std::to_string(step) +
                     " (rerun with --resume to continue)");
}

bool IsStoppedForRequeue(const Status& status) {
  return status.code() == StatusCode::kUnavailable &&
         status.message().find(kStoppedMessage) != std::string::npos;
}

}  // namespace deepnet
