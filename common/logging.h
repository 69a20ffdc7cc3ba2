// Log setup shared by every daemon: spdlog to stderr, one line per event, as text or
// JSON (`--log-format`). Never log a secret value.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <utility>

#include "absl/status/status.h"

namespace kaito {

// `level`: trace|debug|info|warn|error|off. `format`: text|json.
absl::Status SetupLogging(const std::string& level, const std::string& format,
                          const std::string& component);

// The labels that name the workspace an object belongs to (node claims, nodes, workloads).
inline constexpr char kWorkspaceLabel[] = "kaito.sh/workspace";
inline constexpr char kWorkspaceNamespaceLabel[] = "kaito.sh/workspacenamespace";

// What a log line is about: the workspace (namespace and name) and, for a line about one of
// its objects, that object as KIND/NAME ("nodeclaim/ws3f9a1c", "workload/phi-0"). The json
// format writes them as the fields "namespace", "workspace" and "object"; the text format
// puts "OBJECT (workspace NAMESPACE/WORKSPACE): " or "workspace NAMESPACE/WORKSPACE: " before
// the message. Empty parts are left out.
struct LogSubject {
  std::string namespace_;
  std::string workspace;
  std::string object;
};

inline LogSubject WorkspaceSubject(std::string ns, std::string workspace) {
  return {std::move(ns), std::move(workspace), ""};
}

// `object`'s subject, its workspace read from `labels` (kaito.sh/workspace and
// kaito.sh/workspacenamespace; absent ones stay empty). `labels` is any string map.
template <typename Labels>
LogSubject SubjectFromLabels(const Labels& labels, std::string object) {
  LogSubject s;
  if (auto it = labels.find(kWorkspaceNamespaceLabel); it != labels.end())
    s.namespace_ = it->second;
  if (auto it = labels.find(kWorkspaceLabel); it != labels.end()) s.workspace = it->second;
  s.object = std::move(object);
  return s;
}

namespace log_internal {
// The subject of the line being logged on this thread (the sinks run on the caller's thread).
class ScopedSubject {
 public:
  explicit ScopedSubject(const LogSubject* subject);
  ~ScopedSubject();
  ScopedSubject(const ScopedSubject&) = delete;
  ScopedSubject& operator=(const ScopedSubject&) = delete;

 private:
  const LogSubject* previous_;
};
}  // namespace log_internal

// spdlog::log about `subject`.
template <typename... Args>
void LogAbout(spdlog::level::level_enum level, const LogSubject& subject,
              spdlog::format_string_t<Args...> format, Args&&... args) {
  if (!spdlog::should_log(level)) return;
  log_internal::ScopedSubject scope(&subject);
  spdlog::log(level, format, std::forward<Args>(args)...);
}

}  // namespace kaito
