#include "kernel/sensor_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <string_view>

#include "common/filesystem.h"
#include "identity/mountinfo.h"
#include "kernel/bpf_map_ops.h"
#include "nhiguard_abi.h"
#include "nhiguard_egress.skel.h"
#include "nhiguard_lsm.skel.h"
#include "nhiguard_sensor.skel.h"

namespace nhiguard::kernel {
namespace {

// A pinned map from an earlier agent is reused only when its shape matches this build's
// definition; otherwise libbpf would refuse the whole load. Detection maps are rebuilt from the
// catalogue, so replacing them loses nothing that the agent cannot restore.
void drop_incompatible_pin(bpf_map* map, const std::string& pin_path) {
  int fd = bpf_obj_get(pin_path.c_str());
  if (fd < 0) return;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  int err = bpf_obj_get_info_by_fd(fd, &info, &len);
  close(fd);
  const bool same = err == 0 && info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
                    info.value_size == bpf_map__value_size(map) && info.max_entries == bpf_map__max_entries(map);
  if (!same) {
    spdlog::warn(
        "pinned map {} does not match this agent's layout; replacing it (detection state is rebuilt "
        "from the catalogue)",
        pin_path);
    unlink(pin_path.c_str());
  }
}

Result<void> pin_map(bpf_map* map, const std::string& pin_dir) {
  const std::string path = pin_dir + "/" + bpf_map__name(map);
  drop_incompatible_pin(map, path);
  if (int err = bpf_map__set_pin_path(map, path.c_str()); err != 0) {
    return fail(libbpf_error(err, "set pin path " + path));
  }
  return {};
}

// Each open syscall has two programs (sensor.bpf.c SENSOR_OPEN_EXIT): "<name>" reads the opened
// file with bpf_probe_read_kernel, "<name>_direct" with plain loads through bpf_rdonly_cast. Exactly
// one of each pair is loaded.
constexpr std::string_view kDirectSuffix = "_direct";

void select_open_variant(bpf_object* obj, bool direct) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    const std::string_view name = bpf_program__name(prog);
    if (!name.ends_with(kDirectSuffix)) continue;
    const std::string twin(name.substr(0, name.size() - kDirectSuffix.size()));
    bpf_program__set_autoload(prog, direct);
    if (bpf_program* other = bpf_object__find_program_by_name(obj, twin.c_str())) {
      bpf_program__set_autoload(other, !direct);
    }
  }
}

// The io_uring programs (bpf/readpath.bpf.h) attach to tracepoints a kernel built without io_uring
// lacks; there they are not loaded, and io_uring needs no watching. Every other program's hook
// exists on every supported kernel, and a missing one fails the load as before.
bool tracepoint_exists(std::string_view section) {
  constexpr std::string_view kPrefix = "tracepoint/";
  if (!section.starts_with(kPrefix)) return true;
  const std::string event(section.substr(kPrefix.size()));
  for (const char* root : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"}) {
    if (access((std::string(root) + event).c_str(), F_OK) == 0) return true;
  }
  return false;
}

void skip_missing_io_uring_hooks(bpf_object* obj) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    const std::string_view section = bpf_program__section_name(prog);
    const bool io_uring =
        section.starts_with("tracepoint/io_uring/") || section.starts_with("tracepoint/syscalls/sys_enter_io_uring_");
    if (!io_uring || !bpf_program__autoload(prog) || tracepoint_exists(section)) continue;
    spdlog::warn("{}: this kernel has no {} tracepoint (built without io_uring); not loaded", bpf_program__name(prog),
                 section);
    bpf_program__set_autoload(prog, false);
  }
}

// Both variants of a hook pin their link under the same name, so an agent that switches variants
// (or an upgrade from one that had only the first) takes the link over instead of leaving the old
// program attached beside the new one.
std::string link_pin_name(std::string_view program_name) {
  if (program_name.ends_with(kDirectSuffix)) program_name.remove_suffix(kDirectSuffix.size());
  return std::string(program_name);
}

}  // namespace

Result<std::unique_ptr<SensorLoader>> SensorLoader::load(const SensorOptions& options) {
  std::unique_ptr<SensorLoader> loader(new SensorLoader());
  if (auto loaded = loader->load_objects(options); !loaded) return fail(loaded.error());
  const auto& s = loader->skel_->maps;
  const auto& e = loader->egress_->maps;
  loader->maps_ = SensorMapFds{
      .events = bpf_map__fd(s.nhg_events),
      .credentials = bpf_map__fd(s.nhg_credentials),
      .credential_filter = bpf_map__fd(s.nhg_credential_filter),
      .candidate_names = bpf_map__fd(s.nhg_candidate_names),
      .candidate_pairs = bpf_map__fd(s.nhg_candidate_pairs),
      .candidate_prefixes = bpf_map__fd(s.nhg_candidate_prefixes),
      .candidate_filter = bpf_map__fd(s.nhg_candidate_filter),
      .counters = bpf_map__fd(s.nhg_counters),
      .taint = bpf_map__fd(s.nhg_taint),
      .enforcement_counts = bpf_map__fd(s.nhg_enforcement_counts),
      .credential_denies = bpf_map__fd(s.nhg_credential_denies),
      .egress_blocks = bpf_map__fd(e.nhg_egress_blocks),
      .egress_dests = bpf_map__fd(e.nhg_egress_dests),
      .followed = bpf_map__fd(s.nhg_followed),
  };
  return loader;
}

