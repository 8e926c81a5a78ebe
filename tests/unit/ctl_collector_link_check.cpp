// Linked with nhiguard_ctl_collector alone (and what it links: nhiguard_contract, nhiguard_common,
// the protocol): the build fails here if nhiguardctl's collector half comes to need a symbol of the
// agent's modules, which nhiguardctl's own link would otherwise supply silently. Run by
// unit.ctl_collector_link: renders one action as nhiguardctl --collector prints it.
#include <cstdio>

#include "collector_client.h"

int main() {
  nhiguard::v1::RollbackHandle handle;
  handle.set_handle("nhg-act-link-check");
  handle.set_action(nhiguard::v1::ACTION_KIND_BLOCK_EGRESS);
  handle.set_state(nhiguard::v1::ACTION_STATE_ACTIVE);
  const auto json = nhiguard::ctl::action_json(handle, "agent-1");
  if (json.value("action", "") != "block_egress" || json.value("state", "") != "active") {
    std::fprintf(stderr, "unexpected action JSON: %s\n", json.dump().c_str());
    return 1;
  }
  std::printf("%s\n", json.dump().c_str());
  return 0;
}
