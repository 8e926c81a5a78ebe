// Client channels to the collector, for the agent's reporter, nhiguardctl and the tests' clients:
// the one place where the fleet's TLS material becomes gRPC channel credentials and each caller's
// needs (keepalive, message size, a connection of its own) become channel arguments.
//
// The server is verified against the fleet CA (ca_pem) by the TLS layer; the caller still checks
// that it holds the collector's role (pki::require_peer_role), because any certificate of the CA
// passes the handshake. A channel connects lazily, on its first call or WaitForConnected.
//
// Thread-safety: a free function without shared state; gRPC channels are thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <grpcpp/channel.h>

#include "pki/fleet_pki.h"

namespace nhiguard::pki {

struct ChannelOptions {
  // mTLS: the CA that verifies the server, and the client's certificate chain and key (both empty:
  // no client certificate). None: plaintext (--insecure, labs and tests).
  std::optional<TlsMaterial> tls;
  // Above zero: an HTTP/2 ping every keepalive_time, also with no call in flight, and the
  // connection dropped when one goes unanswered for keepalive_timeout, so a collector that vanished
  // without closing the connection (power loss, partition) is noticed instead of at the kernel's
  // TCP timeout.
  std::chrono::milliseconds keepalive_time{0};
  std::chrono::milliseconds keepalive_timeout{0};
  // Above zero: the largest message sent or received; zero keeps gRPC's defaults.
  int max_message_bytes = 0;
  // A connection of its own instead of one shared with the process's other channels to the same
  // address: N simulated agents are N connections.
  bool own_connection = false;
};

std::shared_ptr<grpc::Channel> collector_channel(const std::string& address, const ChannelOptions& options);

}  // namespace nhiguard::pki