Result<void> SensorLoader::load_objects(const SensorOptions& options) {
  const long page = sysconf(_SC_PAGESIZE);
  if (options.ringbuf_bytes == 0 || (options.ringbuf_bytes & (options.ringbuf_bytes - 1)) != 0 ||
      options.ringbuf_bytes % page != 0) {
    return fail(Error::plain(
        fmt::format("ring buffer size {} must be a power of two and a multiple of {}", options.ringbuf_bytes, page)));
  }
  auto loaded = load_sensor_object(options, options.direct_file_reads);
  if (!loaded && options.direct_file_reads) {
    // The feature probe accepted bpf_rdonly_cast, but a kernel may still refuse one of the direct
    // program's loads (its verifier log is above). The probe-read variant detects the same opens.
    spdlog::warn(
        "the direct open programs did not load ({}); loading the bpf_probe_read_kernel variant instead, "
        "which costs each open ~0.3 us more",
        loaded.error().message);
    nhiguard_sensor__destroy(skel_);
    skel_ = nullptr;
    loaded = load_sensor_object(options, false);
  }
  if (!loaded) return loaded;
  if (auto egress = load_egress(options); !egress) return egress;
  if (!options.lsm_enforcement) {
    enforcement_ = {.lsm = false, .reason = "BPF LSM not requested"};
    return {};
  }
  if (auto lsm = load_lsm(options); !lsm) {
    drop_lsm(fmt::format("the BPF LSM programs did not load ({})", lsm.error().message));
  } else {
    enforcement_ = {.lsm = true, .reason = "BPF LSM programs loaded"};
  }
  return {};
}

Result<void> SensorLoader::load_lsm(const SensorOptions& options) {
  lsm_ = nhiguard_lsm__open();
  if (!lsm_) return fail(Error::from_current_errno("open BPF object nhiguard_lsm"));
  lsm_->rodata->ignore_tgid = options.ignore_tgid;
  // Every map the LSM programs decide on or write to is the sensor's or the egress object's.
  for (auto [mine, shared] : {std::pair{lsm_->maps.nhg_events, skel_->maps.nhg_events},
                              std::pair{lsm_->maps.nhg_counters, skel_->maps.nhg_counters},
                              std::pair{lsm_->maps.nhg_taint, skel_->maps.nhg_taint},
                              std::pair{lsm_->maps.nhg_followed, skel_->maps.nhg_followed},
                              std::pair{lsm_->maps.nhg_cgroup_taint, skel_->maps.nhg_cgroup_taint},
                              std::pair{lsm_->maps.nhg_enforcement_counts, skel_->maps.nhg_enforcement_counts},
                              std::pair{lsm_->maps.nhg_last_wakeup, skel_->maps.nhg_last_wakeup},
                              std::pair{lsm_->maps.nhg_credentials, skel_->maps.nhg_credentials},
                              std::pair{lsm_->maps.nhg_credential_filter, skel_->maps.nhg_credential_filter},
                              std::pair{lsm_->maps.nhg_credential_denies, skel_->maps.nhg_credential_denies},
                              std::pair{lsm_->maps.nhg_egress_blocks, egress_->maps.nhg_egress_blocks},
                              std::pair{lsm_->maps.nhg_egress_dests, egress_->maps.nhg_egress_dests}}) {
    if (int err = bpf_map__reuse_fd(mine, bpf_map__fd(shared)); err != 0) {
      return fail(libbpf_error(err, std::string("share map ") + bpf_map__name(shared) + " with nhiguard_lsm"));
    }
  }
  if (int err = nhiguard_lsm__load(lsm_); err != 0) {
    return fail(libbpf_error(err, "load BPF programs of nhiguard_lsm (the verifier log above says why)"));
  }
  return {};
}

// The LSM layer is an upgrade: without it the tracepoint and cgroup paths, loaded either way, enforce.
void SensorLoader::drop_lsm(const std::string& what_failed) {
  spdlog::warn(
      "{}; deny_credential stays enforced by the open tracepoints (SIGKILL of the reader on return from open) "
      "and egress blocks by the cgroup hooks",
      what_failed);
  if (lsm_) nhiguard_lsm__destroy(lsm_);
  lsm_ = nullptr;
  enforcement_ = {.lsm = false, .reason = what_failed};
}

