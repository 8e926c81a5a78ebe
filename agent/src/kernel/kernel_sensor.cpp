#include "kernel/kernel_sensor.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fmt/format.h>
#include <map>
#include <set>
#include <spdlog/spdlog.h>
#include <string_view>

#include "common/filesystem.h"
#include "kernel/libbpf_logging.h"
#include "identity/mountinfo.h"
#include "nhiguard_egress.skel.h"
#include "nhiguard_sensor.skel.h"

namespace nhiguard::kernel {
namespace {

Error libbpf_error(int err, const std::string& what) { return Error::from_errno(err < 0 ? -err : err, what); }

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
                    info.value_size == bpf_map__value_size(map) &&
                    info.max_entries == bpf_map__max_entries(map);
  if (!same) {
    spdlog::warn("pinned map {} does not match this agent's layout; replacing it (detection state is rebuilt "
                 "from the catalogue)",
                 pin_path);
    unlink(pin_path.c_str());
  }
}

template <typename Key, typename Value>
Result<std::vector<std::pair<Key, Value>>> dump_map(int fd, const char* name) {
  std::vector<std::pair<Key, Value>> out;
  Key key{};
  Key next{};
  for (const void* prev = nullptr; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &key) {
    Value value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) out.emplace_back(next, value);
    key = next;
  }
  if (errno != ENOENT) return fail(Error::from_current_errno(std::string("iterate ") + name));
  return out;
}

nhg_egress_dest_key dest_key(uint64_t cgroup_id, const containment::EgressDestination& dest) {
  nhg_egress_dest_key key{};
  // The cgroup id and port are matched whole; the address by its prefix.
  key.prefixlen = 8 * (sizeof(key.cgroup_id) + sizeof(key.port)) + dest.prefix_bits;
  std::memcpy(key.cgroup_id, &cgroup_id, sizeof(key.cgroup_id));
  key.port[0] = static_cast<uint8_t>(dest.port >> 8);
  key.port[1] = static_cast<uint8_t>(dest.port & 0xff);
  std::memcpy(key.addr, dest.address.data(), sizeof(key.addr));
  return key;
}

