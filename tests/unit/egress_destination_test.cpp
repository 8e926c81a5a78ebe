// Parsing of block_egress destinations ("CIDR[:PORT]", "[CIDR6]:PORT").
#include <gtest/gtest.h>

#include "containment/egress_destination.h"

using nhiguard::containment::parse_egress_destination;

TEST(EgressDestination, CanonicalForms) {
  struct Row {
    const char* input;
    const char* canonical;
    uint32_t prefix_bits;
    uint16_t port;
  } rows[] = {
      {"10.0.0.0/8", "10.0.0.0/8", 104, 0},
      {"10.1.2.3/8", "10.0.0.0/8", 104, 0},  // host bits cleared
      {"192.0.2.7", "192.0.2.7", 128, 0},
      {"192.0.2.7:443", "192.0.2.7:443", 128, 443},
      {"0.0.0.0/0", "0.0.0.0/0", 96, 0},
      {"2001:db8::/32", "2001:db8::/32", 32, 0},
      {"[2001:db8::1]:443", "[2001:db8::1]:443", 128, 443},
      {"[fd00::/8]:53", "[fd00::/8]:53", 8, 53},
      {"::1", "::1", 128, 0},
  };
  for (const auto& row : rows) {
    auto parsed = parse_egress_destination(row.input);
    ASSERT_TRUE(parsed.has_value()) << row.input << ": " << parsed.error().message;
    EXPECT_EQ(parsed->to_string(), row.canonical) << row.input;
    EXPECT_EQ(parsed->prefix_bits, row.prefix_bits) << row.input;
    EXPECT_EQ(parsed->port, row.port) << row.input;
  }
}

TEST(EgressDestination, Ipv4IsMapped) {
  auto parsed = parse_egress_destination("192.0.2.7");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->ipv4);
  EXPECT_EQ(parsed->address[10], 0xff);
  EXPECT_EQ(parsed->address[11], 0xff);
  EXPECT_EQ(parsed->address[12], 192);
  EXPECT_EQ(parsed->address[15], 7);
}

TEST(EgressDestination, RejectsWithReason) {
  struct Row {
    const char* input;
    const char* says;
  } rows[] = {
      {"", "not an IPv4 or IPv6 address"}, {"example.com", "not an IPv4 or IPv6 address"},
      {"10.0.0.0/33", "prefix length"},    {"10.0.0.0/x", "prefix length"},
      {"2001:db8::/129", "prefix length"}, {"192.0.2.7:99999", "port"},
      {"192.0.2.7:0", "port 0"},           {"192.0.2.7:", "empty port"},
      {"[2001:db8::1", "missing ']'"},     {"[2001:db8::1]443", "expected ':PORT'"},
  };
  for (const auto& row : rows) {
    auto parsed = parse_egress_destination(row.input);
    ASSERT_FALSE(parsed.has_value()) << row.input;
    EXPECT_NE(parsed.error().message.find(row.says), std::string::npos)
        << row.input << " -> " << parsed.error().message;
  }
}
