// Egress destinations of a listed block: "CIDR" or "CIDR:PORT" for IPv4, "CIDR" or "[CIDR]:PORT"
// for IPv6 ("10.0.0.0/8", "192.0.2.7:443", "2001:db8::/32", "[2001:db8::1]:443"). A bare address is
// a /32 or /128. IPv4 is stored IPv4-mapped, as the kernel's LPM key holds it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nhiguard::containment {

struct EgressDestination {
  std::array<uint8_t, 16> address{};  // network byte order; IPv4 as ::ffff:a.b.c.d
  uint32_t prefix_bits = 128;         // of `address` (IPv4 /N is stored as 96 + N)
  uint16_t port = 0;                  // host byte order; 0 = any port
  bool ipv4 = false;

  std::string to_string() const;  // canonical form, as the operator would write it
};

// Parses one destination; the error says what is wrong with which part.
Result<EgressDestination> parse_egress_destination(std::string_view text);

}  // namespace nhiguard::containment
