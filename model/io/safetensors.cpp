#include "model/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/base/check.h"

namespace modelone {

namespace fs = std::filesystem;
using nlohmann::json;

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  MO_REQUIRE(fd >= 0, "cannot open checkpoint file '", path, "': ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail(path, ": truncated safetensors file (", size_, " bytes, no header)");
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  MO_REQUIRE(p != MAP_FAILED, "cannot mmap '", path, "': ", std::strerror(errno));
  base_ = static_cast<const char*>(p);
  // A refused file must not keep its mapping: the destructor does not run when this throws.
  try {
    read_header();
  } catch (...) {
    ::munmap(const_cast<char*>(base_), size_);
    throw;
  }
}

void SafetensorsFile::read_header() {
  const std::string& path = path_;
  uint64_t header_len;
  std::memcpy(&header_len, base_, 8);
  MO_REQUIRE(header_len <= size_ - 8, path, ": corrupt safetensors header (header length ",
             header_len, " exceeds file size ", size_, ")");
  data_start_ = 8 + size_t(header_len);
  json h;
  try {
    h = json::parse(base_ + 8, base_ + data_start_);
  } catch (const json::exception& e) {
    fail(path, ": corrupt safetensors header (not valid JSON)");
  }
  MO_REQUIRE(h.is_object(), path, ": corrupt safetensors header (not a JSON object)");
  const size_t data_size = size_ - data_start_;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& why) { fail(path, ": tensor '", name, "': ", why); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      bad("malformed header entry");
    Entry e;
    e.name = name;
    const std::string dt = v["dtype"].is_string() ? v["dtype"].get<std::string>() : "?";
    if (!dtype_from_name(dt, &e.dtype)) bad("unsupported dtype " + dt);
    if (!v["shape"].is_array()) bad("bad shape");
    int64_t numel = 1;
    for (auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) bad("bad shape");
      e.shape.push_back(d.get<int64_t>());
      // Every element takes at least a byte: a count past the data cannot be right (and the
      // product must not overflow on the way).
      if (__builtin_mul_overflow(numel, e.shape.back(), &numel) || size_t(numel) > data_size)
        bad(str_cat("shape ", shape_str(e.shape), "... has more elements than the file has bytes"));
    }
    auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_integer() ||
        !off[1].is_number_integer() || off[0].get<int64_t>() < 0 || off[1].get<int64_t>() < 0)
      bad("bad data_offsets");
    e.begin = off[0].get<size_t>();
    e.end = off[1].get<size_t>();
    if (e.end < e.begin) bad(str_cat("data_offsets [", e.begin, ", ", e.end, ") are reversed"));
    if (e.end > data_size)
      bad(str_cat("data [", e.begin, ", ", e.end, ") extends past the end of the file (",
                  data_size, " data bytes): truncated file?"));
    if (e.end - e.begin != size_t(numel) * dtype_size(e.dtype))
      bad(str_cat("data is ", e.end - e.begin, " bytes but ", dt, " ", shape_str(e.shape),
                  " needs ", size_t(numel) * dtype_size(e.dtype)));
    entries_.push_back(std::move(e));
  }
  // No two tensors may share bytes: a file whose tensors overlap is corrupt or crafted.
  std::vector<const Entry*> by_start;
  for (const Entry& e : entries_) by_start.push_back(&e);
  std::sort(by_start.begin(), by_start.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_start.size(); ++i)
    MO_REQUIRE(by_start[i]->begin >= by_start[i - 1]->end || by_start[i]->begin == by_start[i]->end ||
                   by_start[i - 1]->begin == by_start[i - 1]->end,
               path, ": tensors '", by_start[i - 1]->name, "' and '", by_start[i]->name,
               "' overlap in the data section");
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(const_cast<char*>(base_), size_);
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ck;
  ck.path_ = path;
  MO_REQUIRE(fs::exists(path), "checkpoint '", path, "' does not exist");
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    const fs::path index = fs::path(path) / "model.safetensors.index.json";
    if (fs::exists(index)) {
      std::ifstream f(index);
      json j;
      try {
        j = json::parse(f);
      } catch (const json::exception&) {
        fail(index.string(), ": not valid JSON");
      }
      MO_REQUIRE(j.contains("weight_map") && j["weight_map"].is_object(), index.string(),
                 ": no weight_map");
      std::map<std::string, std::string> want;  // tensor -> shard, to check the shards agree
      for (auto& [name, file] : j["weight_map"].items()) {
        MO_REQUIRE(file.is_string(), index.string(), ": weight_map['", name, "'] is not a file");
        want[name] = file.get<std::string>();
        if (std::find(files.begin(), files.end(), want[name]) == files.end())
          files.push_back(want[name]);
      }
      for (auto& f : files) f = (fs::path(path) / f).string();
      for (size_t i = 0; i < files.size(); ++i) {
        MO_REQUIRE(fs::exists(files[i]), index.string(), " names shard '", files[i],
                   "', which does not exist");
        ck.files_.push_back(std::make_shared<SafetensorsFile>(files[i]));
        auto& es = ck.files_.back()->entries();
        for (size_t k = 0; k < es.size(); ++k) ck.where_[es[k].name] = {i, k};
      }
      for (auto& [name, file] : want)
        MO_REQUIRE(ck.where_.count(name), index.string(), " lists tensor '", name,
                   "' in '", file, "', which does not hold it");
      return ck;
    }
    const fs::path single = fs::path(path) / "model.safetensors";
    MO_REQUIRE(fs::exists(single), "checkpoint directory '", path,
               "' has neither model.safetensors.index.json nor model.safetensors");
    files.push_back(single.string());
  } else {
    files.push_back(path);
  }
  ck.files_.push_back(std::make_shared<SafetensorsFile>(files[0]));
  auto& es = ck.files_[0]->entries();
  for (size_t k = 0; k < es.size(); ++k) ck.where_[es[k].name] = {0, k};
  return ck;
}

