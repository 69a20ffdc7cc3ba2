// `kaitoctl get`: lists or named objects of one or more kinds in every output format, and
// with -w / --watch-only the workspace changes after them, flushed per event.
#include <algorithm>
#include <cstdio>

#include "absl/time/clock.h"
#include "common/backoff.h"
#include "tools/kaitoctl/commands.h"
#include "tools/kaitoctl/object_reader.h"
#include "tools/kaitoctl/output_format.h"

namespace kaito::ctl {
namespace {

// What one kind's selection read.
struct Fetched {
  const ResourceType* type = nullptr;
  Objects objects;
  std::string resource_version;  // Of the list, or of the one named object.
  bool listed = false;           // A list was read (no names given), successfully.
};

ReadScope ScopeOf(const Client& c, const GetOptions& o) {
  ReadScope scope;
  scope.ns = o.all_namespaces ? "" : c.globals().ns;
  scope.selector = o.selector;
  scope.cloud = o.cloud;
  return scope;
}

// Reads one selection: the list, or each name (a missing one reported, or skipped with
// --ignore-not-found). Returns the exit code so far.
int Fetch(Client& c, const ResourceSelection& selection, const GetOptions& o, Fetched* out) {
  out->type = selection.type;
  const ReadScope scope = ScopeOf(c, o);
  if (selection.names.empty()) {
    CallStatus s = ListObjects(c, *selection.type, scope, &out->objects, &out->resource_version);
    out->listed = s.ok();
    return s.ok() ? 0 : Fail(s);
  }
  int rc = 0;
  for (const std::string& name : selection.names) {
    CallStatus s = GetObject(c, *selection.type, scope, name, &out->objects);
    if (s.code() == grpc::NOT_FOUND && o.ignore_not_found) continue;
    if (!s.ok()) rc = Fail(s);
  }
  return rc;
}

void SaysNoResources(const ResourceType& type, const ReadScope& scope) {
  if (type.namespaced && !scope.ns.empty()) {
    std::fprintf(stderr, "No resources found in %s namespace.\n", scope.ns.c_str());
  } else {
    std::fprintf(stderr, "No resources found\n");
  }
}

std::vector<PrintedObject> Printed(const Objects& objects) {
  std::vector<PrintedObject> out;
  for (const auto& o : objects) out.push_back(ToPrinted(*o));
  return out;
}

PrintOptions OptionsFor(const PrintOptions& base, const ResourceType& type) {
  PrintOptions options = base;
  options.with_namespace = base.with_namespace && type.namespaced;
  return options;
}

// Tables, custom columns and names: each kind on its own, tables apart by a blank line.
void PrintPerKind(const std::vector<Fetched>& all, const PrintOptions& base,
                  const ReadScope& scope) {
  bool printed = false;
  for (const Fetched& f : all) {
    if (f.objects.empty()) {
      if (f.listed && base.format.IsTable()) SaysNoResources(*f.type, scope);
      continue;
    }
    if (printed && base.format.kind != OutputKind::kName) PrintAndFlush("\n");
    PrintAndFlush(FormatObjects(*f.type, Printed(f.objects), OptionsFor(base, *f.type), true));
    printed = true;
  }
}

// json, yaml and jsonpath: every kind's objects together, one List unless one object was
// named.
void PrintTogether(const std::vector<Fetched>& all, const PrintOptions& options, bool single) {
  std::vector<PrintedObject> objects;
  for (const Fetched& f : all) {
    for (PrintedObject& p : Printed(f.objects)) objects.push_back(std::move(p));
  }
  const bool any_listed =
      std::any_of(all.begin(), all.end(), [](const Fetched& f) { return f.listed; });
  if (objects.empty() && !any_listed) return;  // Nothing was read; the errors are reported.
  PrintAndFlush(FormatObjects(*all.front().type, objects, options, !single));
}

absl::StatusOr<PrintOptions> PrintOptionsOf(const GetOptions& o) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(o.output);
  if (!format.ok()) return format.status();
  PrintOptions options;
  options.format = std::move(*format);
  options.no_headers = o.no_headers;
  options.show_labels = o.show_labels;
  options.with_namespace = o.all_namespaces;
  options.now = absl::Now();
  return options;
}

// One object a watch brought, flushed at once: the table's header before the first row only,
// yaml documents apart.
void PrintWatched(const ResourceType& type, const google::protobuf::Message& object,
                  PrintOptions& options, bool& printed) {
  options.now = absl::Now();
  std::string text = FormatObjects(type, {ToPrinted(object)}, options, false, !printed);
  if (printed && options.format.kind == OutputKind::kYaml) text = "---\n" + text;
  PrintAndFlush(text);
  printed = true;
}

// -w for events: the stored events, oldest first (not with --watch-only), then each one as
// it is recorded, counted again, or removed past its TTL. The watch's own initial state is
// the list, so nothing is missed or printed twice between a list and a watch.
int WatchEvents(Client& c, const ResourceSelection& selection, const GetOptions& o,
                PrintOptions options) {
  const ResourceType& type = *selection.type;
  options = OptionsFor(options, type);
  v1::WatchEventsRequest req;
  req.set_namespace_(ScopeOf(c, o).ns);
  req.set_label_selector(o.selector);
  if (!selection.names.empty()) req.set_name(selection.names.front());
  auto ctx = c.StreamContext();  // No deadline: a watch runs until it is stopped.
  auto reader = c.nodes().WatchEvents(ctx.get(), req);
  v1::EventWatchEvent event;
  std::vector<v1::Event> initial;
  bool live = false, printed = false;
  while (reader->Read(&event)) {
    if (!live) {
      if (event.type() != v1::BOOKMARK) {
        initial.push_back(std::move(*event.mutable_object()));
        continue;
      }
      live = true;
      if (o.watch_only) continue;
      const auto last_seen = [](const v1::Event& e) {
        const auto& t = e.has_last_timestamp() ? e.last_timestamp() : e.first_timestamp();
        return std::make_pair(t.seconds(), t.nanos());
      };
      std::stable_sort(initial.begin(), initial.end(), [&](const v1::Event& a, const v1::Event& b) {
        return last_seen(a) < last_seen(b);
      });
      std::vector<PrintedObject> objects;
      for (const v1::Event& e : initial) objects.push_back(ToPrinted(e));
      if (!objects.empty()) {
        PrintAndFlush(FormatObjects(type, objects, options, false));
        printed = true;
      } else if (options.format.IsTable()) {
        SaysNoResources(type, ScopeOf(c, o));
      }
      continue;
    }
    if (event.type() == v1::BOOKMARK) continue;
    PrintWatched(type, event.object(), options, printed);
  }
  CallStatus s = c.Finished(reader->Finish(), *ctx);
  return s.ok() || s.code() == grpc::CANCELLED ? 0 : Fail(s);
}

// -w / --watch-only: the workspaces (all, or the one named), then every change until the
// stream ends or the user stops it. Each event is flushed as it is printed.
int GetAndWatch(Client& c, const ResourceSelection& selection, const GetOptions& o,
                PrintOptions options, const std::optional<JsonPath>& sort_by) {
  if (selection.names.size() > 1) return FailLocal("watch is only supported on one name");
  if (selection.type->plural == "events") return WatchEvents(c, selection, o, options);
  if (selection.type->plural != "workspaces") {
    return FailLocal("watch is served for workspaces and events only, not " +
                     selection.type->plural);
  }
  Fetched initial;
  if (int rc = Fetch(c, selection, o, &initial); rc != 0) return rc;
  if (!selection.names.empty() && !initial.objects.empty()) {
    initial.resource_version = ResourceVersionOf(*initial.objects.front());
  }
  const ResourceType& type = *selection.type;
  options = OptionsFor(options, type);
  bool printed = false;
  if (!o.watch_only) {
    std::vector<PrintedObject> objects = Printed(initial.objects);
    if (sort_by) SortObjects(objects, *sort_by);
    if (!objects.empty()) {
      PrintAndFlush(FormatObjects(type, objects, options, false));
      printed = true;
    } else if (initial.listed && options.format.IsTable()) {
      SaysNoResources(type, ScopeOf(c, o));
    }
  }
  v1::WatchWorkspacesRequest req;
  req.set_namespace_(ScopeOf(c, o).ns);
  req.set_label_selector(o.selector);
  if (!selection.names.empty()) req.set_name(selection.names.front());
  // When the server goes away (a replica dies or drains), the watch resumes after the last
  // resourceVersion it saw, on whichever replica --server reaches now, after a jittered
  // backoff (100 ms doubling to 5 s): no relist, nothing printed twice or missed.
  std::string last = initial.resource_version;
  JitteredBackoff backoff(absl::Milliseconds(100), absl::Seconds(5));
  while (true) {
    req.set_resource_version(last);
    auto ctx = c.StreamContext();  // No deadline: a watch runs until it is stopped.
    auto reader = c.workspaces().WatchWorkspaces(ctx.get(), req);
    v1::WorkspaceEvent event;
    bool received = false;
    while (reader->Read(&event)) {
      received = true;
      if (!event.object().metadata().resource_version().empty()) {
        last = event.object().metadata().resource_version();
      }
      if (event.type() == v1::BOOKMARK) continue;
      PrintWatched(type, event.object(), options, printed);
    }
    CallStatus s = c.Finished(reader->Finish(), *ctx);
    if (s.ok() || s.code() == grpc::CANCELLED) return 0;
    if (s.code() != grpc::UNAVAILABLE || last.empty()) return Fail(s);
    if (received) backoff.Reset();
    std::fprintf(stderr, "kaitoctl: the watch ended (%s); resuming after resourceVersion %s\n",
                 s.status.error_message().c_str(), last.c_str());
    absl::SleepFor(backoff.Next());
  }
}

}  // namespace

