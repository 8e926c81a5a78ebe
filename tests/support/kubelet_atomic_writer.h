// The kubelet's atomic writer (pkg/volume/util/atomic_writer.go), as the tests need it: a projected
// volume directory whose file `token` is a symlink to `..data/token`, `..data` a symlink to a
// `..<timestamp>` directory holding the real file. A rotation writes the new version into a new
// `..<timestamp>` directory, points `..data_tmp` at it, renames `..data_tmp` over `..data` (the
// atomic swap) and removes the old directory. Header-only; plain POSIX calls, no test framework.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace nhiguard::testing {

class KubeletAtomicWriter {
 public:
  // Makes `volume` with the first version of `file` (content given).
  KubeletAtomicWriter(std::string volume, std::string file, const std::string& content)
      : volume_(std::move(volume)), file_(std::move(file)) {
    std::filesystem::create_directories(volume_);
    current_ = write_version(content);
    std::filesystem::create_directory_symlink(current_, volume_ + "/..data");
    std::filesystem::create_symlink("..data/" + file_, volume_ + "/" + file_);
  }

  // Step 1 of a rotation: the new version in its own directory, not yet visible through `file`.
  std::string write_version(const std::string& content) {
    const std::string name = "..2026_12_04_19_00_0" + std::to_string(next_++) + ".123456789";
    std::filesystem::create_directory(volume_ + "/" + name);
    std::ofstream(volume_ + "/" + name + "/" + file_) << content;
    return name;
  }

  // Step 2: the swap, and the old version's removal.
  void swap_to(const std::string& version) {
    std::filesystem::create_directory_symlink(version, volume_ + "/..data_tmp");
    std::filesystem::rename(volume_ + "/..data_tmp", volume_ + "/..data");
    std::filesystem::remove_all(volume_ + "/" + current_);
    current_ = version;
  }

  std::string path() const { return volume_ + "/" + file_; }

 private:
  std::string volume_;
  std::string file_;
  std::string current_;
  int next_ = 1;
};

}  // namespace nhiguard::testing
