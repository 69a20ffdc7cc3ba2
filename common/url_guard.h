// The SSRF guard for URLs that the system fetches on a user's behalf (tuning input
// URLs): Kaito's rule, shared by the validator and the agent's downloader.
#pragma once

#include <string>

namespace kaito {

// An empty string when `url` is acceptable: http or https, with a host that is not a
// loopback, private, link-local or cloud metadata address. Otherwise the reason.
std::string CheckInputUrl(const std::string& url);

}  // namespace kaito
