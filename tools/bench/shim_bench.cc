#include "tools/bench/shim_bench.h"

#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <semaphore>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/http_listener.h"
#include "common/manifest_codec.h"
#include "common/message_json.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "server/server_app.h"
#include "tools/bench/api_workload.h"
#include "tools/kube-shim/backend.h"
#include "tools/kube-shim/shim_server.h"

namespace kaito::bench {
namespace {

constexpr char kNamespace[] = "default";
constexpr char kCollection[] = "/apis/kaito.sh/v1beta1/namespaces/default/workspaces";
constexpr char kWatched[] = "watched";
// Stands for the workspace's name in the create body's template.
constexpr char kNamePlaceholder[] = "bench-name-placeholder";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Waits for `done()` until `deadline`; whether it came.
template <typename Done>
bool WaitFor(Done done, Clock::duration deadline) {
  const auto end = Clock::now() + deadline;
  while (!done()) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A field of /proc/self/status in its own unit (kB for the Vm* fields), or -1.
int64_t ProcStatus(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, field + ":")) continue;
    int64_t value = -1;
    std::string rest(absl::StripAsciiWhitespace(line.substr(field.size() + 1)));
    rest = rest.substr(0, rest.find(' '));
    return absl::SimpleAtoi(rest, &value) ? value : -1;
  }
  return -1;
}

// The kernel's count of connections dropped because a listen queue was full (this network
// namespace, every socket: read it around a phase of this process's own).
int64_t ListenOverflows() {
  std::ifstream in("/proc/net/netstat");
  std::string names, values;
  while (std::getline(in, names) && std::getline(in, values)) {
    if (!absl::StartsWith(names, "TcpExt:")) continue;
    std::vector<std::string> n = absl::StrSplit(names, ' '), v = absl::StrSplit(values, ' ');
    for (size_t i = 0; i < n.size() && i < v.size(); ++i) {
      int64_t value = 0;
      if (n[i] == "ListenOverflows" && absl::SimpleAtoi(v[i], &value)) return value;
    }
  }
  return -1;
}

double LoadAverage() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

// CPU seconds of this process's live threads (the scheduler's own count, in ns), summed by
// thread name. The benchmark names the threads it starts and the thread that starts the
// server and the shim, so that the threads they create inherit a name ("kaito-server",
// "kube-shim"); gRPC names its own.
std::map<std::string, double> CpuByThreadName() {
  std::map<std::string, double> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm"), schedstat(task.path() / "schedstat");
    std::string name;
    int64_t on_cpu_ns = 0;
    if (!std::getline(comm, name) || !(schedstat >> on_cpu_ns)) continue;
    out[name] += static_cast<double>(on_cpu_ns) / 1e9;
  }
  return out;
}

// Where a phase's CPU went, between the marks of its loop (`mark()`): the process's CPU
// time per op, the load generator's share, and the seconds by thread name (threads that
// ended during the phase are not counted there).
class CpuMeter {
 public:
  PhaseMark mark() {
    return [this](bool begin) {
      if (begin) {
        threads_ = CpuByThreadName();
        process_ = ProcessCpuSeconds();
        begin_ = Clock::now();
        return;
      }
      process_ = ProcessCpuSeconds() - process_;
      wall_ = Seconds(Clock::now() - begin_);
      for (const auto& [name, seconds] : CpuByThreadName()) {
        const double delta = seconds - threads_[name];
        threads_[name] = delta;
      }
    };
  }

  void AddTo(nlohmann::json& j, const Figures& f) const {
    const double ops = std::max<double>(1, static_cast<double>(f.ops + f.errors));
    j["cpu_seconds"] = process_;
    j["cpu_cores"] = wall_ > 0 ? process_ / wall_ : 0;
    j["cpu_us_per_op"] = process_ / ops * 1e6;
    if (f.client_cpu_seconds > 0) {
      j["client_cpu_us_per_op"] = f.client_cpu_seconds / ops * 1e6;
      j["non_client_cpu_us_per_op"] = (process_ - f.client_cpu_seconds) / ops * 1e6;
    }
    nlohmann::json by_name = nlohmann::json::object();
    for (const auto& [name, seconds] : threads_) {
      if (seconds >= 0.01) by_name[name] = seconds;
    }
    j["cpu_seconds_by_thread"] = std::move(by_name);
  }

 private:
  Clock::time_point begin_;
  double process_ = 0, wall_ = 0;
  std::map<std::string, double> threads_;
};

void PrintCpu(const nlohmann::json& j) {
  std::printf("%-28s cpu %7.1f us/op, %.2f cores", "", j["cpu_us_per_op"].get<double>(),
              j["cpu_cores"].get<double>());
  if (j.contains("client_cpu_us_per_op")) {
    std::printf(" (client threads %.1f, the rest %.1f)", j["client_cpu_us_per_op"].get<double>(),
                j["non_client_cpu_us_per_op"].get<double>());
  }
  std::printf("  by thread:");
  for (const auto& [name, seconds] : j["cpu_seconds_by_thread"].items()) {
    std::printf(" %s %.2fs", name.c_str(), seconds.get<double>());
  }
  std::printf("\n");
  std::fflush(stdout);
}

double GaugeValue(prometheus::Registry& registry, const std::string& family) {
  for (const auto& f : registry.Collect()) {
    if (f.name == family && !f.metric.empty()) return f.metric[0].gauge.value;
  }
  return -1;
}

double CounterValue(prometheus::Registry& registry, const std::string& family,
                    const std::map<std::string, std::string>& labels) {
  double sum = 0;
  for (const auto& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      size_t matched = 0;
      for (const auto& l : m.label) {
        auto it = labels.find(l.name);
        if (it != labels.end() && it->second == l.value) ++matched;
      }
      if (matched == labels.size()) sum += m.counter.value;
    }
  }
  return sum;
}

