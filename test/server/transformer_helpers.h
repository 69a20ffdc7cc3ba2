// Helpers shared by the encryption tests: keys, transformers and the sealed header.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "server/registry/aes_gcm_transformer.h"

namespace kaito::server::encryption_test {

// A 32-byte key: every byte `c`.
inline std::string KeyOf(char c) { return std::string(AesGcmTransformer::kKeyBytes, c); }

inline std::unique_ptr<AesGcmTransformer> Transformer(std::vector<std::string> keys) {
  auto t = AesGcmTransformer::FromKeys(std::move(keys));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

// What a value sealed with `key` starts with.
inline std::string Header(const std::string& key) {
  return "kaito:enc:aesgcm:v1:" + AesGcmTransformer::KeyId(key) + ":";
}

}  // namespace kaito::server::encryption_test