// Deletes every key of the map for which keep(key) is false (a table replaced by a new set).
template <typename Key, typename Value, typename Keep>
Result<void> delete_keys_unless(int fd, const char* name, Keep keep) {
  auto entries = dump_map<Key, Value>(fd, name);
  if (!entries) return fail(entries.error());
  for (const auto& [key, value] : *entries) {
    if (!keep(key) && bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) {
      return fail(Error::from_current_errno(std::string("delete a stale entry of ") + name));
    }
  }
  return {};
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

// Both variants of a hook pin their link under the same name, so an agent that switches variants
// (or an upgrade from one that had only the first) takes the link over instead of leaving the old
// program attached beside the new one.
std::string link_pin_name(std::string_view program_name) {
  if (program_name.ends_with(kDirectSuffix)) program_name.remove_suffix(kDirectSuffix.size());
  return std::string(program_name);
}

uint32_t candidate_slot_of(const std::string& name) {
  return nhg_candidate_filter_slot(static_cast<uint32_t>(name.size()), static_cast<uint8_t>(name.front()));
}

int on_record(void* ctx, void* data, size_t size) {
  auto* handler = static_cast<KernelSensor::RecordHandler*>(ctx);
  (*handler)(std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  return 0;
}

bool valid_name(const std::string& s) { return s.size() < NHG_NAME_LEN; }

template <size_t N>
void copy_name(char (&dst)[N], const std::string& src) {
  std::memset(dst, 0, N);
  std::memcpy(dst, src.data(), std::min(src.size(), N - 1));
}

struct NameOnlyKey {
  char name[NHG_NAME_LEN];
};

}  // namespace

Result<std::unique_ptr<KernelSensor>> KernelSensor::start(const SensorOptions& options, RecordHandler handler) {
  route_libbpf_logging_to_spdlog();
  std::unique_ptr<KernelSensor> sensor(new KernelSensor());
  sensor->handler_ = std::move(handler);
  if (auto loaded = sensor->load(options); !loaded) return fail(loaded.error());
  if (auto attached = sensor->attach(options); !attached) return fail(attached.error());
  sensor->ring_ = ring_buffer__new(bpf_map__fd(sensor->skel_->maps.nhg_events), on_record, &sensor->handler_, nullptr);
  if (!sensor->ring_) return fail(Error::from_current_errno("ring_buffer__new for nhg_events"));
  return sensor;
}

Result<void> KernelSensor::load(const SensorOptions& options) {
  const long page = sysconf(_SC_PAGESIZE);
  if (options.ringbuf_bytes == 0 || (options.ringbuf_bytes & (options.ringbuf_bytes - 1)) != 0 ||
      options.ringbuf_bytes % page != 0) {
    return fail(Error::plain(fmt::format("ring buffer size {} must be a power of two and a multiple of {}",
                                         options.ringbuf_bytes, page)));
  }
  auto loaded = load_sensor_object(options, options.direct_file_reads);
  if (!loaded && options.direct_file_reads) {
    // The feature probe accepted bpf_rdonly_cast, but a kernel may still refuse one of the direct
    // program's loads (its verifier log is above). The probe-read variant detects the same opens.
    spdlog::warn("the direct open programs did not load ({}); loading the bpf_probe_read_kernel variant instead, "
                 "which costs each open ~0.3 us more",
                 loaded.error().message);
    nhiguard_sensor__destroy(skel_);
    skel_ = nullptr;
    loaded = load_sensor_object(options, false);
  }
  if (!loaded) return loaded;
  // Before any program is attached: a filter that says "no" for an existing entry would hide it.
  if (auto rebuilt = rebuild_filters(); !rebuilt) return rebuilt;
  return load_egress(options);
}

Result<void> KernelSensor::load_sensor_object(const SensorOptions& options, bool direct_file_reads) {
  skel_ = nhiguard_sensor__open();
  if (!skel_) return fail(Error::from_current_errno("open BPF object nhiguard_sensor"));
  bpf_map__set_max_entries(skel_->maps.nhg_events, options.ringbuf_bytes);
  skel_->rodata->ignore_tgid = options.ignore_tgid;
  skel_->rodata->read_syscall_args = options.read_syscall_args;
  select_open_variant(skel_->obj, direct_file_reads);

  if (!options.pin_dir.empty()) {
    if (auto made = make_directories(options.pin_dir); !made) return fail(made.error());
    for (bpf_map* map : {skel_->maps.nhg_credentials, skel_->maps.nhg_candidate_names,
                         skel_->maps.nhg_candidate_pairs, skel_->maps.nhg_candidate_prefixes,
                         skel_->maps.nhg_counters, skel_->maps.nhg_taint, skel_->maps.nhg_enforcement_counts,
                         skel_->maps.nhg_credential_denies, skel_->maps.nhg_credential_filter,
                         skel_->maps.nhg_candidate_filter}) {
      if (auto pinned = pin_map(map, options.pin_dir); !pinned) return pinned;
    }
  }
  if (int err = nhiguard_sensor__load(skel_); err != 0) {
    return fail(libbpf_error(err, "load BPF programs of nhiguard_sensor (the verifier log above says why)"));
  }
  return {};
}

Result<void> KernelSensor::load_egress(const SensorOptions& options) {
  egress_ = nhiguard_egress__open();
  if (!egress_) return fail(Error::from_current_errno("open BPF object nhiguard_egress"));
  egress_->rodata->report_all_egress = options.report_all_egress;
  // One ring buffer, one counter array, one taint table for both objects.
  if (int err = bpf_map__reuse_fd(egress_->maps.nhg_events, bpf_map__fd(skel_->maps.nhg_events)); err != 0) {
    return fail(libbpf_error(err, "share the ring buffer with nhiguard_egress"));
  }
  for (auto [mine, shared] : {std::pair{egress_->maps.nhg_counters, skel_->maps.nhg_counters},
                              std::pair{egress_->maps.nhg_taint, skel_->maps.nhg_taint},
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
  // Pinned enforcement adopted from an earlier agent must be counted before the programs run.
  return refresh_enforcement_counts();
}

Result<void> KernelSensor::attach(const SensorOptions& options) {
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
  return {};
}

// Attaches one program (to the cgroup when cgroup_fd >= 0) and pins its link, so the program keeps
// running, and enforcing, when the agent is gone. A link pinned by an earlier agent is taken over:
// cgroup links are switched to the new program atomically; other links are replaced after the new
// one is attached, so there is no moment without the program.
Result<void> KernelSensor::attach_pinned(bpf_program* prog, int cgroup_fd, const std::string& link_dir) {
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

KernelSensor::~KernelSensor() {
  if (ring_) ring_buffer__free(ring_);
  // Closing a pinned link leaves it attached: the pin holds it until the next agent takes it over.
  for (bpf_link* link : links_) bpf_link__destroy(link);
  if (egress_) nhiguard_egress__destroy(egress_);
  if (skel_) nhiguard_sensor__destroy(skel_);
}

Result<int> KernelSensor::poll(int timeout_ms) {
  int n = ring_buffer__poll(ring_, timeout_ms);
  if (n < 0 && n != -EINTR) return fail(libbpf_error(n, "poll ring buffer nhg_events"));
  // The programs wake the agent at most once per millisecond per CPU (maps.bpf.h): records
  // submitted without a wake-up are taken here, so none waits longer than one poll timeout.
  int rest = ring_buffer__consume(ring_);
  if (rest < 0 && rest != -EINTR) return fail(libbpf_error(rest, "consume ring buffer nhg_events"));
  return (n < 0 ? 0 : n) + (rest < 0 ? 0 : rest);
}

Result<void> KernelSensor::upsert_credential(const nhg_inode_key& key, const nhg_credential_value& value) {
  // The filter slot is raised before the entry exists and lowered after it is gone: a count above
  // the truth costs the programs one hash lookup, one below it would hide the credential.
  if (!credential_keys_.contains({key.dev, key.ino})) {
    const uint32_t slot = nhg_credential_filter_slot(key.dev, key.ino);
    if (auto raised = write_filter_slot(skel_->maps.nhg_credential_filter, slot, credential_filter_[slot] + 1);
        !raised) {
      return raised;
    }
    ++credential_filter_[slot];
    credential_keys_.insert({key.dev, key.ino});
  }
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.nhg_credentials), &key, &value, BPF_ANY) != 0) {
    return fail(Error::from_current_errno(fmt::format("add credential inode {}:{} to nhg_credentials", key.dev, key.ino)));
  }
  return {};
}

Result<void> KernelSensor::remove_credential(const nhg_inode_key& key) {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.nhg_credentials), &key) != 0 && errno != ENOENT) {
    return fail(Error::from_current_errno(fmt::format("remove credential inode {}:{}", key.dev, key.ino)));
  }
  if (credential_keys_.erase({key.dev, key.ino}) != 0) {
    const uint32_t slot = nhg_credential_filter_slot(key.dev, key.ino);
    if (auto lowered = write_filter_slot(skel_->maps.nhg_credential_filter, slot, credential_filter_[slot] - 1);
        !lowered) {
      // The count stays above the truth: the programs do one needless lookup for this slot.
      spdlog::warn("credential inode {}:{} removed, its filter slot not lowered: {}", key.dev, key.ino,
                   lowered.error().message);
      return {};
    }
    --credential_filter_[slot];
  }
  return {};
}

