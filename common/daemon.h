// What every daemon's main() does the same way: write the chosen port for tests and
// scripts, keep protobuf's own log out of ours, and take SIGINT/SIGTERM on one thread.
#pragma once

#include <signal.h>

#include <string>

namespace kaito {

// Writes `port` to `path` atomically (a temporary file, then rename), so that a reader
// never sees a partial file. False when it cannot.
bool WritePortFile(const std::string& path, int port);

// Routes protobuf's log to spdlog at debug level (fatal stays critical): protobuf reports
// bad input (e.g. invalid UTF-8 in a request) on its own log, and a client must not be
// able to flood ours with it.
void RouteProtobufLogs();

// Turns off Abseil's mutex deadlock detection for this process. Debian's Abseil is built
// with it on: every lock taken records its place in a graph of held locks, stack trace
// included, and every mutex destroyed is removed from it; gRPC's own locks are Abseil
// mutexes, so each call pays for it many times (measured: a tenth of the shim's CPU). The
// daemons and benchmarks call this first; tests keep the detection, which finds lock-order
// mistakes.
void DisableMutexDeadlockDetection();

// Blocks SIGINT and SIGTERM in the calling thread, and so in every thread it starts
// afterwards: construct it in main() before any thread exists. `Wait` takes the next one
// synchronously (sigwait), on the thread that calls it.
class TerminationSignals {
 public:
  TerminationSignals();
  // The signal number that arrived.
  int Wait();

 private:
  sigset_t set_;
};

}  // namespace kaito