Result<void> SensorLoader::load_sensor_object(const SensorOptions& options, bool direct_file_reads) {
  skel_ = nhiguard_sensor__open();
  if (!skel_) return fail(Error::from_current_errno("open BPF object nhiguard_sensor"));
  bpf_map__set_max_entries(skel_->maps.nhg_events, options.ringbuf_bytes);
  skel_->rodata->ignore_tgid = options.ignore_tgid;
  skel_->rodata->read_syscall_args = options.read_syscall_args;
  select_open_variant(skel_->obj, direct_file_reads);
  skip_missing_io_uring_hooks(skel_->obj);

  if (!options.pin_dir.empty()) {
    if (auto made = make_directories(options.pin_dir); !made) return fail(made.error());
    for (bpf_map* map :
         {skel_->maps.nhg_credentials, skel_->maps.nhg_candidate_names, skel_->maps.nhg_candidate_pairs,
          skel_->maps.nhg_candidate_prefixes, skel_->maps.nhg_counters, skel_->maps.nhg_taint,
          skel_->maps.nhg_enforcement_counts, skel_->maps.nhg_credential_denies, skel_->maps.nhg_credential_filter,
          skel_->maps.nhg_candidate_filter, skel_->maps.nhg_doomed_files, skel_->maps.nhg_followed}) {
      if (auto pinned = pin_map(map, options.pin_dir); !pinned) return pinned;
    }
  }
  if (int err = nhiguard_sensor__load(skel_); err != 0) {
    return fail(libbpf_error(err, "load BPF programs of nhiguard_sensor (the verifier log above says why)"));
  }
  return {};
}

Result<void> SensorLoader::load_egress(const SensorOptions& options) {
  egress_ = nhiguard_egress__open();
  if (!egress_) return fail(Error::from_current_errno("open BPF object nhiguard_egress"));
  egress_->rodata->report_all_egress = options.report_all_egress;
  // One ring buffer, one counter array, one taint table for both objects.
  if (int err = bpf_map__reuse_fd(egress_->maps.nhg_events, bpf_map__fd(skel_->maps.nhg_events)); err != 0) {
    return fail(libbpf_error(err, "share the ring buffer with nhiguard_egress"));
  }
  for (auto [mine, shared] : {std::pair{egress_->maps.nhg_counters, skel_->maps.nhg_counters},
                              std::pair{egress_->maps.nhg_taint, skel_->maps.nhg_taint},
                              std::pair{egress_->maps.nhg_followed, skel_->maps.nhg_followed},
                              std::pair{egress_->maps.nhg_cgroup_taint, skel_->maps.nhg_cgroup_taint},
                              std::pair{egress_->maps.nhg_enforcement_counts, skel_->maps.nhg_enforcement_counts}}) {
    if (int err = bpf_map__reuse_fd(mine, bpf_map__fd(shared)); err != 0) {
      return fail(libbpf_error(err, std::string("share map ") + bpf_map__name(shared) + " with nhiguard_egress"));
    }
  }
  if (!options.pin_dir.empty()) {
    for (bpf_map* map : {egress_->maps.nhg_egress_blocks, egress_->maps.nhg_egress_dests}) {
      if (auto pinned = pin_map(map, options.pin_dir); !pinned) return pinned;
    }
  }
  if (int err = nhiguard_egress__load(egress_); err != 0) {
    return fail(libbpf_error(err, "load BPF programs of nhiguard_egress (the verifier log above says why)"));
  }
  return {};
}

Result<void> SensorLoader::attach(const SensorOptions& options) {
  const std::string link_dir = options.pin_dir.empty() ? "" : options.pin_dir + "/links";
  if (!link_dir.empty()) {
    if (auto made = make_directories(link_dir); !made) return made;
  }
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (!bpf_program__autoload(prog)) continue;
    if (auto attached = attach_pinned(prog, -1, link_dir); !attached) return attached;
  }
  std::string cgroup_root = options.cgroup2_root;
  if (cgroup_root.empty()) {
    auto found = identity::find_cgroup2_mount();
    if (!found) return fail(Error::plain("egress hooks need cgroup v2: " + found.error().message));
    cgroup_root = *found;
  }
  const int cgroup_fd = open(cgroup_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup_fd < 0) return fail(Error::from_current_errno("open cgroup v2 root " + cgroup_root));
  bpf_object__for_each_program(prog, egress_->obj) {
    if (auto attached = attach_pinned(prog, cgroup_fd, link_dir); !attached) {
      close(cgroup_fd);
      return attached;
    }
  }
  close(cgroup_fd);
  attach_lsm(link_dir);
  return {};
}