Result<void> KernelSensor::write_filter_slot(bpf_map* map, uint32_t slot, uint32_t value) {
  if (bpf_map_update_elem(bpf_map__fd(map), &slot, &value, BPF_ANY) != 0) {
    return fail(Error::from_current_errno(fmt::format("set slot {} of {} to {}", slot, bpf_map__name(map), value)));
  }
  return {};
}

Result<void> KernelSensor::write_filter(bpf_map* map, const std::vector<uint32_t>& values) {
  const int fd = bpf_map__fd(map);
  std::vector<uint32_t> keys(values.size());
  for (uint32_t i = 0; i < keys.size(); ++i) keys[i] = i;
  uint32_t count = static_cast<uint32_t>(values.size());
  if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, nullptr) == 0) return {};
  // Batch updates need kernel 5.6+; one update per slot does the same.
  for (uint32_t i = 0; i < keys.size(); ++i) {
    if (bpf_map_update_elem(fd, &keys[i], &values[i], BPF_ANY) != 0) {
      return fail(Error::from_current_errno(fmt::format("write slot {} of {}", i, bpf_map__name(map))));
    }
  }
  return {};
}

Result<void> KernelSensor::rebuild_filters() {
  auto credentials = dump_map<nhg_inode_key, nhg_credential_value>(bpf_map__fd(skel_->maps.nhg_credentials),
                                                                   "nhg_credentials");
  if (!credentials) return fail(credentials.error());
  credential_filter_.assign(NHG_CREDENTIAL_FILTER_SLOTS, 0);
  credential_keys_.clear();
  for (const auto& [key, value] : *credentials) {
    ++credential_filter_[nhg_credential_filter_slot(key.dev, key.ino)];
    credential_keys_.insert({key.dev, key.ino});
  }
  if (auto written = write_filter(skel_->maps.nhg_credential_filter, credential_filter_); !written) return written;

  auto prefixes = dump_map<nhg_name_prefix_key, uint32_t>(bpf_map__fd(skel_->maps.nhg_candidate_prefixes),
                                                          "nhg_candidate_prefixes");
  if (!prefixes) return fail(prefixes.error());
  candidate_filter_.assign(NHG_CANDIDATE_FILTER_SLOTS, 0);
  for (const auto& [key, value] : *prefixes) {
    if (key.len == 0 || key.len >= NHG_NAME_LEN) continue;
    candidate_filter_[nhg_candidate_filter_slot(key.len, static_cast<uint8_t>(key.head & 0xff))] = 1;
  }
  return write_filter(skel_->maps.nhg_candidate_filter, candidate_filter_);
}

