// Encryption at rest end to end: an in-process kaito-server with the SQLite store and
// --encryption-key-file. A Secret created through the API is not in any file of the data
// directory, survives restarts and a key rotation, and a server without the right key
// refuses to start. Also the flag on the real binary.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kaito/v1/config.grpc.pb.h"
#include "server/registry/aes_gcm_transformer.h"
#include "server/server_app.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kNamespace[] = "default";
constexpr char kName[] = "registry-login";
constexpr char kStoreKey[] = "/secrets/default/registry-login";

std::string RandomBytes(size_t n) {
  std::random_device device;
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(device() & 0xff);
  return out;
}

class EncryptionAtRestTest : public ::testing::Test {
 protected:
  // A key file of `keys`, mode 0600, in its own directory (not the data directory).
  std::string KeyFile(const std::vector<std::string>& keys, mode_t mode = 0600) {
    const std::string path = keys_dir_.File("keys-" + std::to_string(++key_files_));
    std::ofstream out(path);
    out << "# kaito-server --encryption-key-file: the first key encrypts\n";
    for (const std::string& key : keys) out << absl::Base64Escape(key) << "\n";
    out.close();
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  absl::StatusOr<std::unique_ptr<ServerApp>> Start(const std::string& key_file) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.data_dir = data_dir_;
    options.controllers = false;
    options.encryption_key_file = key_file;
    return ServerApp::Start(options);
  }

  std::unique_ptr<ServerApp> MustStart(const std::string& key_file) {
    auto app = Start(key_file);
    EXPECT_TRUE(app.ok()) << app.status();
    return app.ok() ? std::move(*app) : nullptr;
  }

  void CreateSecretThroughTheApi(ServerApp& app) {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(app.grpc_port()),
                                       grpc::InsecureChannelCredentials());
    auto stub = v1::SecretService::NewStub(channel);
    grpc::ClientContext ctx;
    v1::WriteSecretRequest req;
    req.mutable_secret()->mutable_metadata()->set_name(kName);
    (*req.mutable_secret()->mutable_data())["password"] = password_;
    (*req.mutable_secret()->mutable_string_data())["token"] = token_;
    v1::Secret created;
    grpc::Status s = stub->CreateSecret(&ctx, req, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // The secret as the server's own components read it (the API redacts values).
  void ExpectSecretReadable(ServerApp& app) {
    auto secret = app.secrets()->GetShared(kNamespace, kName);
    ASSERT_NE(secret, nullptr);
    EXPECT_EQ(secret->data().at("password"), password_);
    EXPECT_EQ(secret->data().at("token"), token_);
    // And through the API: its keys, without values.
    auto got = app.secrets()->Get(kNamespace, kName);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->data().size(), 2u);
    EXPECT_EQ(got->data().count("password"), 1u);
  }

  std::string StoredValue(ServerApp& app) {
    auto kv = app.store()->Get(kStoreKey);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return kv.ok() ? kv->value : "";
  }

  // Every file of the data directory (kaito.db, -wal, -shm, the lock) whose bytes
  // contain `needle`.
  std::vector<std::string> FilesContaining(const std::string& needle) {
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir_)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      if (absl::StrContains(bytes.str(), needle)) found.push_back(entry.path().filename().string());
    }
    return found;
  }

  void ExpectValuesInNoFile() {
    for (const std::string& value : {password_, token_}) {
      EXPECT_THAT(FilesContaining(value), ::testing::IsEmpty()) << value;
      EXPECT_THAT(FilesContaining(absl::Base64Escape(value)), ::testing::IsEmpty()) << value;
    }
  }

  testing::TempDir dir_, keys_dir_;
  const std::string data_dir_ = dir_.File("data");
  int key_files_ = 0;
  const std::string key1_ = RandomBytes(32), key2_ = RandomBytes(32), key3_ = RandomBytes(32);
  const std::string password_ = "pw-" + absl::BytesToHexString(RandomBytes(12));
  const std::string token_ = "tk-" + absl::BytesToHexString(RandomBytes(12));
};