// The body of a POST of MakeWorkspace(name), as kubectl sends a manifest: apiVersion and
// kind first, the namespace of the URL.
std::string CreateBodyTemplate() {
  v1::Workspace ws = MakeWorkspace(kNamePlaceholder);
  ws.mutable_metadata()->set_namespace_(kNamespace);
  nlohmann::ordered_json body = {{"apiVersion", "kaito.sh/v1beta1"}, {"kind", "Workspace"}};
  const nlohmann::ordered_json fields = MessageToJsonValue(ws);
  for (const auto& [key, value] : fields.items()) body[key] = value;
  return body.dump();
}

httplib::Headers RequestHeaders(const ShimBenchOptions& o) {
  return {{"Accept", "application/json"},
          {"Accept-Encoding", o.accept_encoding},
          {"User-Agent", "kaito-bench"}};
}

// An HTTP/1.1 client as kubectl's transport is: keep-alive, TCP_NODELAY (Go sets it on
// every connection).
std::unique_ptr<httplib::Client> NewHttpClient(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_connection_timeout(10);
  c->set_read_timeout(60);
  c->set_write_timeout(60);
  return c;
}

// `count` kubectl-style watch streams over raw sockets, read by one epoll thread (a
// client thread per stream would add a thousand threads and their wake-ups to the process
// being measured). Each complete event line is kept with the time the read that brought
// its last byte returned; lines are parsed after the phase, so that the reader costs a
// `memchr` per event. The reader thread owns the connections between `Start()` and
// `Stop()`; the counters may be read at any time.
class WatchClients {
 public:
  struct Line {
    std::string text;
    Clock::time_point at;
  };

  WatchClients(int port, std::string request, int count)
      : port_(port), request_(std::move(request)) {
    for (int i = 0; i < count; ++i) conns_.push_back(std::make_unique<Conn>());
  }
  ~WatchClients() {
    Stop();
    CloseAll();
  }

  // Starts reading, and connecting: every stream at once, or at most `opening` at a time
  // (a stream is opening from its connect until its response headers came).
  void Start(int opening) {
    max_opening_ = opening;
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    reader_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "bench-watch");
      Read();
    });
  }

  void Stop() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
  }

  void CloseAll() {
    for (auto& c : conns_) {
      if (c->fd >= 0) close(c->fd);
      c->fd = -1;
    }
    if (epoll_ >= 0) close(epoll_);
    epoll_ = -1;
  }

  size_t size() const { return conns_.size(); }
  int64_t events(size_t i) const { return conns_[i]->events.load(); }
  int64_t total_events() const { return total_.load(); }
  // Streams with at least `n` events.
  int64_t with_at_least(int64_t n) const {
    int64_t k = 0;
    for (const auto& c : conns_) k += c->events.load() >= n ? 1 : 0;
    return k;
  }
  int64_t ended() const { return ended_.load(); }
  // After Stop().
  const std::vector<Line>& lines(size_t i) const { return conns_[i]->lines; }
  // Where the streams without an event are: "connecting", "headers" (the request is sent,
  // no response yet), "chunks" (a response, no event).
  std::map<std::string, int64_t> Waiting() const {
    std::map<std::string, int64_t> out;
    for (const auto& c : conns_) {
      if (c->events.load() > 0 || c->state == State::kEnded) continue;
      ++out[c->state == State::kConnecting ? "connecting"
            : c->state == State::kHeaders  ? "headers"
                                           : "chunks"];
    }
    return out;
  }
  const std::string& end_reason(size_t i) const { return conns_[i]->end_reason; }

 private:
  enum class State { kConnecting, kHeaders, kChunkSize, kChunkData, kChunkEnd, kEnded };
  struct Conn {
    int fd = -1;
    State state = State::kConnecting;
    size_t sent = 0;
    std::string in;    // Received, not yet parsed.
    std::string line;  // The event line being assembled.
    size_t chunk_left = 0;
    std::vector<Line> lines;
    std::atomic<int64_t> events{0};
    std::string end_reason;
  };

  void Connect(size_t i) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    Conn& c = *conns_[i];
    ++opening_;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
      return End(c, "connect failed");
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = i;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
  }

  void End(Conn& c, const std::string& reason) {
    if (c.state == State::kEnded) return;
    if (c.state == State::kConnecting || c.state == State::kHeaders) --opening_;
    c.state = State::kEnded;
    c.end_reason = reason;
    ++ended_;
    if (c.fd >= 0 && epoll_ >= 0) epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  }

  void Read() {
    std::vector<epoll_event> ready(256);
    char buf[16384];
    while (!stop_.load()) {
      while (next_ < conns_.size() && (max_opening_ <= 0 || opening_ < max_opening_)) {
        Connect(next_++);
      }
      const int n = epoll_wait(epoll_, ready.data(), static_cast<int>(ready.size()), 20);
      for (int k = 0; k < n; ++k) {
        Conn& c = *conns_[ready[k].data.u64];
        if (c.state == State::kEnded) continue;
        if (c.state == State::kConnecting && (ready[k].events & EPOLLOUT)) {
          int err = 0;
          socklen_t len = sizeof(err);
          getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            End(c, "connect: " + std::string(strerror(err)));
            continue;
          }
          const ssize_t w =
              send(c.fd, request_.data() + c.sent, request_.size() - c.sent, MSG_NOSIGNAL);
          if (w > 0) c.sent += static_cast<size_t>(w);
          if (c.sent == request_.size()) {
            c.state = State::kHeaders;
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.u64 = ready[k].data.u64;
            epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
          }
          continue;
        }
        while (c.state != State::kEnded) {
          const ssize_t r = recv(c.fd, buf, sizeof(buf), 0);
          if (r > 0) {
            c.in.append(buf, static_cast<size_t>(r));
            Parse(c, Clock::now());
            continue;
          }
          if (r == 0) End(c, "closed by the shim");
          if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            End(c, "recv: " + std::string(strerror(errno)));
          }
          break;
        }
      }
    }
  }

  // HTTP/1.1 response headers, then chunks, whose data is split into lines.
  void Parse(Conn& c, Clock::time_point at) {
    for (;;) {
      switch (c.state) {
        case State::kHeaders: {
          const size_t end = c.in.find("\r\n\r\n");
          if (end == std::string::npos) return;
          const std::string head = absl::AsciiStrToLower(c.in.substr(0, end));
          c.in.erase(0, end + 4);
          if (!absl::StartsWith(head, "http/1.1 200")) {
            return End(c, "status " + head.substr(0, head.find('\r')));
          }
          if (!absl::StrContains(head, "transfer-encoding: chunked")) {
            return End(c, "not chunked");
          }
          if (absl::StrContains(head, "content-encoding:")) return End(c, "compressed stream");
          --opening_;
          c.state = State::kChunkSize;
          break;
        }
        case State::kChunkSize: {
          const size_t end = c.in.find("\r\n");
          if (end == std::string::npos) return;
          const std::string size = c.in.substr(0, c.in.find_first_of(";\r"));
          c.in.erase(0, end + 2);
          c.chunk_left = std::strtoul(size.c_str(), nullptr, 16);
          if (c.chunk_left == 0) return End(c, "stream ended");
          c.state = State::kChunkData;
          break;
        }
        case State::kChunkData: {
          const size_t take = std::min(c.chunk_left, c.in.size());
          if (take == 0) return;
          size_t from = 0;
          for (size_t nl; (nl = c.in.find('\n', from)) < take; from = nl + 1) {
            c.line.append(c.in, from, nl - from);
            if (!c.line.empty()) {  // Blank lines are the shim's heartbeats.
              c.lines.push_back({std::move(c.line), at});
              ++c.events;
              ++total_;
            }
            c.line.clear();
          }
          c.line.append(c.in, from, take - from);
          c.in.erase(0, take);
          c.chunk_left -= take;
          if (c.chunk_left > 0) return;
          c.state = State::kChunkEnd;
          break;
        }
        case State::kChunkEnd:
          if (c.in.size() < 2) return;
          c.in.erase(0, 2);
          c.state = State::kChunkSize;
          break;
        case State::kConnecting:
        case State::kEnded:
          return;
      }
    }
  }

  const int port_;
  const std::string request_;
  std::vector<std::unique_ptr<Conn>> conns_;
  int epoll_ = -1;
  int max_opening_ = 0;
  int opening_ = 0;  // Reader thread only.
  size_t next_ = 0;  // Reader thread only: the next stream to connect.
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> total_{0}, ended_{0};
};