Result<void> KernelSensor::set_candidate_names(const std::vector<CandidateName>& names) {
  const int names_fd = bpf_map__fd(skel_->maps.nhg_candidate_names);
  const int pairs_fd = bpf_map__fd(skel_->maps.nhg_candidate_pairs);
  std::map<std::string, uint32_t> name_flags;
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& entry : names) {
    if (!valid_name(entry.name) || !valid_name(entry.parent) || entry.name.empty()) {
      return fail(Error::plain(fmt::format("candidate name '{}/{}' is empty or longer than {} bytes", entry.parent,
                                           entry.name, NHG_NAME_LEN - 1)));
    }
    if (entry.parent.empty()) {
      name_flags[entry.name] |= NHG_NAME_ANY_PARENT;
    } else {
      name_flags[entry.name] |= NHG_NAME_BY_PARENT;
      pairs.emplace(entry.parent, entry.name);
    }
  }
  const int prefixes_fd = bpf_map__fd(skel_->maps.nhg_candidate_prefixes);
  std::set<std::pair<uint32_t, uint64_t>> prefixes;
  for (const auto& [name, flags] : name_flags) {
    nhg_name_prefix_key key{};
    key.len = static_cast<uint32_t>(name.size());
    std::memcpy(&key.head, name.data(), std::min<size_t>(name.size(), sizeof(key.head)));
    prefixes.emplace(key.len, key.head);
  }
  // Add the new entries first, then delete stale ones, so no name is unwatched in between; the
  // filter admits old and new names until the stale entries are gone.
  // Only the slots that change are written: a sync whose names did not change writes none.
  std::vector<uint32_t> wanted_filter(NHG_CANDIDATE_FILTER_SLOTS, 0);
  for (const auto& [name, flags] : name_flags) wanted_filter[candidate_slot_of(name)] = 1;
  for (uint32_t slot = 0; slot < NHG_CANDIDATE_FILTER_SLOTS; ++slot) {
    if (wanted_filter[slot] == 0 || candidate_filter_[slot] != 0) continue;
    if (auto raised = write_filter_slot(skel_->maps.nhg_candidate_filter, slot, 1); !raised) return raised;
    candidate_filter_[slot] = 1;
  }
  for (const auto& [len, head] : prefixes) {
    nhg_name_prefix_key key{.len = len, .pad = 0, .head = head};
    const uint32_t one = 1;
    if (bpf_map_update_elem(prefixes_fd, &key, &one, BPF_ANY) != 0) {
      return fail(Error::from_current_errno("add candidate name prefix"));
    }
  }
  for (const auto& [name, flags] : name_flags) {
    NameOnlyKey key;
    copy_name(key.name, name);
    if (bpf_map_update_elem(names_fd, &key, &flags, BPF_ANY) != 0) {
      return fail(Error::from_current_errno("add candidate name " + name));
    }
  }
  for (const auto& [parent, name] : pairs) {
    nhg_name_key key;
    copy_name(key.parent, parent);
    copy_name(key.name, name);
    const uint32_t one = 1;
    if (bpf_map_update_elem(pairs_fd, &key, &one, BPF_ANY) != 0) {
      return fail(Error::from_current_errno("add candidate pair " + parent + "/" + name));
    }
  }
  auto stale_names = delete_keys_unless<NameOnlyKey, uint32_t>(names_fd, "nhg_candidate_names", [&](const NameOnlyKey& key) {
    return name_flags.contains(std::string(key.name, strnlen(key.name, NHG_NAME_LEN)));
  });
  if (!stale_names) return fail(stale_names.error());
  auto stale_pairs = delete_keys_unless<nhg_name_key, uint32_t>(pairs_fd, "nhg_candidate_pairs", [&](const nhg_name_key& key) {
    return pairs.contains({std::string(key.parent, strnlen(key.parent, NHG_NAME_LEN)),
                           std::string(key.name, strnlen(key.name, NHG_NAME_LEN))});
  });
  if (!stale_pairs) return fail(stale_pairs.error());
  auto stale_prefixes = delete_keys_unless<nhg_name_prefix_key, uint32_t>(
      prefixes_fd, "nhg_candidate_prefixes",
      [&](const nhg_name_prefix_key& key) { return prefixes.contains({key.len, key.head}); });
  if (!stale_prefixes) return fail(stale_prefixes.error());
  for (uint32_t slot = 0; slot < NHG_CANDIDATE_FILTER_SLOTS; ++slot) {
    if (wanted_filter[slot] != 0 || candidate_filter_[slot] == 0) continue;
    if (auto lowered = write_filter_slot(skel_->maps.nhg_candidate_filter, slot, 0); !lowered) return lowered;
    candidate_filter_[slot] = 0;
  }
  return {};
}

