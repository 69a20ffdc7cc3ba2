// The Secret registry and cache with a ValueTransformer over the in-memory store: what is
// stored is sealed, what is served is the object; and the startup reseal pass.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "kaito/v1/config.pb.h"
#include "server/registry/aes_gcm_transformer.h"
#include "server/registry/kinds/secret_policy.h"
#include "server/registry/object_cache.h"
#include "server/registry/object_registry.h"
#include "server/registry/reseal_stored_values.h"
#include "server/store/memory_store.h"

#include "server/transformer_helpers.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using encryption_test::Header;
using encryption_test::KeyOf;
using encryption_test::Transformer;

std::string SecretValue(const std::string& name, const std::string& value) {
  v1::Secret s;
  s.mutable_metadata()->set_name(name);
  s.mutable_metadata()->set_namespace_("default");
  (*s.mutable_data())["password"] = value;
  return s.SerializeAsString();
}

std::string Stored(store::Store& store, const std::string& key) {
  auto kv = store.Get(key);
  EXPECT_TRUE(kv.ok()) << kv.status();
  return kv.ok() ? kv->value : "";
}

class SecretRegistryEncryptionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(cache_.Start().ok()); }

  absl::StatusOr<v1::Secret> Write(v1::Secret secret, bool create) {
    absl::StatusOr<v1::Secret> result = absl::UnknownError("not completed");
    auto done = [&](absl::StatusOr<WriteResult<v1::Secret>> r) {
      result = r.ok() ? absl::StatusOr<v1::Secret>(r->object) : r.status();
    };
    // The memory store completes writes inline.
    if (create) {
      registry_.Create(std::move(secret), false, done);
    } else {
      registry_.Update(std::move(secret), false, done);
    }
    return result;
  }

  store::MemoryStore store_;
  FakeClock clock_;
  std::unique_ptr<AesGcmTransformer> transformer_ = Transformer({KeyOf('a')});
  ObjectCache cache_{&store_, "/secrets/", &v1::Secret::default_instance(), 100,
                     transformer_.get()};
  ObjectRegistry<v1::Secret> registry_{SecretPolicy(), &store_, &cache_, &clock_,
                                       transformer_.get()};
};

TEST_F(SecretRegistryEncryptionTest, StoresSealedValuesAndServesTheObject) {
  v1::Secret secret;
  secret.mutable_metadata()->set_name("login");
  (*secret.mutable_data())["password"] = "pa55-DISTINCTIVE";
  (*secret.mutable_string_data())["token"] = "t0ken-DISTINCTIVE";
  auto created = Write(secret, true);
  ASSERT_TRUE(created.ok()) << created.status();

  const std::string raw = Stored(store_, "/secrets/default/login");
  EXPECT_TRUE(absl::StartsWith(raw, Header(KeyOf('a'))));
  EXPECT_FALSE(absl::StrContains(raw, "DISTINCTIVE"));
  EXPECT_FALSE(absl::StrContains(raw, "login"));

  auto served = registry_.GetShared("default", "login");
  ASSERT_NE(served, nullptr);
  EXPECT_EQ(served->data().at("password"), "pa55-DISTINCTIVE");
  EXPECT_EQ(served->data().at("token"), "t0ken-DISTINCTIVE");
  EXPECT_EQ(served->metadata().resource_version(), created->metadata().resource_version());

  v1::Secret update = *served;
  (*update.mutable_data())["password"] = "changed-DISTINCTIVE";
  ASSERT_TRUE(Write(update, false).ok());
  const std::string updated_raw = Stored(store_, "/secrets/default/login");
  EXPECT_TRUE(absl::StartsWith(updated_raw, Header(KeyOf('a'))));
  EXPECT_FALSE(absl::StrContains(updated_raw, "DISTINCTIVE"));
  EXPECT_EQ(registry_.GetShared("default", "login")->data().at("password"), "changed-DISTINCTIVE");
}

TEST_F(SecretRegistryEncryptionTest, ValueCopiedToAnotherKeyIsSkippedByTheCache) {
  v1::Secret secret;
  secret.mutable_metadata()->set_name("login");
  (*secret.mutable_data())["password"] = "v";
  ASSERT_TRUE(Write(secret, true).ok());
  ASSERT_TRUE(store::PutSync(store_, "/secrets/default/copy",
                             Stored(store_, "/secrets/default/login"), store::kMustNotExist)
                  .ok());
  EXPECT_FALSE(cache_.Get("/secrets/default/copy").has_value());
  EXPECT_TRUE(cache_.Get("/secrets/default/login").has_value());
}

