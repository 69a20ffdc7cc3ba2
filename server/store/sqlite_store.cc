#include "server/store/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>

#include "absl/time/clock.h"

namespace kaito::server::store {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS kv(
  key TEXT PRIMARY KEY, value BLOB NOT NULL,
  create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history(
  rev INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL,
  value BLOB NOT NULL, create_rev INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(name, value) VALUES ('revision', 0), ('compacted', 0);
)sql";

// Classifies a SQLite result code by code, once, at the edge.
absl::Status SqliteError(sqlite3* db, int rc, const char* what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return absl::UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(db, rc, sql);
    sqlite3_free(err);
    return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite3*> OpenConnection(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(db, rc, "open");
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", "PRAGMA foreign_keys=OFF;"}) {
    absl::Status status = Exec(db, pragma);
    if (!status.ok()) {
      sqlite3_close(db);
      return status;
    }
  }
  return db;
}

}  // namespace

// A prepared statement, reset on destruction so it can be reused.
class SqliteStore::Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status status() const {
    return rc_ == SQLITE_OK ? absl::OkStatus() : SqliteError(db_, rc_, "prepare");
  }
  Statement& Bind(int i, const std::string& text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, const std::string& blob) {
    sqlite3_bind_blob(stmt_, i, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int i, int64_t value) {
    sqlite3_bind_int64(stmt_, i, value);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  absl::Status Run(const char* what) {
    int rc = Step();
    Reset();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return SqliteError(db_, rc, what);
    return absl::OkStatus();
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), n) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

class SqliteStore::Handle : public WatchHandle {
 public:
  Handle(SqliteStore* store, int64_t id) : store_(store), id_(id) {}
  ~Handle() override { store_->RemoveWatcher(id_); }

 private:
  SqliteStore* store_;
  int64_t id_;
};

SqliteStore::SqliteStore(SqliteStoreOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(SqliteStoreOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("sqlite store: empty path");
  if (options.max_batch < 1) options.max_batch = 1;
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(options)));
  absl::Status status = store->Init();
  if (!status.ok()) return status;
  return store;
}

absl::Status SqliteStore::Init() {
  std::filesystem::path db_path(options_.path);
  std::error_code ec;
  if (db_path.has_parent_path()) {
    // A data directory we create is ours alone (0700); one that exists is left as the
    // operator made it, with a warning when others can read it.
    const std::filesystem::path dir = db_path.parent_path();
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::replace, ec);
    } else {
      const auto perms = std::filesystem::status(dir, ec).permissions();
      using P = std::filesystem::perms;
      if ((perms & (P::group_all | P::others_all)) != P::none) {
        spdlog::warn("store: data directory {} is accessible to other users; chmod 700 it",
                     dir.string());
      }
    }
  }
  // The database and its WAL and shared-memory files are 0600: SQLite gives the files it
  // creates the mode of the database file, so that file is made first, and files of an
  // older version with a wider mode are narrowed.
  {
    const int fd = ::open(options_.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::UnavailableError("open " + options_.path + ": " + std::strerror(errno));
    }
    ::close(fd);
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const std::string file = options_.path + suffix;
      if (std::filesystem::exists(file, ec)) ::chmod(file.c_str(), 0600);
    }
  }
  const std::string lock_path = options_.path + ".lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    return absl::UnavailableError("open " + lock_path + ": " + std::strerror(errno));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError("store " + options_.path +
                                         " is in use by another process (" + lock_path + ")");
  }
  auto write_db = OpenConnection(options_.path);
  if (!write_db.ok()) return write_db.status();
  write_db_ = *write_db;
  if (absl::Status s = Exec(write_db_, kSchema); !s.ok()) return s;
  auto read_db = OpenConnection(options_.path);
  if (!read_db.ok()) return read_db.status();
  {
    absl::MutexLock lock(&read_mu_);
    read_db_ = *read_db;
  }
  {
    Statement q(write_db_, "SELECT name, value FROM meta");
    if (absl::Status s = q.status(); !s.ok()) return s;
    absl::MutexLock lock(&state_mu_);
    while (q.Step() == SQLITE_ROW) {
      std::string name = q.Text(0);
      if (name == "revision") revision_ = q.Int(1);
      if (name == "compacted") compacted_ = q.Int(1);
    }
  }
  writer_ = std::thread([this] { WriterLoop(); });
  return absl::OkStatus();
}

