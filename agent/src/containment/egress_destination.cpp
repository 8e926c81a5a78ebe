#include "containment/egress_destination.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fmt/format.h>

namespace nhiguard::containment {
namespace {

Result<uint32_t> parse_number(std::string_view text, uint32_t max, std::string_view what, std::string_view whole) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > max) {
    return fail(
        Error{EINVAL, fmt::format("destination '{}': {} '{}' is not a number from 0 to {}", whole, what, text, max)});
  }
  return value;
}

}  // namespace

Result<EgressDestination> parse_egress_destination(std::string_view text) {
  EgressDestination dest;
  std::string_view cidr = text;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(Error{EINVAL, fmt::format("destination '{}': missing ']'", text)});
    cidr = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return fail(Error{EINVAL, fmt::format("destination '{}': expected ':PORT' after ']'", text)});
      port = rest.substr(1);
      if (port.empty()) return fail(Error{EINVAL, fmt::format("destination '{}': empty port", text)});
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const size_t colon = text.find(':');
    cidr = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty()) return fail(Error{EINVAL, fmt::format("destination '{}': empty port", text)});
  }
  std::string_view address = cidr;
  std::string_view prefix;
  if (const size_t slash = cidr.find('/'); slash != std::string_view::npos) {
    address = cidr.substr(0, slash);
    prefix = cidr.substr(slash + 1);
  }
  const std::string address_text(address);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, address_text.c_str(), &v4) == 1) {
    dest.ipv4 = true;
    dest.address[10] = 0xff;
    dest.address[11] = 0xff;
    std::memcpy(&dest.address[12], &v4, 4);
    dest.prefix_bits = 128;
    if (!prefix.empty()) {
      auto bits = parse_number(prefix, 32, "prefix length", text);
      if (!bits) return fail(bits.error());
      dest.prefix_bits = 96 + *bits;
    }
  } else if (inet_pton(AF_INET6, address_text.c_str(), &v6) == 1) {
    std::memcpy(dest.address.data(), &v6, 16);
    if (!prefix.empty()) {
      auto bits = parse_number(prefix, 128, "prefix length", text);
      if (!bits) return fail(bits.error());
      dest.prefix_bits = *bits;
    }
  } else {
    return fail(Error{EINVAL, fmt::format("destination '{}': '{}' is not an IPv4 or IPv6 address", text, address)});
  }
  if (!port.empty()) {
    auto number = parse_number(port, 65535, "port", text);
    if (!number) return fail(number.error());
    if (*number == 0) return fail(Error{EINVAL, fmt::format("destination '{}': port 0 (omit the port for any)", text)});
    dest.port = static_cast<uint16_t>(*number);
  }
  // Host bits past the prefix are cleared so the LPM key is canonical.
  for (uint32_t bit = dest.prefix_bits; bit < 128; ++bit)
    dest.address[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return dest;
}

std::string EgressDestination::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  std::string cidr;
  if (ipv4) {
    inet_ntop(AF_INET, &address[12], buffer, sizeof(buffer));
    cidr = prefix_bits == 128 ? buffer : fmt::format("{}/{}", buffer, prefix_bits - 96);
    return port ? fmt::format("{}:{}", cidr, port) : cidr;
  }
  inet_ntop(AF_INET6, address.data(), buffer, sizeof(buffer));
  cidr = prefix_bits == 128 ? buffer : fmt::format("{}/{}", buffer, prefix_bits);
  return port ? fmt::format("[{}]:{}", cidr, port) : cidr;
}

}  // namespace nhiguard::containment
