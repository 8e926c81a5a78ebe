// libFuzzer target: arbitrary bytes as a policy file, then (when it parses) one decision over a fixed
// event. The parser must return a policy or a list of errors, never crash, hang or throw; the engine
// must decide on whatever the parser accepted.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policy/decision_engine.h"
#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nhiguard::policy;
  std::vector<PolicySource> sources{{"fuzz.yaml", std::string(reinterpret_cast<const char*>(data), size)}};
  auto parsed = parse_policy_documents(sources);
  for (const auto& error : parsed.errors) (void)error.to_string();
  if (!parsed.ok()) return 0;
  DecisionEngine engine(std::make_shared<const Policy>(std::move(parsed.policy)));
  TriggerInput input;
  input.identity = IdentityFacts{.uri = "spiffe://td/host/h/systemd/a.service",
                                 .kind = "systemd",
                                 .unit = "a.service",
                                 .exe = "/usr/bin/curl",
                                 .cgroup_path = "/system.slice/a.service",
                                 .pid = 1};
  input.credential = CredentialFacts{
      .id = 1, .path = "/root/.aws/credentials", .credential_class = nhiguard::catalogue::CredentialClass::aws};
  (void)engine.decide(input, GateFacts{});
  input.event = TriggerInput::Event::tainted_egress;
  input.destination = DestinationFacts{.port = 443, .text = "0.0.0.0:443"};
  (void)engine.decide(input, GateFacts{});
  // A user unit, for the user_unit, session and cgroup keys.
  input.identity = IdentityFacts{.uri = "spiffe://td/host/h/user/1000/session/a.service",
                                 .kind = "user_session",
                                 .unit = "user@1000.service",
                                 .user_unit = "a.service",
                                 .session_uid = 1000,
                                 .exe = "/usr/bin/curl",
                                 .uid = 1000,
                                 .cgroup_path = "/user.slice/user-1000.slice/user@1000.service/app.slice/a.service",
                                 .pid = 2};
  (void)engine.decide(input, GateFacts{});
  return 0;
}
