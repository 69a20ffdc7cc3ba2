// AesGcmTransformer and PlaintextTransformer: sealing, opening with any key of the file,
// the failures (wrong key, tampering, another store key), and the key file's strict checks.
#include "server/registry/aes_gcm_transformer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "support/temp_dir.h"

#include "server/transformer_helpers.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] = "/secrets/default/registry-login";

using encryption_test::Header;
using encryption_test::KeyOf;
using encryption_test::Transformer;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(AesGcmTransformerTest, SealedValueOpensAndHidesThePlaintext) {
  auto t = Transformer({KeyOf('a')});
  const std::string plain = "correct-horse-battery-staple";
  auto sealed = t->Seal(kKey, plain);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_TRUE(absl::StartsWith(*sealed, Header(KeyOf('a')))) << *sealed;
  EXPECT_FALSE(absl::StrContains(*sealed, plain));
  EXPECT_FALSE(absl::StrContains(*sealed, KeyOf('a')));
  EXPECT_EQ(sealed->size(), Header(KeyOf('a')).size() + AesGcmTransformer::kNonceBytes +
                                plain.size() + AesGcmTransformer::kTagBytes);
  auto opened = t->Open(kKey, *sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, plain);
  EXPECT_FALSE(t->NeedsReseal(*sealed));

  // A fresh nonce each time: the same value never seals to the same bytes.
  auto again = t->Seal(kKey, plain);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *sealed);
}

TEST(AesGcmTransformerTest, EmptyAndBinaryValuesRoundTrip) {
  auto t = Transformer({KeyOf('a')});
  for (const std::string& plain : {std::string(), std::string("\0\x01\xff\n", 4)}) {
    auto sealed = t->Seal(kKey, plain);
    ASSERT_TRUE(sealed.ok());
    auto opened = t->Open(kKey, *sealed);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, plain);
  }
}

TEST(AesGcmTransformerTest, KeyIdIsTheStartOfTheKeysSha256) {
  // SHA-256 of 32 zero bytes is 66687aad f862bd77...
  EXPECT_EQ(AesGcmTransformer::KeyId(std::string(32, '\0')), "66687aad");
  EXPECT_NE(AesGcmTransformer::KeyId(KeyOf('a')), AesGcmTransformer::KeyId(KeyOf('b')));
  auto t = Transformer({KeyOf('b'), KeyOf('a')});
  EXPECT_EQ(t->primary_key_id(), AesGcmTransformer::KeyId(KeyOf('b')));
  EXPECT_EQ(t->key_count(), 2u);
}

TEST(AesGcmTransformerTest, ValueSealedByALaterKeyOfTheListOpensAndIsSealedAgainWithTheFirst) {
  auto old_only = Transformer({KeyOf('b')});
  auto sealed_by_b = old_only->Seal(kKey, "v");
  ASSERT_TRUE(sealed_by_b.ok());

  auto rotated = Transformer({KeyOf('a'), KeyOf('b')});
  auto opened = rotated->Open(kKey, *sealed_by_b);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "v");
  EXPECT_TRUE(rotated->NeedsReseal(*sealed_by_b));

  auto resealed = rotated->Seal(kKey, *opened);
  ASSERT_TRUE(resealed.ok());
  EXPECT_TRUE(absl::StartsWith(*resealed, Header(KeyOf('a'))));
  EXPECT_FALSE(rotated->NeedsReseal(*resealed));
  // The old key alone cannot read what the new one sealed.
  EXPECT_EQ(old_only->Open(kKey, *resealed).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AesGcmTransformerTest, ValueOfAKeyNotInTheListDoesNotOpenAndNamesItsKeyId) {
  auto sealed = Transformer({KeyOf('a')})->Seal(kKey, "v");
  ASSERT_TRUE(sealed.ok());
  auto opened = Transformer({KeyOf('b'), KeyOf('c')})->Open(kKey, *sealed);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(opened.status()), HasSubstr(AesGcmTransformer::KeyId(KeyOf('a'))));
  EXPECT_THAT(Message(opened.status()), HasSubstr("--encryption-key-file"));
}

TEST(AesGcmTransformerTest, AnyTamperedByteFailsToOpen) {
  auto t = Transformer({KeyOf('a')});
  const std::string plain = "value";
  auto sealed = t->Seal(kKey, plain);
  ASSERT_TRUE(sealed.ok());
  // Every byte of the nonce, the ciphertext and the tag.
  for (size_t i = Header(KeyOf('a')).size(); i < sealed->size(); ++i) {
    std::string tampered = *sealed;
    tampered[i] ^= 0x01;
    auto opened = t->Open(kKey, tampered);
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << "byte " << i;
  }
}

TEST(AesGcmTransformerTest, KeyIdSwappedToAnotherKeyOfTheListFailsToOpen) {
  auto t = Transformer({KeyOf('a'), KeyOf('b')});
  auto sealed = t->Seal(kKey, "value");
  ASSERT_TRUE(sealed.ok());
  std::string swapped = Header(KeyOf('b')) + sealed->substr(Header(KeyOf('a')).size());
  EXPECT_EQ(t->Open(kKey, swapped).status().code(), absl::StatusCode::kDataLoss);
}

TEST(AesGcmTransformerTest, ValueCopiedToAnotherStoreKeyFailsToOpen) {
  auto t = Transformer({KeyOf('a')});
  auto sealed = t->Seal(kKey, "hunter2");
  ASSERT_TRUE(sealed.ok());
  auto opened = t->Open("/secrets/default/other", *sealed);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(opened.status()), Not(HasSubstr("hunter2")));
}

