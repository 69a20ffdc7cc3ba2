// The SSRF guard for URLs that the system fetches on a user's behalf (tuning input
// URLs): Kaito's rule, shared by the validator and the agent's downloader.
#pragma once

#include <string>

namespace kaito {

// An empty string when `url` is acceptable: http or https, with a host that is not a
// loopback, private, link-local or cloud metadata address. Otherwise the reason.
std::string CheckInputUrl(const std::string& url);

// An empty string when a connection to `ip` (a numeric IPv4 or IPv6 address) is acceptable
// for such a fetch; otherwise why not ("10.1.2.3 is a private address"). The downloader checks
// the address it actually connected to, since DNS can change between validation and download.
// A name that is not a numeric address is acceptable (only numbers are judged).
std::string CheckPeerAddress(const std::string& ip);

}  // namespace kaito