// The shim's own steps on one workspace, as shim_server.cc takes them, each timed alone
// on this thread: a get encodes the object to JSON (protobuf's JSON printer, then
// nlohmann's parser, then a dump) and compresses it for a client that accepts gzip; a
// create parses the body, dumps it again and decodes that as a YAML manifest, then
// encodes the reply as a get does. Protobuf's binary codec is the gRPC path's
// counterpart. Microseconds per call.
nlohmann::json CodecCosts(const v1::Workspace& ws, const std::string& create_body) {
  // The best of three 100 ms rounds: the machine is shared, and a round that other work
  // interrupted says less about the step.
  auto us_per_call = [](auto&& step) {
    for (int i = 0; i < 50; ++i) step();
    double best = 0;
    for (int round = 0; round < 3; ++round) {
      int64_t n = 0;
      const auto begin = Clock::now();
      while (Clock::now() - begin < std::chrono::milliseconds(100)) {
        for (int i = 0; i < 20; ++i) step();
        n += 20;
      }
      const double us = Micros(Clock::now() - begin) / static_cast<double>(n);
      if (round == 0 || us < best) best = us;
    }
    return best;
  };
  nlohmann::json j;
  std::string wire;
  ws.SerializeToString(&wire);
  j["object_proto_bytes"] = wire.size();
  j["proto_serialize"] = us_per_call([&] {
    std::string out;
    ws.SerializeToString(&out);
  });
  j["proto_parse"] = us_per_call([&] {
    v1::Workspace out;
    out.ParseFromString(wire);
  });

  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = false;
  std::string printed;
  (void)google::protobuf::util::MessageToJsonString(ws, &printed, print);
  j["protobuf_json_print"] = us_per_call([&] {
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(ws, &out, print);
  });
  j["nlohmann_parse_printed"] = us_per_call([&] {
    auto parsed = nlohmann::ordered_json::parse(printed, nullptr, false);
    (void)parsed;
  });
  j["message_to_json_value"] = us_per_call([&] { (void)MessageToJsonValue(ws); });
  const nlohmann::ordered_json value = MessageToJsonValue(ws);
  const std::string body = value.dump();
  j["object_json_bytes"] = body.size();
  j["json_dump"] = us_per_call([&] { (void)value.dump(); });
  httplib::detail::gzip_compressor probe;
  size_t gzipped = 0;
  probe.compress(body.data(), body.size(), true, [&](const char*, size_t n) {
    gzipped += n;
    return true;
  });
  j["object_gzip_bytes"] = gzipped;
  j["gzip_body"] = us_per_call([&] {
    httplib::detail::gzip_compressor gz;
    gz.compress(body.data(), body.size(), true, [](const char*, size_t) { return true; });
  });

  j["create_body_bytes"] = create_body.size();
  j["create_json_parse"] = us_per_call([&] {
    auto parsed = nlohmann::ordered_json::parse(create_body, nullptr, false);
    (void)parsed;
  });
  const nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(create_body);
  j["create_json_dump"] = us_per_call([&] { (void)parsed.dump(); });
  j["create_parse_manifests"] = us_per_call([&] { (void)ParseManifests(create_body); });
  j["create_json_to_message"] = us_per_call([&] {
    v1::Workspace out;
    FieldErrors errors;
    JsonToMessage(parsed, &out, errors);
  });
  // What the shim runs: the reflection writer with apiVersion and kind first.
  const JsonHead head = {{"apiVersion", "kaito.sh/v1beta1"}, {"kind", "Workspace"}};
  j["write_message_json"] = us_per_call([&] { (void)WriteMessageJson(ws, head); });

  // Two steps of every request: cpp-httplib matches the path against the shim's route
  // pattern with std::regex, and the shim counts the request in a labelled counter.
  const std::regex route(R"(/(api|apis)/.+)");
  const std::string path = std::string(kCollection) + "/ws-12345";
  j["route_regex_match"] = us_per_call([&] {
    std::smatch m;
    (void)std::regex_match(path, m, route);
  });
  prometheus::Registry registry;
  auto& requests = prometheus::BuildCounter().Name("requests_total").Register(registry);
  j["request_counter_add"] = us_per_call([&] {
    requests.Add({{"verb", "get"}, {"resource", "workspaces"}, {"code", std::to_string(200)}})
        .Increment();
  });

  // The shim's steps: a GET's reply is written once per resourceVersion (the read cache
  // keeps it) and not gzipped (under 128 KiB); a create parses, decodes and writes its reply.
  j["get_path_sum"] = j["write_message_json"].get<double>();
  j["create_path_sum"] = j["create_json_parse"].get<double>() +
                         j["create_json_to_message"].get<double>() +
                         j["write_message_json"].get<double>();
  // The steps before (protobuf's printer, a JSON tree, gzip; YAML for the body).
  j["get_path_sum_before"] = j["protobuf_json_print"].get<double>() +
                             j["nlohmann_parse_printed"].get<double>() +
                             j["json_dump"].get<double>() + j["gzip_body"].get<double>();
  j["create_path_sum_before"] =
      j["create_json_parse"].get<double>() + j["create_json_dump"].get<double>() +
      j["create_parse_manifests"].get<double>() + j["get_path_sum_before"].get<double>();
  j["grpc_path_sum"] = j["proto_serialize"].get<double>() + j["proto_parse"].get<double>();
  return j;
}