int GetCommand(Client& c, const GetOptions& o) {
  absl::StatusOr<std::vector<ResourceSelection>> selections = ParseResourceArgs(o.args);
  if (!selections.ok()) return FailLocal(std::string(selections.status().message()));
  absl::StatusOr<PrintOptions> options = PrintOptionsOf(o);
  if (!options.ok()) return FailLocal(std::string(options.status().message()));
  std::optional<JsonPath> sort_by;
  if (!o.sort_by.empty()) {
    absl::StatusOr<JsonPath> key = JsonPath::ParseExpression(o.sort_by);
    if (!key.ok()) return FailLocal("--sort-by: " + std::string(key.status().message()));
    sort_by = std::move(*key);
  }
  if (o.watch || o.watch_only) {
    if (selections->size() != 1) return FailLocal("watch is only supported on one kind");
    return GetAndWatch(c, selections->front(), o, *options, sort_by);
  }
  int rc = 0;
  std::vector<Fetched> all;
  for (const ResourceSelection& selection : *selections) {
    Fetched f;
    rc |= Fetch(c, selection, o, &f);
    all.push_back(std::move(f));
  }
  if (sort_by) {
    for (Fetched& f : all) {
      Objects sorted;
      for (size_t i : SortOrder(Printed(f.objects), *sort_by)) {
        sorted.push_back(std::move(f.objects[i]));
      }
      f.objects = std::move(sorted);
    }
  }
  const bool single = selections->size() == 1 && selections->front().names.size() == 1;
  const OutputKind kind = options->format.kind;
  if (kind == OutputKind::kJson || kind == OutputKind::kYaml || kind == OutputKind::kJsonPath) {
    PrintTogether(all, *options, single);
  } else {
    PrintPerKind(all, *options, ScopeOf(c, o));
  }
  return rc;
}

}  // namespace kaito::ctl