SqliteStore::~SqliteStore() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
  if (write_db_) sqlite3_close(write_db_);
  {
    absl::MutexLock lock(&read_mu_);
    if (read_db_) sqlite3_close(read_db_);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void SqliteStore::Enqueue(Op op) {
  {
    absl::MutexLock lock(&queue_mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      return;
    }
  }
  std::move(op.done)(absl::UnavailableError("store is closed"));
}

void SqliteStore::Put(std::string key, std::string value, int64_t expected_revision,
                      WriteCallback done) {
  Enqueue(Op{Op::Kind::kPut, std::move(key), std::move(value), expected_revision, std::move(done)});
}

void SqliteStore::Delete(std::string key, int64_t expected_revision, WriteCallback done) {
  Enqueue(Op{Op::Kind::kDelete, std::move(key), "", expected_revision, std::move(done)});
}

// How often a store whose last commit failed tries a write that changes nothing.
constexpr absl::Duration kWriteProbeInterval = absl::Seconds(2);

void SqliteStore::WriterLoop() {
  std::vector<Op> batch;
  for (;;) {
    batch.clear();
    bool unwritable;
    {
      absl::MutexLock lock(&state_mu_);
      unwritable = !write_problem_.empty();
    }
    {
      absl::MutexLock lock(&queue_mu_);
      const absl::Condition work(
          +[](SqliteStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->queue_mu_) {
            return s->stopping_ || !s->queue_.empty();
          },
          this);
      // While writes fail, an idle store probes, so that its health comes back by itself.
      bool woken = true;
      if (unwritable) {
        woken = queue_mu_.AwaitWithTimeout(work, kWriteProbeInterval);
      } else {
        queue_mu_.Await(work);
      }
      if (queue_.empty() && stopping_) return;
      if (!woken) batch.push_back(Op{Op::Kind::kProbe, "", "", 0, [](absl::StatusOr<int64_t>) {}});
      while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    CommitBatch(batch);
  }
}

std::string SqliteStore::WriteProblem() {
  absl::MutexLock lock(&state_mu_);
  return write_problem_;
}

void SqliteStore::OnWriteHealthChange(std::function<void(const std::string&)> listener) {
  absl::MutexLock lock(&state_mu_);
  health_listener_ = std::move(listener);
}

void SqliteStore::CommitBatch(std::vector<Op>& batch) {
  std::vector<absl::StatusOr<int64_t>> results(batch.size(), absl::InternalError("unset"));
  std::vector<Event> events;
  int64_t revision;
  int64_t compact_to = 0;
  {
    absl::MutexLock lock(&state_mu_);
    revision = revision_;
  }
  const int64_t start_revision = revision;
  bool probe = false;

  Statement begin(write_db_, "BEGIN IMMEDIATE");
  Statement commit(write_db_, "COMMIT");
  Statement select(write_db_, "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1");
  Statement upsert(write_db_,
                   "INSERT OR REPLACE INTO kv(key, value, create_rev, mod_rev) "
                   "VALUES (?1, ?2, ?3, ?4)");
  Statement erase(write_db_, "DELETE FROM kv WHERE key = ?1");
  Statement record(write_db_,
                   "INSERT INTO history(rev, key, type, value, create_rev) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)");
  Statement set_revision(write_db_, "UPDATE meta SET value = ?1 WHERE name = 'revision'");

  const absl::Time began = absl::Now();
  absl::Status txn = begin.Run("begin");
  for (size_t i = 0; i < batch.size() && txn.ok(); ++i) {
    Op& op = batch[i];
    if (op.kind == Op::Kind::kCompact) {
      compact_to = std::max(compact_to, op.expected_revision);
      results[i] = op.expected_revision;
      continue;
    }
    if (op.kind == Op::Kind::kProbe) {
      probe = true;
      results[i] = revision;
      continue;
    }
    KeyValue current;
    int rc = select.Bind(1, op.key).Step();
    if (rc == SQLITE_ROW) {
      current.value = select.Text(0);
      current.create_revision = select.Int(1);
      current.mod_revision = select.Int(2);
    } else if (rc != SQLITE_DONE) {
      txn = SqliteError(write_db_, rc, "select");
    }
    select.Reset();
    if (!txn.ok()) break;
    absl::Status pre = CheckPrecondition(op.key, current.mod_revision, op.expected_revision,
                                         op.kind == Op::Kind::kDelete);
    if (!pre.ok()) {
      results[i] = pre;
      continue;
    }
    const int64_t rev = revision + 1;
    Event event;
    event.kv.key = op.key;
    event.kv.mod_revision = rev;
    if (op.kind == Op::Kind::kPut) {
      event.type = Event::Type::kPut;
      event.kv.create_revision = current.mod_revision > 0 ? current.create_revision : rev;
      event.kv.value = std::move(op.value);
      txn = upsert.Bind(1, op.key)
                .BindBlob(2, event.kv.value)
                .Bind(3, event.kv.create_revision)
                .Bind(4, rev)
                .Run("upsert");
    } else {
      event.type = Event::Type::kDelete;
      event.kv.create_revision = current.create_revision;
      event.kv.value = std::move(current.value);
      txn = erase.Bind(1, op.key).Run("delete");
    }
    if (txn.ok()) {
      txn = record.Bind(1, rev)
                .Bind(2, op.key)
                .Bind(3, static_cast<int64_t>(event.type == Event::Type::kPut ? 0 : 1))
                .BindBlob(4, event.kv.value)
                .Bind(5, event.kv.create_revision)
                .Run("history");
    }
    if (!txn.ok()) break;
    revision = rev;
    results[i] = rev;
    events.push_back(std::move(event));
  }
  // A probe rewrites the revision as it is: a page that must reach the disk.
  if (txn.ok() && (revision != start_revision || probe)) {
    txn = set_revision.Bind(1, revision).Run("meta");
  }
  if (txn.ok()) txn = commit.Run("commit");
  if (!txn.ok()) {
    // Nothing of this batch is durable: roll back and fail every write in it.
    Exec(write_db_, "ROLLBACK").IgnoreError();
    events.clear();
    for (auto& r : results) r = txn;
    revision = start_revision;
    compact_to = 0;
  }
  {
    absl::MutexLock lock(&state_mu_);
    revision_ = revision;
    ++stats_.commits;
    stats_.writes += static_cast<int64_t>(events.size());
    const size_t writes = std::count_if(batch.begin(), batch.end(), [](const Op& op) {
      return op.kind == Op::Kind::kPut || op.kind == Op::Kind::kDelete;
    });
    if (writes > 0) {
      stats_.commit_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - began));
      stats_.batch_writes.Observe(static_cast<double>(writes));
    }
    if (!txn.ok()) ++stats_.failed_commits;
    const std::string problem =
        txn.ok() ? "" : "the store cannot be written: " + std::string(txn.message());
    if (problem.empty() != write_problem_.empty()) {
      if (problem.empty()) {
        spdlog::info("store: writes succeed again");
      } else {
        spdlog::error("store: {}", problem);
      }
      if (health_listener_) health_listener_(problem);
    }
    // Also when only the text changed: /readyz says the latest reason.
    write_problem_ = problem;
    if (compact_to == 0 && options_.history_retention > 0 &&
        revision_ - compacted_ > options_.history_retention + options_.history_retention / 4) {
      compact_to = revision_ - options_.history_retention;
    }
  }
  if (compact_to > 0) {
    // Under the watch lock, so that a new watcher's compaction check and history read
    // never straddle a compaction.
    absl::MutexLock lock(&watch_mu_);
    absl::Status s = CompactLocked(compact_to);
    if (!s.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].kind == Op::Kind::kCompact) results[i] = s;
      }
    }
  }
  if (!events.empty()) {
    absl::MutexLock lock(&watch_mu_);
    std::vector<Event> matching;
    for (auto& [id, watcher] : watchers_) {
      matching.clear();
      for (const Event& e : events) {
        if (e.kv.mod_revision > watcher.delivered_up_to && HasPrefix(e.kv.key, watcher.prefix)) {
          matching.push_back(e);
        }
      }
      if (!matching.empty()) watcher.callback(matching);
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) std::move(batch[i].done)(std::move(results[i]));
}