struct Updater {
  v1::WorkspaceService::Stub* stub;
  v1::Workspace current;
  int64_t errors = 0;

  // One update of the watched workspace; its resourceVersion and send time, or -1.
  int64_t Update(int n, Clock::time_point* sent_at) {
    (*current.mutable_metadata()->mutable_labels())["n"] = std::to_string(n);
    grpc::ClientContext ctx;
    v1::UpdateWorkspaceRequest req;
    *req.mutable_workspace() = current;
    v1::UpdateWorkspaceResponse resp;
    *sent_at = Clock::now();
    if (!stub->UpdateWorkspace(&ctx, req, &resp).ok()) {
      ++errors;
      return -1;
    }
    current = resp.workspace();
    int64_t rv = -1;
    return absl::SimpleAtoi(current.metadata().resource_version(), &rv) ? rv : -1;
  }
};

nlohmann::json WatchPhase(const ShimBenchOptions& o, int port, v1::WorkspaceService::Stub* stub,
                          server::ServerApp& app, prometheus::Registry& shim_registry) {
  {
    grpc::ClientContext ctx;
    v1::CreateWorkspaceRequest req;
    *req.mutable_workspace() = MakeWorkspace(kWatched);
    v1::CreateWorkspaceResponse resp;
    stub->CreateWorkspace(&ctx, req, &resp);
  }
  const double server_watches_before =
      GaugeValue(app.metrics_registry(), "kaito_watch_streams_open");
  const double shim_watch_200_before = CounterValue(shim_registry, "kaito_shim_requests_total",
                                                    {{"verb", "watch"}, {"code", "200"}});
  const int64_t rss_before = ProcStatus("VmRSS"), threads_before = ProcStatus("Threads");

  // As client-go asks for a watch of one object (`kubectl get -w NAME`).
  const std::string request =
      absl::StrCat("GET ", kCollection, "?watch=1&fieldSelector=metadata.name%3D", kWatched,
                   " HTTP/1.1\r\nHost: 127.0.0.1:", port,
                   "\r\nAccept: application/json\r\nAccept-Encoding: ", o.accept_encoding,
                   "\r\nUser-Agent: kaito-bench\r\n\r\n");
  WatchClients watches(port, request, o.watches);
  const auto open_begin = Clock::now();
  const int64_t overflows_before = ListenOverflows();
  watches.Start(o.watch_connects);
  // Established: the initial ADDED of the existing object has arrived.
  const bool all_open =
      WaitFor([&] { return watches.with_at_least(1) + watches.ended() >= o.watches; },
              std::chrono::seconds(60));
  const double open_seconds = Seconds(Clock::now() - open_begin);
  const int64_t listen_overflows = ListenOverflows() - overflows_before;
  const int64_t established = watches.with_at_least(1);
  const std::map<std::string, int64_t> waiting = watches.Waiting();
  const int64_t rss_open = ProcStatus("VmRSS"), threads_open = ProcStatus("Threads");
  const double server_watches_open = GaugeValue(app.metrics_registry(), "kaito_watch_streams_open");

  Updater updater{stub, {}, 0};
  {
    grpc::ClientContext ctx;
    v1::GetWorkspaceRequest get;
    get.set_name(kWatched);
    stub->GetWorkspace(&ctx, get, &updater.current);
  }
  std::map<int64_t, Clock::time_point> sent;
  const auto update_begin = Clock::now();
  for (int u = 0; u < o.updates; ++u) {
    Clock::time_point at;
    const int64_t rv = updater.Update(u, &at);
    if (rv >= 0) sent[rv] = at;
    if (o.paced) {
      const int64_t want = 1 + static_cast<int64_t>(sent.size());
      WaitFor([&] { return watches.with_at_least(want) + watches.ended() >= o.watches; },
              std::chrono::seconds(30));
    }
  }
  const double update_seconds = Seconds(Clock::now() - update_begin);
  // Every stream that was established has every update (one that connected later got the
  // object as it was then, and no update).
  WaitFor(
      [&] { return watches.with_at_least(1 + static_cast<int64_t>(sent.size())) >= established; },
      std::chrono::seconds(120));
  const double delivery_seconds = Seconds(Clock::now() - update_begin);
  const int64_t rss_delivered = ProcStatus("VmRSS");
  watches.Stop();

  Figures f;
  f.name = "shim watch delivery";
  int64_t initial_added = 0, complete = 0, unparsed = 0;
  std::map<std::string, int64_t> end_reasons;
  std::vector<std::string> refused;  // Streams whose first event was not the object.
  for (size_t i = 0; i < watches.size(); ++i) {
    const auto& lines = watches.lines(i);
    if (!watches.end_reason(i).empty()) ++end_reasons[watches.end_reason(i)];
    size_t got = 0;
    for (size_t k = 0; k < lines.size(); ++k) {
      auto event = nlohmann::json::parse(lines[k].text, nullptr, false);
      if (!event.is_object() || !event.contains("type")) {
        ++unparsed;
        continue;
      }
      const std::string type = event["type"].get<std::string>();
      if (k == 0 && type == "ADDED") ++initial_added;
      if (k == 0 && type != "ADDED") refused.push_back(lines[k].text.substr(0, 300));
      if (type != "MODIFIED") continue;
      int64_t rv = -1;
      const auto& meta = event["object"]["metadata"];
      if (!meta.contains("resourceVersion") ||
          !absl::SimpleAtoi(meta["resourceVersion"].get<std::string>(), &rv)) {
        continue;
      }
      auto it = sent.find(rv);
      if (it == sent.end()) continue;
      f.latencies_us.push_back(Micros(lines[k].at - it->second));
      ++got;
    }
    if (got == sent.size() && !sent.empty()) ++complete;
  }
  f.ops = static_cast<int64_t>(f.latencies_us.size());
  f.errors =
      static_cast<int64_t>(o.watches) * static_cast<int64_t>(sent.size()) - f.ops + updater.errors;
  f.seconds = delivery_seconds;

  // Close every stream; the shim notices at its next write (a heartbeat at most
  // `watch_heartbeat` later) and then cancels its gRPC stream, in the same callback that
  // takes the watch out of its registry: the server's open-watch gauge drains with it.
  const auto close_begin = Clock::now();
  watches.CloseAll();
  const bool drained = WaitFor(
      [&] {
        return GaugeValue(app.metrics_registry(), "kaito_watch_streams_open") <=
               server_watches_before;
      },
      std::chrono::seconds(30));
  const double drain_seconds = Seconds(Clock::now() - close_begin);
  const double server_watches_after =
      GaugeValue(app.metrics_registry(), "kaito_watch_streams_open");
  // The workers the watches held serve again.
  auto probe = NewHttpClient(port);
  auto res = probe->Get(absl::StrCat(kCollection, "/", kWatched), RequestHeaders(o));
  const bool serves_after = res && res->status == 200;

  nlohmann::json j = f.ToJson();
  j["watches"] = o.watches;
  j["updates"] = o.updates;
  j["paced"] = o.paced;
  j["established"] = established;
  j["all_established"] = all_open && initial_added == o.watches;
  j["initial_added_events"] = initial_added;
  j["open_seconds"] = open_seconds;
  j["watch_connects"] = o.watch_connects;
  j["listen_overflows"] = listen_overflows;
  j["watchers_with_every_update"] = complete;
  j["update_seconds"] = update_seconds;
  j["events_delivered"] = f.ops;
  j["events_expected"] = static_cast<int64_t>(o.watches) * static_cast<int64_t>(sent.size());
  j["unparsed_lines"] = unparsed;
  j["refused"] = refused.size();
  if (!refused.empty()) j["refused_first_event"] = refused.front();
  j["stream_end_reasons"] = end_reasons;
  j["not_established"] = waiting;
  j["shim_watches_accepted"] = CounterValue(shim_registry, "kaito_shim_requests_total",
                                            {{"verb", "watch"}, {"code", "200"}}) -
                               shim_watch_200_before;
  j["server_watch_streams"] = {{"before", server_watches_before},
                               {"open", server_watches_open},
                               {"after_close", server_watches_after}};
  j["drained"] = drained;
  j["drain_seconds"] = drain_seconds;
  j["serves_after_close"] = serves_after;
  j["vm_rss_kib"] = {{"before", rss_before}, {"open", rss_open}, {"delivered", rss_delivered}};
  j["rss_kib_per_watch"] =
      o.watches > 0 ? static_cast<double>(rss_open - rss_before) / o.watches : 0;
  j["threads"] = {
      {"before", threads_before}, {"open", threads_open}, {"after_close", ProcStatus("Threads")}};
  return j;
}