TEST(ResealStoredValuesTest, PlaintextValuesAreSealedAndOtherKindsLeftAlone) {
  store::MemoryStore store;
  const std::string plain = SecretValue("a", "plain-DISTINCTIVE");
  ASSERT_TRUE(store::PutSync(store, "/secrets/default/a", plain, store::kMustNotExist).ok());
  ASSERT_TRUE(store::PutSync(store, "/configmaps/default/a", plain, store::kMustNotExist).ok());
  auto t = Transformer({KeyOf('a')});

  auto result = ResealStoredValues(store, "/secrets/", *t);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->values, 1u);
  EXPECT_EQ(result->resealed, 1u);
  const std::string raw = Stored(store, "/secrets/default/a");
  EXPECT_TRUE(absl::StartsWith(raw, Header(KeyOf('a'))));
  EXPECT_FALSE(absl::StrContains(raw, "DISTINCTIVE"));
  auto opened = t->Open("/secrets/default/a", raw);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, plain);
  EXPECT_EQ(Stored(store, "/configmaps/default/a"), plain);

  // Once sealed with the first key there is nothing more to do.
  const int64_t revision = store.CurrentRevision();
  result = ResealStoredValues(store, "/secrets/", *t);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->resealed, 0u);
  EXPECT_EQ(store.CurrentRevision(), revision);
}

TEST(ResealStoredValuesTest, ValuesOfAnOlderKeyAreSealedWithTheFirst) {
  store::MemoryStore store;
  auto old_key = Transformer({KeyOf('b')});
  auto sealed = old_key->Seal("/secrets/default/a", SecretValue("a", "v"));
  ASSERT_TRUE(sealed.ok());
  ASSERT_TRUE(store::PutSync(store, "/secrets/default/a", *sealed, store::kMustNotExist).ok());

  auto rotated = Transformer({KeyOf('a'), KeyOf('b')});
  auto result = ResealStoredValues(store, "/secrets/", *rotated);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->resealed, 1u);
  const std::string raw = Stored(store, "/secrets/default/a");
  EXPECT_TRUE(absl::StartsWith(raw, Header(KeyOf('a'))));
  // The old key can now be dropped from the file.
  auto opened = Transformer({KeyOf('a')})->Open("/secrets/default/a", raw);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, SecretValue("a", "v"));
}

TEST(ResealStoredValuesTest, ValueThatDoesNotOpenRefusesAndWritesNothing) {
  store::MemoryStore store;
  auto other = Transformer({KeyOf('c')});
  auto sealed = other->Seal("/secrets/ns/lost", SecretValue("lost", "v"));
  ASSERT_TRUE(sealed.ok());
  ASSERT_TRUE(store::PutSync(store, "/secrets/ns/lost", *sealed, store::kMustNotExist).ok());
  ASSERT_TRUE(
      store::PutSync(store, "/secrets/ns/plain", SecretValue("plain", "v"), store::kMustNotExist)
          .ok());
  const int64_t revision = store.CurrentRevision();

  auto result = ResealStoredValues(store, "/secrets/", *Transformer({KeyOf('a')}));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(result.status().message());
  EXPECT_THAT(message, HasSubstr("/secrets/ns/lost"));
  EXPECT_THAT(message, HasSubstr(AesGcmTransformer::KeyId(KeyOf('c'))));
  EXPECT_THAT(message, Not(HasSubstr("/secrets/ns/plain")));
  EXPECT_EQ(store.CurrentRevision(), revision);
}

TEST(ResealStoredValuesTest, WithoutAKeyFileSealedValuesRefuseAndPlaintextStays) {
  store::MemoryStore store;
  PlaintextTransformer plaintext;
  ASSERT_TRUE(store::PutSync(store, "/secrets/default/plain", SecretValue("plain", "v"),
                             store::kMustNotExist)
                  .ok());
  auto result = ResealStoredValues(store, "/secrets/", plaintext);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->resealed, 0u);

  auto sealed = Transformer({KeyOf('a')})->Seal("/secrets/default/sealed", "x");
  ASSERT_TRUE(sealed.ok());
  ASSERT_TRUE(store::PutSync(store, "/secrets/default/sealed", *sealed, store::kMustNotExist).ok());
  result = ResealStoredValues(store, "/secrets/", plaintext);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("no --encryption-key-file"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("/secrets/default/sealed"));
}

TEST(ResealStoredValuesTest, RefusalNamesAFewKeysAndCountsTheRest) {
  store::MemoryStore store;
  auto other = Transformer({KeyOf('c')});
  for (int i = 0; i < 8; ++i) {
    const std::string key = absl::StrCat("/secrets/default/s", i);
    auto sealed = other->Seal(key, "x");
    ASSERT_TRUE(sealed.ok());
    ASSERT_TRUE(store::PutSync(store, key, *sealed, store::kMustNotExist).ok());
  }
  auto result = ResealStoredValues(store, "/secrets/", *Transformer({KeyOf('a')}));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(result.status().message());
  EXPECT_THAT(message, HasSubstr("8 stored value(s)"));
  EXPECT_THAT(message, HasSubstr("and 3 more"));
  EXPECT_THAT(message, Not(HasSubstr("/secrets/default/s7")));
}

}  // namespace
}  // namespace kaito::server
