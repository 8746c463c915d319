// Stop requests from the batch system. Slurm's `--signal=B:USR1@T` (forwarded by the job script)
// and SIGTERM (scancel, the time limit, a preemption) ask training to save a checkpoint at the end
// of the current step and exit with kExitStoppedForRequeue, so that the job script can requeue
// itself and the next run resumes from that checkpoint.
//
// The handler only sets a process-wide flag (async-signal-safe); the training loop polls it
// between steps. A pipeline must stop every rank at the same step: OR-reduce StopRequested()
// across ranks after each step (signals reach ranks at different moments).
#pragma once

#include <cstdint>

#include "runtime/status.h"

namespace deepnet {

// Exit status of a run that stopped on request after saving its checkpoint (sysexits'
// EX_TEMPFAIL: "try again later"). launcher/main.cc maps StoppedForRequeue to it.
inline constexpr int kExitStoppedForRequeue = 75;

// SIGUSR1 and SIGTERM set the stop flag (idempotent; call before the training loop). A second
// SIGTERM terminates the process at once (the default action is restored after the first).
void InstallStopSignalHandlers();

// SIGPIPE ignored: a write to a socket whose peer is gone (a lost node, MPI's TCP transport)
// then fails with EPIPE, which MPI turns into an error this rank reports, instead of killing the
// rank silently. Call once at start-up, before MPI opens connections.
void IgnoreBrokenPipe();

bool StopRequested();
// The signal that asked (SIGUSR1, SIGTERM), or 0 when none did (RequestStop).
int StopSignal();
// Sets the flag as a signal would (tests; a rank that learns another rank was asked to stop).
void RequestStop();
void ClearStopRequest();

// What a training loop returns after it stopped on request (its checkpoint at `step` saved).
Status StoppedForRequeue(int64_t step);
bool IsStoppedForRequeue(const Status& status);

}  // namespace deepnet