Weight Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  MO_REQUIRE(it != where_.end(), "checkpoint '", path_, "' has no tensor '", name, "'");
  const auto& file = files_[it->second.first];
  const auto& e = file->entries()[it->second.second];
  Weight w;
  w.name = name;
  w.dtype = e.dtype;
  w.shape = e.shape;
  w.data = file->data(e);
  w.owner = file;
  // safetensors packs tensors back to back, so one after an odd-sized I8/U8 tensor can start
  // at an address its type may not be read from (undefined behaviour for the fp32 / bf16 / int64
  // loops). Such a tensor is copied once into aligned memory; aligned ones stay mapped.
  const size_t align = std::min<size_t>(dtype_size(e.dtype), 8);
  if (align > 1 && reinterpret_cast<uintptr_t>(w.data) % align != 0) {
    const size_t bytes = e.end - e.begin;
    std::shared_ptr<uint64_t[]> copy(new uint64_t[(bytes + 7) / 8]);
    std::memcpy(copy.get(), w.data, bytes);
    w.data = copy.get();
    w.owner = std::shared_ptr<const void>(copy, copy.get());
  }
  return w;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> n;
  for (auto& [k, v] : where_) n.push_back(k);
  return n;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  json h = json::object();
  size_t off = 0;
  std::vector<std::vector<char>> blobs;
  for (auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    std::vector<char> b(static_cast<size_t>(numel) * dtype_size(t.dtype));
    if (t.dtype == DType::I64) {
      MO_CHECK(int64_t(t.ints.size()) == numel, t.name);
      std::memcpy(b.data(), t.ints.data(), b.size());
    } else {
      MO_CHECK(int64_t(t.values.size()) == numel, t.name);
      narrow_from_f32(t.dtype, t.values.data(), b.data(), t.values.size());
    }
    h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                 {"shape", t.shape},
                 {"data_offsets", {off, off + b.size()}}};
    off += b.size();
    blobs.push_back(std::move(b));
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs += ' ';
  std::ofstream f(path, std::ios::binary);
  MO_REQUIRE(f.good(), "cannot write '", path, "'");
  uint64_t n = hs.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(hs.data(), std::streamsize(hs.size()));
  for (auto& b : blobs) f.write(b.data(), std::streamsize(b.size()));
  MO_REQUIRE(f.good(), "failed writing '", path, "'");
}

}  // namespace modelone
