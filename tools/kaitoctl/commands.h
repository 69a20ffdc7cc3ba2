// kaitoctl's verbs. Each takes the client and the flags main.cc parsed, prints what kubectl
// would, and returns the exit code: 0, or 1 for every failure.
#pragma once

#include <string>
#include <vector>

#include "tools/kaitoctl/client.h"

namespace kaito::ctl {

struct GetOptions {
  std::vector<std::string> args;  // TYPE [NAME...] or TYPE/NAME...
  std::string output;             // -o
  std::string selector;           // -l
  std::string sort_by;            // --sort-by
  std::string cloud;              // --cloud (skus)
  bool watch = false;             // -w: list, then stream changes
  bool watch_only = false;        // --watch-only: stream changes only
  bool all_namespaces = false;    // -A
  bool show_labels = false;
  bool no_headers = false;
  bool ignore_not_found = false;
};
int GetCommand(Client& c, const GetOptions& options);

struct ApplyOptions {
  std::vector<std::string> filenames;  // -f, each a file, a directory or -
  bool recursive = false;              // -R
  std::string dry_run = "none";        // none | server | client
};
int ApplyCommand(Client& c, const ApplyOptions& options);

struct DeleteOptions {
  std::vector<std::string> args;       // TYPE NAME... or TYPE/NAME...
  std::vector<std::string> filenames;  // -f
  bool recursive = false;              // -R
  bool all = false;                    // --all
  std::string selector;                // -l
  bool ignore_not_found = false;
  bool wait = false;           // --wait: until the objects are gone
  std::string timeout = "5m";  // --timeout, with --wait
};
int DeleteCommand(Client& c, const DeleteOptions& options);

struct WaitOptions {
  std::vector<std::string> args;  // TYPE/NAME... or TYPE NAME...
  std::string for_condition;      // --for
  std::string timeout = "30s";    // --timeout
  std::string selector;           // -l
  bool all = false;               // --all
};
int WaitCommand(Client& c, const WaitOptions& options);

int DescribeCommand(Client& c, const std::vector<std::string>& args);

}  // namespace kaito::ctl