nlohmann::json Compare(const nlohmann::json& grpc, const nlohmann::json& shim) {
  const double g = grpc["ops_per_second"].get<double>();
  return {{"throughput_ratio", g > 0 ? shim["ops_per_second"].get<double>() / g : 0},
          {"added_p50_ms", shim["p50_ms"].get<double>() - grpc["p50_ms"].get<double>()},
          {"added_p99_ms", shim["p99_ms"].get<double>() - grpc["p99_ms"].get<double>()}};
}

}  // namespace

int RunShimBench(const ShimBenchOptions& o) {
  const absl::Duration phase = absl::Milliseconds(static_cast<int64_t>(o.seconds * 1000));
  std::string data_dir = o.data_dir, tmp;
  if (data_dir.empty()) {
    char pattern[] = "/tmp/kaito-bench-XXXXXX";
    tmp = mkdtemp(pattern);
    data_dir = tmp;
  }
  nlohmann::json out;
  out["machine"]["cpus"] = std::thread::hardware_concurrency();
  out["machine"]["loadavg_1m_at_start"] = LoadAverage();

  // The threads the server and the shim start take the name of the thread that starts
  // them: named so, their CPU time can be told apart (`cpu_seconds_by_thread`).
  pthread_setname_np(pthread_self(), "kaito-server");
  auto started = server::ServerApp::Start(ApiServerOptions(data_dir));
  pthread_setname_np(pthread_self(), "kaito-bench");
  if (!started.ok()) {
    std::fprintf(stderr, "cannot start server: %s\n", started.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<server::ServerApp> local = std::move(*started);
  const std::string server = "127.0.0.1:" + std::to_string(local->grpc_port());

  // The shim dials the server as a separate process would: a channel, and a TCP
  // connection, of its own.
  grpc::ChannelArguments own_connection;
  own_connection.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto shim_channel =
      grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), own_connection);
  auto shim_registry = std::make_shared<prometheus::Registry>();
  shim::ShimOptions shim_options;
  shim_options.listen = "127.0.0.1:0";
  shim_options.max_connections = o.max_connections;
  if (!o.read_cache) shim_options.read_cache.authorization_ttl = absl::ZeroDuration();
  pthread_setname_np(pthread_self(), "kube-shim");
  auto cache_channel =
      grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), own_connection);
  auto shim_started =
      shim::KubeShim::Start(shim_options, shim_channel, shim_registry, cache_channel);
  pthread_setname_np(pthread_self(), "kaito-bench");
  if (!shim_started.ok()) {
    std::fprintf(stderr, "cannot start the shim: %s\n", shim_started.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<shim::KubeShim> kube_shim = std::move(*shim_started);
  const int port = kube_shim->port();

  std::vector<std::shared_ptr<grpc::Channel>> chans;
  std::vector<std::unique_ptr<v1::WorkspaceService::Stub>> stubs;
  for (int i = 0; i < std::max(1, o.channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // One TCP connection per channel.
    chans.push_back(grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(v1::WorkspaceService::NewStub(chans.back()));
  }
  const httplib::Headers headers = RequestHeaders(o);
  const std::string body_template = CreateBodyTemplate();

  out["config"] = {{"clients", o.clients},
                   {"channels", o.channels},
                   {"seconds", o.seconds},
                   {"watches", o.watches},
                   {"updates", o.updates},
                   {"paced", o.paced},
                   {"watch_connects", o.watch_connects},
                   {"accept_encoding", o.accept_encoding},
                   {"max_connections", o.max_connections},
                   {"read_cache", o.read_cache},
                   {"server", server},
                   {"shim_port", port},
                   {"in_process", true}};
  auto report = [&](const std::string& key, nlohmann::json j) {
    if (!o.json) {
      Print(j);
      if (j.contains("cpu_us_per_op")) PrintCpu(j);
    }
    out["results"][key] = std::move(j);
  };

  // gRPC creates at `clients`, the baseline; then the same workspaces through the shim.
  std::atomic<int64_t> created{0};
  {
    struct Call {
      grpc::ClientContext ctx;
      v1::CreateWorkspaceRequest req;
      v1::CreateWorkspaceResponse resp;
    };
    CpuMeter cpu;
    auto f = ClosedLoop(
        "grpc create", o.clients, phase,
        [&](int c, int64_t seq, std::function<void(bool)> done) {
          auto* call = new Call;
          *call->req.mutable_workspace() = MakeWorkspace("ws-" + std::to_string(seq));
          stubs[c % stubs.size()]->async()->CreateWorkspace(&call->ctx, &call->req, &call->resp,
                                                            [call, done, &created](grpc::Status s) {
                                                              if (s.ok()) ++created;
                                                              done(s.ok());
                                                              delete call;
                                                            });
        },
        cpu.mark());
    nlohmann::json j = f.ToJson();
    cpu.AddTo(j, f);
    report("grpc_create", std::move(j));
  }
  std::vector<std::unique_ptr<httplib::Client>> http(o.clients);
  // The shim listens with cpp-httplib's backlog of 5: 64 clients connecting at once
  // overflow it, and some connections then hang for seconds. The watch phase measures that
  // burst; the closed loops measure the steady state, so their clients connect (and warm
  // up) at most 4 at a time.
  std::counting_semaphore<> connecting(4);
  auto open_connection = [&](int c, int to_port, const std::string& path) {
    connecting.acquire();
    http[c] = NewHttpClient(to_port);
    http[c]->Get(path, headers);  // Opens the kept-alive connection.
    connecting.release();
  };
  auto connect = [&](int c) { open_connection(c, port, "/version"); };
  {
    CpuMeter cpu;
    auto f = ThreadedClosedLoop(
        "shim create (POST)", o.clients, phase, connect,
        [&](int c, int64_t seq) {
          const std::string body = absl::StrReplaceAll(
              body_template, {{kNamePlaceholder, "shim-ws-" + std::to_string(seq)}});
          auto res = http[c]->Post(kCollection, headers, body, "application/json");
          return res && res->status == 201;
        },
        cpu.mark());
    nlohmann::json j = f.ToJson();
    cpu.AddTo(j, f);
    report("shim_create", std::move(j));
  }

  // Gets of the objects the gRPC creates stored, the same names both ways.
  const int64_t n = std::max<int64_t>(1, created.load());
  auto grpc_get = [&](const std::string& name, int clients) {
    struct Call {
      grpc::ClientContext ctx;
      v1::GetWorkspaceRequest req;
      v1::Workspace resp;
    };
    CpuMeter cpu;
    auto f = ClosedLoop(
        name, clients, phase,
        [&](int c, int64_t seq, std::function<void(bool)> done) {
          auto* call = new Call;
          call->req.set_namespace_(kNamespace);
          call->req.set_name("ws-" + std::to_string(seq % n));
          stubs[c % stubs.size()]->async()->GetWorkspace(&call->ctx, &call->req, &call->resp,
                                                         [call, done](grpc::Status s) {
                                                           done(s.ok());
                                                           delete call;
                                                         });
        },
        cpu.mark());
    nlohmann::json j = f.ToJson();
    cpu.AddTo(j, f);
    return j;
  };
  auto shim_get = [&](const std::string& name, int clients) {
    CpuMeter cpu;
    auto f = ThreadedClosedLoop(
        name, clients, phase, connect,
        [&](int c, int64_t seq) {
          auto res = http[c]->Get(absl::StrCat(kCollection, "/ws-", seq % n), headers);
          return res && res->status == 200;
        },
        cpu.mark());
    nlohmann::json j = f.ToJson();
    cpu.AddTo(j, f);
    return j;
  };
  // What a get's reply is on the wire.
  {
    auto probe = NewHttpClient(port);
    auto res = probe->Get(absl::StrCat(kCollection, "/ws-0"), headers);
    out["config"]["get_reply_content_encoding"] =
        res ? res->get_header_value("Content-Encoding") : "(no reply)";
  }
  report("grpc_get", grpc_get("grpc get", o.clients));
  report("shim_get", shim_get("shim get", o.clients));
  report("grpc_get_1", grpc_get("grpc get (1 client)", 1));
  report("shim_get_1", shim_get("shim get (1 client)", 1));

  // Floors under the shim's GET, its parts alone. The HTTP side: an `HttpListener` set up
  // as the shim's is, whose route returns the JSON that the shim's GET of ws-0 returns,
  // with no gRPC call and no encoding. The gRPC side: the shim's own `KindBackend`
  // (blocking gRPC calls, as its HTTP workers make them) from as many threads, over the
  // shim's channel. And the two composed: a route that makes the backend's call, then
  // returns the same fixed JSON (the shim's GET but for its JSON encoding and its own
  // request handling).
  {
    std::unique_ptr<shim::KindBackend> backend = shim::NewWorkspaceBackend(shim_channel);
    std::atomic<int64_t> floor_seq{0};
    auto probe = NewHttpClient(port);
    auto res = probe->Get(absl::StrCat(kCollection, "/ws-0"),
                          {{"Accept", "application/json"}, {"Accept-Encoding", "identity"}});
    const std::string reply = res ? res->body : std::string("{}");
    HttpListenerOptions floor_options;
    floor_options.workers = o.clients + 8;
    floor_options.io_timeout_ms = 10000;
    floor_options.keep_alive_timeout_s = 5;
    floor_options.keep_alive_max_requests = 100000;
    auto floor =
        HttpListener::Bind("bench HTTP floor", "127.0.0.1:0", TlsServerFiles{}, floor_options);
    if (floor.ok()) {
      (*floor)->http().Get("/floor", [reply](const httplib::Request&, httplib::Response& res) {
        res.set_content(reply, "application/json");
      });
      (*floor)->http().Get("/floor-grpc",
                           [&, reply](const httplib::Request&, httplib::Response& res) {
                             shim::CallOptions call;
                             call.deadline = absl::Now() + absl::Seconds(60);
                             std::unique_ptr<google::protobuf::Message> object;
                             const std::string name = "ws-" + std::to_string(floor_seq++ % n);
                             if (!backend->Get(call, kNamespace, name, &object).ok()) {
                               res.status = 500;
                               return;
                             }
                             res.set_content(reply, "application/json");
                           });
      pthread_setname_np(pthread_self(), "http-floor");
      (*floor)->Start();
      pthread_setname_np(pthread_self(), "kaito-bench");
      const int floor_port = (*floor)->port();
      auto connect_floor = [&](int c) { open_connection(c, floor_port, "/floor"); };
      auto http_floor = [&](const std::string& name, int clients, const std::string& path) {
        CpuMeter cpu;
        auto f = ThreadedClosedLoop(
            name, clients, phase, connect_floor,
            [&](int c, int64_t) {
              auto res = http[c]->Get(path, headers);
              return res && res->status == 200;
            },
            cpu.mark());
        nlohmann::json j = f.ToJson();
        cpu.AddTo(j, f);
        j["reply_bytes"] = reply.size();
        return j;
      };
      report("floor_http", http_floor("floor: http fixed reply", o.clients, "/floor"));
      report("floor_http_1", http_floor("floor: http (1 client)", 1, "/floor"));
      report("floor_http_grpc", http_floor("floor: http + backend get", o.clients, "/floor-grpc"));
      report("floor_http_grpc_1", http_floor("floor: http+backend (1)", 1, "/floor-grpc"));
      http.clear();
      http.resize(o.clients);
      (*floor)->Stop();
    }
    auto backend_get = [&](const std::string& name, int clients) {
      CpuMeter cpu;
      auto f = ThreadedClosedLoop(
          name, clients, phase, [](int) {},
          [&](int, int64_t seq) {
            shim::CallOptions call;
            call.deadline = absl::Now() + absl::Seconds(60);
            std::unique_ptr<google::protobuf::Message> object;
            return backend->Get(call, kNamespace, "ws-" + std::to_string(seq % n), &object).ok();
          },
          cpu.mark());
      nlohmann::json j = f.ToJson();
      cpu.AddTo(j, f);
      return j;
    };
    report("floor_backend_get", backend_get("floor: shim backend get", o.clients));
    report("floor_backend_get_1", backend_get("floor: backend get (1)", 1));
  }
  http.clear();

  nlohmann::json& r = out["results"];
  nlohmann::json compare = {
      {"get", Compare(r["grpc_get"], r["shim_get"])},
      {"get_1_client", Compare(r["grpc_get_1"], r["shim_get_1"])},
      {"create", Compare(r["grpc_create"], r["shim_create"])},
      {"targets", {{"added_p50_ms_max", 1.0}, {"throughput_ratio_min", 0.5}, {"watches", 1000}}}};
  if (!o.json) {
    std::printf(
        "%-28s get %.2fx throughput, p50 %+.3f ms; get at 1 client p50 %+.3f ms; "
        "create %.2fx throughput\n",
        "shim / gRPC", compare["get"]["throughput_ratio"].get<double>(),
        compare["get"]["added_p50_ms"].get<double>(),
        compare["get_1_client"]["added_p50_ms"].get<double>(),
        compare["create"]["throughput_ratio"].get<double>());
    std::fflush(stdout);
  }
  r["shim_vs_grpc"] = compare;

  // The shim's codec steps on a stored workspace and on the create body.
  {
    grpc::ClientContext ctx;
    v1::GetWorkspaceRequest get;
    get.set_name("ws-0");
    v1::Workspace stored;
    stubs[0]->GetWorkspace(&ctx, get, &stored);
    const std::string body =
        absl::StrReplaceAll(body_template, {{kNamePlaceholder, "codec-probe"}});
    nlohmann::json codec = CodecCosts(stored, body);
    if (!o.json) {
      std::printf(
          "%-28s us per call: get encode %.1f (before: printer %.1f + parse %.1f + dump %.1f "
          "+ gzip %.1f); create decode+reply %.1f (parse %.1f, to message %.1f; before: via "
          "YAML %.1f); protobuf binary %.1f; route regex %.1f, counter %.1f\n",
          "shim codec (1 thread)", codec["get_path_sum"].get<double>(),
          codec["protobuf_json_print"].get<double>(),
          codec["nlohmann_parse_printed"].get<double>(), codec["json_dump"].get<double>(),
          codec["gzip_body"].get<double>(), codec["create_path_sum"].get<double>(),
          codec["create_json_parse"].get<double>(), codec["create_json_to_message"].get<double>(),
          codec["create_parse_manifests"].get<double>(), codec["grpc_path_sum"].get<double>(),
          codec["route_regex_match"].get<double>(), codec["request_counter_add"].get<double>());
      std::fflush(stdout);
    }
    r["codec_us_per_call"] = std::move(codec);

    // The same steps from `clients` threads at once, as the shim's workers run them: a
    // step that allocates much costs more per call when many threads allocate together.
    const absl::Duration codec_phase = std::max(phase / 5, absl::Milliseconds(200));
    auto parallel = [&](const std::string& name, const std::function<bool()>& step) {
      CpuMeter cpu;
      auto f = ThreadedClosedLoop(
          name, o.clients, codec_phase, [](int) {}, [&](int, int64_t) { return step(); },
          cpu.mark());
      nlohmann::json j = f.ToJson();
      cpu.AddTo(j, f);
      return j;
    };
    const JsonHead head = {{"apiVersion", "kaito.sh/v1beta1"}, {"kind", "Workspace"}};
    report("codec_get_encode_parallel", parallel("codec: get encode (threads)", [&] {
             return WriteMessageJson(stored, head).has_value();
           }));
    report("codec_create_decode_parallel", parallel("codec: create decode (threads)", [&] {
             auto parsed = nlohmann::ordered_json::parse(body, nullptr, false);
             v1::Workspace object;
             FieldErrors errors;
             JsonToMessage(parsed, &object, errors);
             return errors.empty() && WriteMessageJson(object, head).has_value();
           }));
  }

  if (o.watches > 0 && o.updates > 0) {
    auto j = WatchPhase(o, port, stubs[0].get(), *local, *shim_registry);
    if (!o.json) {
      Print(j);
      std::printf(
          "%-28s %d watches x %d updates: %lld/%lld events, %lld watchers got every update; "
          "%lld of %d established (initial ADDED) in %.2f s, %lld listen-queue overflows\n",
          "", o.watches, o.updates, static_cast<long long>(j["events_delivered"].get<int64_t>()),
          static_cast<long long>(j["events_expected"].get<int64_t>()),
          static_cast<long long>(j["watchers_with_every_update"].get<int64_t>()),
          static_cast<long long>(j["initial_added_events"].get<int64_t>()), o.watches,
          j["open_seconds"].get<double>(),
          static_cast<long long>(j["listen_overflows"].get<int64_t>()));
      std::printf(
          "%-28s VmRSS %lld -> %lld KiB (%.1f KiB per watch), threads %lld -> %lld; "
          "closed: server watch streams %.0f -> %.0f in %.2f s (%s), serves after: %s\n",
          "", static_cast<long long>(j["vm_rss_kib"]["before"].get<int64_t>()),
          static_cast<long long>(j["vm_rss_kib"]["open"].get<int64_t>()),
          j["rss_kib_per_watch"].get<double>(),
          static_cast<long long>(j["threads"]["before"].get<int64_t>()),
          static_cast<long long>(j["threads"]["open"].get<int64_t>()),
          j["server_watch_streams"]["open"].get<double>(),
          j["server_watch_streams"]["after_close"].get<double>(), j["drain_seconds"].get<double>(),
          j["drained"].get<bool>() ? "drained" : "NOT drained",
          j["serves_after_close"].get<bool>() ? "yes" : "NO");
      if (j.contains("refused_first_event")) {
        std::printf("%-28s %lld refused, e.g. %s\n", "",
                    static_cast<long long>(j["refused"].get<size_t>()),
                    j["refused_first_event"].get<std::string>().c_str());
      }
      if (!j["stream_end_reasons"].empty() || !j["not_established"].empty()) {
        std::printf("%-28s streams ended early: %s; not established: %s\n", "",
                    j["stream_end_reasons"].dump().c_str(), j["not_established"].dump().c_str());
      }
      std::fflush(stdout);
    }
    r["watch"] = std::move(j);
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  out["max_rss_kib"] = u.ru_maxrss;
  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("max RSS (clients, shim and server together): %lld KiB\n",
                static_cast<long long>(out["max_rss_kib"].get<int64_t>()));
  }
  kube_shim->Shutdown();
  kube_shim.reset();
  shim_channel.reset();
  stubs.clear();
  chans.clear();
  local.reset();
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return 0;
}

}  // namespace kaito::bench
