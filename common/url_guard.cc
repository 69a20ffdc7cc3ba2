#include "common/url_guard.h"

#include <arpa/inet.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace kaito {

std::string CheckPeerAddress(const std::string& ip) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
    const uint32_t a = ntohl(v4.s_addr);
    if ((a >> 24) == 127 || a == 0) return ip + " is a loopback address";
    if ((a >> 24) == 10 || (a >> 20) == (172 << 4 | 1) || (a >> 16) == (192 << 8 | 168)) {
      return ip + " is a private address";
    }
    if ((a >> 16) == (169 << 8 | 254)) return ip + " is a link-local (cloud metadata) address";
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) {
    const uint8_t* b = v6.s6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_UNSPECIFIED(&v6)) {
      return ip + " is a loopback address";
    }
    if ((b[0] & 0xfe) == 0xfc) return ip + " is a private address";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return ip + " is a link-local address";
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      char text[INET_ADDRSTRLEN];
      if (inet_ntop(AF_INET, b + 12, text, sizeof(text)) != nullptr) {
        std::string inner = CheckPeerAddress(text);
        if (!inner.empty()) return ip + " maps " + inner;
      }
    }
  }
  return "";
}

std::string CheckInputUrl(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "URL \"" + url + "\" has no scheme";
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") {
    return "URL \"" + url + "\" must use http or https";
  }
  std::string rest = url.substr(scheme_end + 3);
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  std::string host = authority;
  if (!host.empty() && host[0] == '[') {
    size_t close = host.find(']');
    host = close == std::string::npos ? "" : host.substr(1, close - 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  host = absl::AsciiStrToLower(host);
  while (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty()) return "URL \"" + url + "\" has no host";
  if (host == "localhost" || absl::EndsWith(host, ".localhost") ||
      host == "metadata.google.internal" || host == "metadata.google" ||
      host == "instance-data.ec2.internal") {
    return "URL \"" + url + "\" points at a local or metadata host (" + host + ")";
  }
  if (!CheckPeerAddress(host).empty()) {
    return "URL \"" + url + "\" points at a loopback, private or link-local address";
  }
  return "";
}

}  // namespace kaito