// Link pins of the LSM programs carry their names (lsm.bpf.c), all starting with this.
constexpr std::string_view kLsmLinkPrefix = "lsm_";

// The read path's kills stand down while the LSM programs refuse instead (NHG_ENF_LSM_ACTIVE).
void SensorLoader::mark_lsm_active(bool active) {
  const uint32_t slot = NHG_ENF_LSM_ACTIVE;
  const uint32_t value = active ? 1 : 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.nhg_enforcement_counts), &slot, &value, BPF_ANY) != 0) {
    spdlog::warn("could not mark BPF LSM {} in nhg_enforcement_counts ({}); the read path {}", active ? "on" : "off",
                 strerror(errno),
                 active ? "keeps killing denied readers beside the LSM refusals"
                        : "may stand down its kills of denied readers while no LSM program refuses them");
  }
}

void SensorLoader::attach_lsm(const std::string& link_dir) {
  if (!lsm_) {
    mark_lsm_active(false);
    // An earlier agent's LSM links would keep refusing with this agent's maps; this agent chose the
    // tracepoint path, so it alone enforces.
    std::error_code ignored;
    if (link_dir.empty() || !std::filesystem::is_directory(link_dir, ignored)) return;
    for (const auto& entry : std::filesystem::directory_iterator(link_dir, ignored)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(kLsmLinkPrefix)) continue;
      spdlog::info("removing the pinned BPF LSM link {} of an earlier agent ({})", entry.path().string(),
                   enforcement_.reason);
      std::filesystem::remove(entry.path(), ignored);
    }
    return;
  }
  const size_t first = links_.size();
  bpf_program* prog;
  bpf_object__for_each_program(prog, lsm_->obj) {
    if (auto attached = attach_pinned(prog, -1, link_dir); !attached) {
      for (size_t i = first; i < links_.size(); ++i) {
        bpf_link__unpin(links_[i]);
        bpf_link__destroy(links_[i]);
      }
      links_.resize(first);
      attached_.resize(first);
      mark_lsm_active(false);
      drop_lsm(fmt::format("the BPF LSM programs did not attach ({})", attached.error().message));
      return;
    }
  }
  mark_lsm_active(true);
  enforcement_.reason = "BPF LSM programs attached";
}

// Attaches one program (to the cgroup when cgroup_fd >= 0) and pins its link, so the program keeps
// running, and enforcing, when the agent is gone. A link pinned by an earlier agent is taken over:
// cgroup links are switched to the new program atomically; other links are replaced after the new
// one is attached, so there is no moment without the program.
Result<void> SensorLoader::attach_pinned(bpf_program* prog, int cgroup_fd, const std::string& link_dir) {
  const std::string name = bpf_program__name(prog);
  const std::string pin_path = link_dir.empty() ? "" : link_dir + "/" + link_pin_name(name);
  // Only an existing pin is opened: libbpf logs a failed open as a warning, which on a first start
  // would read as a fault.
  bpf_link* previous =
      pin_path.empty() || access(pin_path.c_str(), F_OK) != 0 ? nullptr : bpf_link__open(pin_path.c_str());
  if (previous && cgroup_fd >= 0) {
    if (bpf_link__update_program(previous, prog) == 0) {
      links_.push_back(previous);
      attached_.push_back(name + " (adopted)");
      return {};
    }
    spdlog::warn("pinned link {} could not take the new program ({}); attaching anew", pin_path, strerror(errno));
  }
  bpf_link* link = cgroup_fd >= 0 ? bpf_program__attach_cgroup(prog, cgroup_fd) : bpf_program__attach(prog);
  if (!link) {
    const int err = errno;
    if (previous) bpf_link__destroy(previous);
    return fail(Error::from_errno(err, fmt::format("attach {} ({})", name, bpf_program__section_name(prog))));
  }
  if (previous) {
    bpf_link__unpin(previous);
    bpf_link__destroy(previous);
  }
  if (!pin_path.empty()) {
    unlink(pin_path.c_str());
    if (int err = bpf_link__pin(link, pin_path.c_str()); err != 0) {
      bpf_link__destroy(link);
      return fail(libbpf_error(err, "pin link " + pin_path));
    }
  }
  links_.push_back(link);
  attached_.push_back(name);
  return {};
}

SensorLoader::~SensorLoader() {
  // Closing a pinned link leaves it attached: the pin holds it until the next agent takes it over.
  for (bpf_link* link : links_) bpf_link__destroy(link);
  if (lsm_) nhiguard_lsm__destroy(lsm_);
  if (egress_) nhiguard_egress__destroy(egress_);
  if (skel_) nhiguard_sensor__destroy(skel_);
}

}  // namespace nhiguard::kernel