Result<SensorCounters> KernelSensor::counters() const {
  const int fd = bpf_map__fd(skel_->maps.nhg_counters);
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return fail(libbpf_error(cpus, "count possible CPUs"));
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  SensorCounters out;
  for (uint32_t i = 0; i < NHG_CTR__COUNT; ++i) {
    if (bpf_map_lookup_elem(fd, &i, per_cpu.data()) != 0) {
      return fail(Error::from_current_errno(fmt::format("read counter {} of nhg_counters", i)));
    }
    for (uint64_t v : per_cpu) out.values[i] += v;
  }
  return out;
}

std::vector<std::string> KernelSensor::attached_programs() const { return attached_; }

Result<uint32_t> KernelSensor::counters_map_id() const {
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(bpf_map__fd(skel_->maps.nhg_counters), &info, &length); err != 0) {
    return fail(libbpf_error(err, "read the id of nhg_counters"));
  }
  return info.id;
}

Error KernelSensor::enforcement_update_error(std::string what) {
  const int err = errno;
  if (err != E2BIG) return Error::from_errno(err, std::move(what));
  ++enforcement_map_full_;
  return Error{err, std::move(what) + ": the map is full (every entry in use until some expire or are rolled back)"};
}


// The programs skip their cgroup-ancestor walks while a count is 0; the counts follow the maps.
Result<void> KernelSensor::refresh_enforcement_counts() {
  auto blocks = egress_blocks();
  if (!blocks) return fail(blocks.error());
  auto denies = credential_denies();
  if (!denies) return fail(denies.error());
  const int fd = bpf_map__fd(skel_->maps.nhg_enforcement_counts);
  for (auto [slot, count] : {std::pair{uint32_t{NHG_ENF_CREDENTIAL_DENIES}, static_cast<uint32_t>(denies->size())},
                             std::pair{uint32_t{NHG_ENF_EGRESS_BLOCKS}, static_cast<uint32_t>(blocks->size())}}) {
    if (bpf_map_update_elem(fd, &slot, &count, BPF_ANY) != 0) {
      return fail(Error::from_current_errno(fmt::format("update enforcement count {}", slot)));
    }
  }
  return {};
}

Result<void> KernelSensor::raise_enforcement_count(uint32_t slot) {
  const int fd = bpf_map__fd(skel_->maps.nhg_enforcement_counts);
  uint32_t count = 0;
  if (bpf_map_lookup_elem(fd, &slot, &count) != 0) {
    return fail(Error::from_current_errno(fmt::format("read enforcement count {}", slot)));
  }
  ++count;
  if (bpf_map_update_elem(fd, &slot, &count, BPF_ANY) != 0) {
    return fail(Error::from_current_errno(fmt::format("raise enforcement count {}", slot)));
  }
  return {};
}