TEST(AesGcmTransformerTest, TruncatedOrUnknownSealedValuesFailToOpen) {
  auto t = Transformer({KeyOf('a')});
  auto sealed = t->Seal(kKey, "value");
  ASSERT_TRUE(sealed.ok());
  const std::string header = Header(KeyOf('a'));
  for (size_t size : {header.size() - 1, header.size(), header.size() + 20}) {
    EXPECT_EQ(t->Open(kKey, sealed->substr(0, size)).status().code(), absl::StatusCode::kDataLoss)
        << size;
  }
  EXPECT_EQ(t->Open(kKey, "kaito:enc:rot13:v9:whatever").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(AesGcmTransformerTest, PlaintextWrittenBeforeEncryptionIsReadAndSealedAgain) {
  auto t = Transformer({KeyOf('a')});
  const std::string plain("\x0a\x02v1\x12\x06Secret", 12);  // A serialized Secret's start.
  auto opened = t->Open(kKey, plain);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, plain);
  EXPECT_TRUE(t->NeedsReseal(plain));
}

TEST(PlaintextTransformerTest, StoresAsIsAndRefusesSealedValues) {
  PlaintextTransformer plaintext;
  auto stored = plaintext.Seal(kKey, "value");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, "value");
  auto opened = plaintext.Open(kKey, "value");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "value");
  EXPECT_FALSE(plaintext.NeedsReseal("value"));

  auto sealed = Transformer({KeyOf('a')})->Seal(kKey, "value");
  ASSERT_TRUE(sealed.ok());
  auto refused = plaintext.Open(kKey, *sealed);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(refused.status()), HasSubstr("no --encryption-key-file"));
  EXPECT_THAT(Message(refused.status()), HasSubstr(AesGcmTransformer::KeyId(KeyOf('a'))));
  EXPECT_FALSE(plaintext.NeedsReseal(*sealed));
}

TEST(AesGcmKeyFileTest, SkipsBlankLinesAndCommentsAndKeepsTheOrder) {
  const std::string text = "# rotated 2024-05-01: new key first\n\n  " +
                           absl::Base64Escape(KeyOf('a')) + "  \r\n" +
                           absl::Base64Escape(KeyOf('b')) + "\n# end\n";
  auto keys = AesGcmTransformer::ParseKeyFile(text);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(*keys, (std::vector<std::string>{KeyOf('a'), KeyOf('b')}));
}

TEST(AesGcmKeyFileTest, BadLinesAreRefusedByLineNumberWithoutTheirText) {
  const std::string a = absl::Base64Escape(KeyOf('a'));
  std::string unpadded = absl::Base64Escape(KeyOf('b'));
  unpadded.pop_back();
  struct Case {
    std::string text;
    std::string expected;
    std::string secret;  // Must not be echoed.
  };
  const std::vector<Case> cases = {
      {a + "\nnot*base64!\n", "line 2: not standard base64", "not*base64!"},
      {"# comment\n\n" + absl::Base64Escape(std::string(16, 'x')) + "\n",
       "line 3: a key is 32 bytes, this one is 16", absl::Base64Escape(std::string(16, 'x'))},
      {unpadded + "\n", "line 1: not standard base64", unpadded},
      {a + "\n" + absl::Base64Escape(KeyOf('b')) + "\n" + a + "\n",
       "line 3: the key of line 1 again", a},
      {"", "no key", "-"},
      {"# only a comment\n\n", "no key", "-"},
  };
  for (const Case& c : cases) {
    auto keys = AesGcmTransformer::ParseKeyFile(c.text);
    ASSERT_FALSE(keys.ok()) << c.expected;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(keys.status()), HasSubstr(c.expected));
    EXPECT_THAT(Message(keys.status()), Not(HasSubstr(c.secret)));
  }
}

class AesGcmKeyFileModeTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text, mode_t mode) {
    const std::string path = dir_.File("keys");
    std::ofstream(path, std::ios::trunc) << text;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  testing::TempDir dir_;
  const std::string good_ = absl::Base64Escape(KeyOf('a')) + "\n";
};

TEST_F(AesGcmKeyFileModeTest, OwnerOnlyModesAreAccepted) {
  for (mode_t mode : {0600, 0400}) {
    auto t = AesGcmTransformer::FromKeyFile(Write(good_, mode));
    ASSERT_TRUE(t.ok()) << std::oct << mode << ": " << t.status();
    EXPECT_EQ((*t)->primary_key_id(), AesGcmTransformer::KeyId(KeyOf('a')));
  }
}

TEST_F(AesGcmKeyFileModeTest, GroupOrWorldAccessIsRefused) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0660}) {
    auto t = AesGcmTransformer::FromKeyFile(Write(good_, mode));
    EXPECT_EQ(t.status().code(), absl::StatusCode::kPermissionDenied) << std::oct << mode;
    EXPECT_THAT(Message(t.status()), HasSubstr("chmod 600"));
    EXPECT_THAT(Message(t.status()), HasSubstr(dir_.File("keys")));
  }
}

TEST_F(AesGcmKeyFileModeTest, ErrorsNameTheFile) {
  auto missing = AesGcmTransformer::FromKeyFile(dir_.File("absent"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr(dir_.File("absent")));

  std::filesystem::create_directory(dir_.File("dir"));
  ::chmod(dir_.File("dir").c_str(), 0700);
  EXPECT_EQ(AesGcmTransformer::FromKeyFile(dir_.File("dir")).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto bad = AesGcmTransformer::FromKeyFile(Write(good_ + "short\n", 0600));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(bad.status()), HasSubstr("--encryption-key-file " + dir_.File("keys")));
  EXPECT_THAT(Message(bad.status()), HasSubstr("line 2"));
}

}  // namespace
}  // namespace kaito::server
