#include "tools/fake-arm/token_registry.h"

#include <algorithm>

namespace kaito::fakearm {

std::string TokenRegistry::Issue(Grant grant, const std::string& client, absl::Duration ttl,
                                 absl::Duration now, absl::Time wall_now, const std::string& uuid) {
  std::string token = "fake." + uuid;
  tokens_[token] = Issued{client, now + ttl, wall_now + ttl, false};
  ++by_grant_[static_cast<int>(grant)];
  return token;
}

TokenRegistry::Check TokenRegistry::Lookup(const std::string& token, absl::Duration now) const {
  Check check;
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return check;
  check.client = it->second.client;
  check.expiry = it->second.wall_expiry;
  check.result = it->second.revoked || now >= it->second.expires ? Check::kExpired : Check::kValid;
  return check;
}

void TokenRegistry::ExpireAll(absl::Time wall_now) {
  for (auto& [token, issued] : tokens_) {
    issued.revoked = true;
    issued.wall_expiry = std::min(issued.wall_expiry, wall_now);
  }
}

void TokenRegistry::Clear() {
  tokens_.clear();
  for (int64_t& n : by_grant_) n = 0;
}

Json TokenRegistry::Stats() const {
  return Json{{"issued", by_grant_[0] + by_grant_[1] + by_grant_[2]},
              {"by_grant",
               {{"client_secret", by_grant_[0]},
                {"client_assertion", by_grant_[1]},
                {"managed_identity", by_grant_[2]}}}};
}

}  // namespace kaito::fakearm