Result<void> KernelSensor::apply_egress_block(const EgressBlockSpec& spec) {
  const int dests_fd = bpf_map__fd(egress_->maps.nhg_egress_dests);
  // Destinations first: a listed block must never be in force without its list.
  for (const auto& dest : spec.destinations) {
    const nhg_egress_dest_key key = dest_key(spec.cgroup_id, dest);
    const uint32_t rule = spec.rule_id;
    if (bpf_map_update_elem(dests_fd, &key, &rule, BPF_ANY) != 0) {
      return fail(enforcement_update_error(fmt::format("add destination {} for cgroup {}", dest.to_string(), spec.cgroup_id)));
    }
  }
  nhg_egress_block block{.expires_at_ns = spec.expires_at_boot_ns,
                         .mode = spec.destinations.empty() ? NHG_BLOCK_ALL : NHG_BLOCK_LISTED,
                         .rule_id = spec.rule_id};
  // The count first: the block is in force from the moment its entry appears.
  if (auto raised = raise_enforcement_count(NHG_ENF_EGRESS_BLOCKS); !raised) return raised;
  if (bpf_map_update_elem(bpf_map__fd(egress_->maps.nhg_egress_blocks), &spec.cgroup_id, &block, BPF_ANY) != 0) {
    return fail(enforcement_update_error(fmt::format("add egress block for cgroup {}", spec.cgroup_id)));
  }
  return refresh_enforcement_counts();
}

Result<void> KernelSensor::remove_egress_block(uint64_t cgroup_id) {
  if (bpf_map_delete_elem(bpf_map__fd(egress_->maps.nhg_egress_blocks), &cgroup_id) != 0 && errno != ENOENT) {
    return fail(Error::from_current_errno(fmt::format("remove egress block of cgroup {}", cgroup_id)));
  }
  const int dests_fd = bpf_map__fd(egress_->maps.nhg_egress_dests);
  auto dests = dump_map<nhg_egress_dest_key, uint32_t>(dests_fd, "nhg_egress_dests");
  if (!dests) return fail(dests.error());
  for (const auto& [key, rule] : *dests) {
    uint64_t id;
    std::memcpy(&id, key.cgroup_id, sizeof(id));
    if (id == cgroup_id && bpf_map_delete_elem(dests_fd, &key) != 0 && errno != ENOENT) {
      return fail(Error::from_current_errno(fmt::format("remove a listed destination of cgroup {}", cgroup_id)));
    }
  }
  return refresh_enforcement_counts();
}

Result<std::vector<std::pair<nhg_inode_key, nhg_credential_value>>> KernelSensor::credentials() const {
  return dump_map<nhg_inode_key, nhg_credential_value>(bpf_map__fd(skel_->maps.nhg_credentials), "nhg_credentials");
}

Result<std::vector<std::pair<uint64_t, nhg_egress_block>>> KernelSensor::egress_blocks() const {
  return dump_map<uint64_t, nhg_egress_block>(bpf_map__fd(egress_->maps.nhg_egress_blocks), "nhg_egress_blocks");
}

Result<void> KernelSensor::apply_credential_deny(const nhg_deny_key& key, const nhg_deny_value& value) {
  if (auto raised = raise_enforcement_count(NHG_ENF_CREDENTIAL_DENIES); !raised) return raised;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.nhg_credential_denies), &key, &value, BPF_ANY) != 0) {
    return fail(enforcement_update_error(
        fmt::format("add credential deny (credential {}, cgroup {})", key.credential_id, key.cgroup_id)));
  }
  return refresh_enforcement_counts();
}

Result<void> KernelSensor::remove_credential_deny(const nhg_deny_key& key) {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.nhg_credential_denies), &key) != 0 && errno != ENOENT) {
    return fail(Error::from_current_errno(
        fmt::format("remove credential deny (credential {}, cgroup {})", key.credential_id, key.cgroup_id)));
  }
  return refresh_enforcement_counts();
}

Result<std::vector<std::pair<nhg_deny_key, nhg_deny_value>>> KernelSensor::credential_denies() const {
  return dump_map<nhg_deny_key, nhg_deny_value>(bpf_map__fd(skel_->maps.nhg_credential_denies), "nhg_credential_denies");
}

std::optional<nhg_taint> KernelSensor::taint_of(uint32_t tgid) const {
  nhg_taint taint{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nhg_taint), &tgid, &taint) != 0) return std::nullopt;
  return taint;
}

}  // namespace nhiguard::kernel