absl::Status SqliteStore::CompactLocked(int64_t revision) {
  {
    absl::MutexLock lock(&state_mu_);
    if (revision > revision_) return absl::OutOfRangeError("cannot compact the future");
    if (revision <= compacted_) return absl::OkStatus();
  }
  Statement drop(write_db_, "DELETE FROM history WHERE rev <= ?1");
  Statement mark(write_db_, "UPDATE meta SET value = ?1 WHERE name = 'compacted'");
  absl::Status s = Exec(write_db_, "BEGIN IMMEDIATE");
  if (s.ok()) s = drop.Bind(1, revision).Run("compact");
  if (s.ok()) s = mark.Bind(1, revision).Run("compact meta");
  if (s.ok()) s = Exec(write_db_, "COMMIT");
  if (!s.ok()) {
    Exec(write_db_, "ROLLBACK").IgnoreError();
    return s;
  }
  absl::MutexLock lock(&state_mu_);
  compacted_ = revision;
  return absl::OkStatus();
}

absl::Status SqliteStore::Compact(int64_t revision) {
  std::promise<absl::StatusOr<int64_t>> promise;
  auto future = promise.get_future();
  Enqueue(Op{Op::Kind::kCompact, "", "", revision,
             [&promise](absl::StatusOr<int64_t> r) { promise.set_value(std::move(r)); }});
  return future.get().status();
}

