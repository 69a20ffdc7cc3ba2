// The access tokens kaito-fake-arm has issued (AAD client credentials, the v1 endpoint,
// IMDS managed identity), each remembered with its client and expiry so that ARM calls
// can be authenticated. Tokens are opaque ("fake.<uuid>"). Not thread-safe: its owner
// (`FakeArmServer`) guards it with its one mutex.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/time/time.h"
#include "tools/fake-arm/arm_wire.h"

namespace kaito::fakearm {

enum class Grant { kClientSecret, kClientAssertion, kManagedIdentity };

class TokenRegistry {
 public:
  // A new token for `client`, valid for `ttl` from `now` (monotonic; `wall_now` is only for
  // the expiry ARM names in its 401 message).
  std::string Issue(Grant grant, const std::string& client, absl::Duration ttl, absl::Duration now,
                    absl::Time wall_now, const std::string& uuid);

  struct Check {
    enum Result { kValid, kUnknown, kExpired } result = kUnknown;
    std::string client;  // The principal, for kValid and kExpired.
    absl::Time expiry;   // Wall time, for kExpired's message.
  };
  Check Lookup(const std::string& token, absl::Duration now) const;

  // Every token issued so far counts as expired from `wall_now` on (newer ones are fine).
  void ExpireAll(absl::Time wall_now);
  void Clear();
  // `{"issued":N,"by_grant":{"client_secret":n,"client_assertion":n,"managed_identity":n}}`.
  Json Stats() const;

 private:
  struct Issued {
    std::string client;
    absl::Duration expires;  // Monotonic.
    absl::Time wall_expiry;
    bool revoked = false;
  };
  std::map<std::string, Issued> tokens_;
  int64_t by_grant_[3] = {0, 0, 0};
};

}  // namespace kaito::fakearm