TEST_F(EncryptionAtRestTest, ValuesAreInNoDataFileAndSurviveRestartsAndRotation) {
  const std::string only_key1 = KeyFile({key1_});
  {
    auto app = MustStart(only_key1);
    ASSERT_NE(app, nullptr);
    CreateSecretThroughTheApi(*app);
    ExpectSecretReadable(*app);
  }
  // The scan does read the store: the secret's name (in its store key) is there.
  EXPECT_THAT(FilesContaining(kStoreKey), Not(::testing::IsEmpty()));
  ExpectValuesInNoFile();

  {
    auto app = MustStart(only_key1);
    ASSERT_NE(app, nullptr);
    ExpectSecretReadable(*app);
    EXPECT_TRUE(absl::StartsWith(StoredValue(*app),
                                 "kaito:enc:aesgcm:v1:" + AesGcmTransformer::KeyId(key1_) + ":"));
  }
  // Rotation: the new key first, the old one after it. The secret is sealed again with
  // the new key at start, so the old key can go at the next restart.
  {
    auto app = MustStart(KeyFile({key2_, key1_}));
    ASSERT_NE(app, nullptr);
    ExpectSecretReadable(*app);
    EXPECT_TRUE(absl::StartsWith(StoredValue(*app),
                                 "kaito:enc:aesgcm:v1:" + AesGcmTransformer::KeyId(key2_) + ":"));
  }
  const std::string only_key2 = KeyFile({key2_});
  {
    auto app = MustStart(only_key2);
    ASSERT_NE(app, nullptr);
    ExpectSecretReadable(*app);
  }
  ExpectValuesInNoFile();

  // Without the key file, or with a key that is not the one: no start, and the message
  // names the secret and the key id it needs, never a value.
  auto without = Start("");
  ASSERT_EQ(without.status().code(), absl::StatusCode::kFailedPrecondition) << without.status();
  EXPECT_THAT(std::string(without.status().message()), HasSubstr(kStoreKey));
  EXPECT_THAT(std::string(without.status().message()), HasSubstr("no --encryption-key-file"));
  EXPECT_THAT(std::string(without.status().message()), Not(HasSubstr(password_)));

  auto wrong = Start(KeyFile({key3_}));
  ASSERT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition) << wrong.status();
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr(kStoreKey));
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr(AesGcmTransformer::KeyId(key2_)));

  // The refused starts changed nothing.
  auto app = MustStart(only_key2);
  ASSERT_NE(app, nullptr);
  ExpectSecretReadable(*app);
}

TEST_F(EncryptionAtRestTest, SecretsStoredBeforeTheKeyFileAreReadAndEncryptedAtStart) {
  {
    auto app = MustStart("");
    ASSERT_NE(app, nullptr);
    CreateSecretThroughTheApi(*app);
  }
  // Unencrypted, the value is plainly in the files (so the scan above would see it).
  EXPECT_THAT(FilesContaining(password_), Not(::testing::IsEmpty()));

  auto app = MustStart(KeyFile({key1_}));
  ASSERT_NE(app, nullptr);
  ExpectSecretReadable(*app);
  const std::string stored = StoredValue(*app);
  EXPECT_TRUE(absl::StartsWith(stored, "kaito:enc:aesgcm:v1:" + AesGcmTransformer::KeyId(key1_)));
  EXPECT_FALSE(absl::StrContains(stored, password_));
}

TEST_F(EncryptionAtRestTest, BadKeyFileRefusesToStartBeforeTheStoreIsOpened) {
  auto open_to_group = Start(KeyFile({key1_}, 0640));
  EXPECT_EQ(open_to_group.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(open_to_group.status().message()), HasSubstr("chmod 600"));

  const std::string path = keys_dir_.File("short");
  std::ofstream(path) << absl::Base64Escape(key1_) << "\n"
                      << absl::Base64Escape(RandomBytes(24)) << "\n";
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto short_key = Start(path);
  EXPECT_EQ(short_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(short_key.status().message()), HasSubstr("line 2"));

  auto missing = Start(keys_dir_.File("absent"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  EXPECT_FALSE(std::filesystem::exists(data_dir_));
}

TEST_F(EncryptionAtRestTest, ServerBinaryTakesTheFlag) {
  std::filesystem::create_directory(data_dir_);
  std::filesystem::permissions(data_dir_, std::filesystem::perms::owner_all);
  const std::string open_file = KeyFile({key1_}, 0644);
  kaito::testing::RunResult refused = kaito::testing::RunCommand(
      {kaito::testing::BinDir() + "/kaito-server", "--listen", "127.0.0.1:0", "--metrics-listen",
       "", "--data-dir", data_dir_, "--encryption-key-file", open_file},
      "", {}, absl::Seconds(30));
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out + refused.err, HasSubstr("--encryption-key-file " + open_file));
  EXPECT_THAT(refused.out + refused.err, HasSubstr("chmod 600"));

  auto server = kaito::testing::StartServer(
      data_dir_, {"--no-controllers", "--encryption-key-file", KeyFile({key1_})},
      /*dev=*/false);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->daemon.Stop(), 0);
  EXPECT_THAT(
      kaito::testing::ReadFile(data_dir_ + "/server.log"),
      HasSubstr("encrypted at rest with AES-256-GCM, key id " + AesGcmTransformer::KeyId(key1_)));
}

}  // namespace
}  // namespace kaito::server