absl::StatusOr<KeyValue> SqliteStore::Get(const std::string& key) {
  absl::MutexLock lock(&read_mu_);
  Statement q(read_db_, "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1");
  if (absl::Status s = q.status(); !s.ok()) return s;
  int rc = q.Bind(1, key).Step();
  if (rc == SQLITE_DONE) return absl::NotFoundError("key " + key + " not found");
  if (rc != SQLITE_ROW) return SqliteError(read_db_, rc, "get");
  return KeyValue{key, q.Text(0), q.Int(1), q.Int(2)};
}

absl::StatusOr<ListResult> SqliteStore::List(const std::string& prefix) {
  absl::MutexLock lock(&read_mu_);
  // One read transaction, so that the items and the revision agree.
  if (absl::Status s = Exec(read_db_, "BEGIN"); !s.ok()) return s;
  ListResult result;
  absl::Status status;
  {
    Statement meta(read_db_, "SELECT value FROM meta WHERE name = 'revision'");
    if (meta.Step() == SQLITE_ROW) result.revision = meta.Int(0);
    Statement q(read_db_,
                "SELECT key, value, create_rev, mod_rev FROM kv "
                "WHERE key >= ?1 ORDER BY key");
    status = q.status();
    if (status.ok()) {
      q.Bind(1, prefix);
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) {
        std::string key = q.Text(0);
        if (!HasPrefix(key, prefix)) break;
        result.items.push_back(KeyValue{std::move(key), q.Text(1), q.Int(2), q.Int(3)});
      }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) status = SqliteError(read_db_, rc, "list");
    }
  }
  Exec(read_db_, "COMMIT").IgnoreError();
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<Event>> SqliteStore::ReadHistory(const std::string& prefix,
                                                            int64_t after_revision) {
  absl::MutexLock lock(&read_mu_);
  Statement q(read_db_,
              "SELECT rev, key, type, value, create_rev FROM history WHERE rev > ?1 "
              "ORDER BY rev");
  if (absl::Status s = q.status(); !s.ok()) return s;
  q.Bind(1, after_revision);
  std::vector<Event> events;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    std::string key = q.Text(1);
    if (!HasPrefix(key, prefix)) continue;
    Event e;
    e.kv.mod_revision = q.Int(0);
    e.kv.key = std::move(key);
    e.type = q.Int(2) == 0 ? Event::Type::kPut : Event::Type::kDelete;
    e.kv.value = q.Text(3);
    e.kv.create_revision = q.Int(4);
    events.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return SqliteError(read_db_, rc, "history");
  return events;
}

absl::StatusOr<std::unique_ptr<WatchHandle>> SqliteStore::Watch(const std::string& prefix,
                                                                int64_t after_revision,
                                                                WatchCallback callback) {
  absl::MutexLock lock(&watch_mu_);
  int64_t compacted;
  {
    absl::MutexLock state(&state_mu_);
    compacted = compacted_;
  }
  if (after_revision < compacted) {
    return absl::OutOfRangeError("revision " + std::to_string(after_revision) +
                                 " is compacted (oldest available " + std::to_string(compacted) +
                                 ")");
  }
  auto backlog = ReadHistory(prefix, after_revision);
  if (!backlog.ok()) return backlog.status();
  // The backlog may include a batch committed but not yet delivered; the watcher skips
  // those revisions when the writer delivers them.
  int64_t delivered_up_to = after_revision;
  if (!backlog->empty()) {
    delivered_up_to = backlog->back().kv.mod_revision;
    callback(*backlog);
  }
  const int64_t id = next_watcher_id_++;
  watchers_[id] = Watcher{prefix, std::move(callback), delivered_up_to};
  return std::unique_ptr<WatchHandle>(new Handle(this, id));
}

void SqliteStore::RemoveWatcher(int64_t id) {
  absl::MutexLock lock(&watch_mu_);
  watchers_.erase(id);
}

int64_t SqliteStore::CurrentRevision() {
  absl::MutexLock lock(&state_mu_);
  return revision_;
}

int64_t SqliteStore::CompactedRevision() {
  absl::MutexLock lock(&state_mu_);
  return compacted_;
}

SqliteStoreStats SqliteStore::stats() {
  absl::MutexLock lock(&state_mu_);
  return stats_;
}

}  // namespace kaito::server::store
