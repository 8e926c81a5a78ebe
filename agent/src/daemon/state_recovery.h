// What the agent does at start when its state under state_dir is damaged or missing, so that a
// damaged file never stops detection and never silently changes what the kernel enforces.
//
// - A damaged durable store (ledger.db, outbox.db: SQLite says not a database, or the integrity
//   check fails; EUCLEAN) is moved aside with quarantine_file() (kept, with a timestamped name), a
//   fresh one is created, and a `state_quarantined` notice is raised for the collector. Under
//   Restart=on-failure a refusal to start would loop and leave the host without detection.
// - credential_ids.json ties catalogue paths to the ids the kernel maps use (nhg_credentials
//   values, nhg_credential_denies keys). When it is missing or damaged while pinned kernel state
//   exists, the ids are rebuilt from that state (recover_credential_ids): a pinned inode keeps its
//   id, and new ids start above every id a pinned map holds, so a pinned deny keeps guarding the
//   file it was made for and no other.
// - Pinned enforcement without an active ledger row (after a quarantined ledger, or left by an
//   agent whose ledger write failed) is reported (unowned_kernel_state) as well as logged.
//
// Thread-safety: plain functions over the values they are given.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "catalogue/credential_catalogue.h"
#include "common/filesystem.h"
#include "common/result.h"
#include "containment/action.h"
#include "kernel/enforcement_maps.h"
#include "ledger/rollback_ledger.h"
#include "nhiguard_abi.h"

namespace nhiguard::daemon {

// Something the agent found about its own state at start, reported as an alert once the reporter
// runs (the outbox may itself be what was damaged).
struct StateNotice {
  std::string kind;     // alert kind: "state_quarantined", "credential_ids_rebuilt", "unowned_kernel_state"
  std::string message;  // what was found and what the agent did instead
  uint64_t count = 1;
};

// Opens a durable store with `open()`; if it is damaged (EUCLEAN), moves the file aside, records a
// notice and opens a fresh one. Any other error is returned as it is (a full or read-only disk is
// not damage, and a newer schema is not ours to discard).
template <typename Open>
auto open_or_quarantine(std::string_view label, const std::string& path, Open open, std::vector<StateNotice>& notices)
    -> decltype(open()) {
  auto opened = open();
  if (opened || opened.error().code != EUCLEAN) return opened;
  const std::string damage = opened.error().message;
  auto moved = quarantine_file(path);
  if (!moved) return fail(Error{moved.error().code, damage + "; " + moved.error().message});
  const std::string message = fmt::format(
      "{} {} was damaged ({}); kept as {}, a new one was created: what it held is no longer used by the agent", label,
      path, damage, *moved);
  spdlog::error("{}", message);
  notices.push_back({"state_quarantined", message, 1});
  return open();
}

struct CredentialIdRecovery {
  std::map<std::string, uint32_t> ids;  // path -> id for the catalogue's initial_ids
  uint32_t first_free_id = 1;           // every id below it may be in a pinned map
  size_t kept_from_pins = 0;            // paths whose pinned inode gave their id
  std::vector<uint32_t> unmatched_ids;  // pinned ids whose inode the catalogue no longer resolves
};

// Rebuilds path -> id from the pinned credential map (inode -> id) for the credentials the
// catalogue resolves now (`resolved`, with whatever ids it assigned), and reserves every id found
// in the pinned credential and deny maps.
CredentialIdRecovery recover_credential_ids(const std::vector<catalogue::ResolvedCredential>& resolved,
                                            const std::vector<std::pair<nhg_inode_key, nhg_credential_value>>& pinned,
                                            const std::vector<std::pair<nhg_deny_key, nhg_deny_value>>& denies);

// Pinned enforcement entries in force (at `now_boot_ns`) that no active ledger handle accounts for,
// one description each.
std::vector<std::string> unowned_kernel_state(const std::vector<containment::RollbackHandle>& active,
                                              const std::vector<std::pair<uint64_t, nhg_egress_block>>& blocks,
                                              const std::vector<std::pair<nhg_deny_key, nhg_deny_value>>& denies,
                                              uint64_t now_boot_ns);

// Compares the pinned enforcement maps with the ledger's active actions: the notice (logged here)
// names the unowned entries, the first 16 of them, and how to end them; none when all are owned.
std::optional<StateNotice> report_unowned_kernel_state(ledger::RollbackLedger& ledger,
                                                       const kernel::EnforcementMaps& enforcement,
                                                       const std::string& pin_dir);

}  // namespace nhiguard::daemon
