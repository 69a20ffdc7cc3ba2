#include "common/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

#include "absl/time/time.h"

namespace kaito {
namespace {

thread_local const LogSubject* current_subject = nullptr;

// One JSON object per line on stderr; the message is escaped properly.
class JsonStderrSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JsonStderrSink(std::string component) : component_(std::move(component)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    nlohmann::ordered_json j;
    j["time"] =
        absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromChrono(msg.time), absl::UTCTimeZone());
    j["level"] = std::string(spdlog::level::to_string_view(msg.level).data(),
                             spdlog::level::to_string_view(msg.level).size());
    j["component"] = component_;
    if (const LogSubject* about = current_subject) {
      if (!about->namespace_.empty()) j["namespace"] = about->namespace_;
      if (!about->workspace.empty()) j["workspace"] = about->workspace;
      if (!about->object.empty()) j["object"] = about->object;
    }
    j["msg"] = std::string(msg.payload.data(), msg.payload.size());
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  std::string component_;
};

// The message with its line breaks escaped ("\\n"), so that one event is one line of the
// text format whatever it quotes (a container's output, a multi-line error).
class EscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      if (c == '\n') {
        dest.append(std::string_view("\\n"));
      } else if (c == '\r') {
        dest.append(std::string_view("\\r"));
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }
};

// "OBJECT (workspace NS/NAME): ", "workspace NS/NAME: " or "OBJECT: " when the line has a
// subject (LogAbout); nothing otherwise.
class SubjectPrefix : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const LogSubject* about = current_subject;
    if (about == nullptr) return;
    const bool workspace = !about->workspace.empty();
    if (!about->object.empty()) {
      dest.append(std::string_view(about->object));
      if (workspace) dest.append(std::string_view(" (workspace "));
    } else if (workspace) {
      dest.append(std::string_view("workspace "));
    } else {
      return;
    }
    if (workspace) {
      if (!about->namespace_.empty()) {
        dest.append(std::string_view(about->namespace_));
        dest.push_back('/');
      }
      dest.append(std::string_view(about->workspace));
      if (!about->object.empty()) dest.push_back(')');
    }
    dest.append(std::string_view(": "));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SubjectPrefix>();
  }
};

}  // namespace

namespace log_internal {
ScopedSubject::ScopedSubject(const LogSubject* subject) : previous_(current_subject) {
  current_subject = subject;
}
ScopedSubject::~ScopedSubject() { current_subject = previous_; }
}  // namespace log_internal

absl::Status SetupLogging(const std::string& level, const std::string& format,
                          const std::string& component) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError("--log-level: unknown level \"" + level +
                                      "\" (trace, debug, info, warn, error, off)");
  }
  spdlog::sink_ptr sink;
  if (format == "json") {
    sink = std::make_shared<JsonStderrSink>(component);
  } else if (format == "text") {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<EscapedMessage>('*').add_flag<SubjectPrefix>('&').set_pattern(
        "%Y-%m-%dT%H:%M:%S.%fZ %L " + component + " %&%*");
    sink->set_formatter(std::move(formatter));
  } else {
    return absl::InvalidArgumentError("--log-format: unknown format \"" + format +
                                      "\" (text, json)");
  }
  auto logger = std::make_shared<spdlog::logger>(component, sink);
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace kaito
