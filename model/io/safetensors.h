// Read-only access to safetensors checkpoints through mmap: one file (model.safetensors) or a
// sharded set described by model.safetensors.index.json. Tensors are returned as Weight views
// into the mapping, so nothing is copied and untouched experts are never paged in.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/io/weight_tensor.h"

namespace modelone {

class SafetensorsFile;

class Checkpoint {
 public:
  // dir holds model.safetensors.index.json (sharded) or model.safetensors; a path to a single
  // .safetensors file also works. Headers are parsed and checked here; a truncated or corrupt
  // file is an Error naming it.
  static Checkpoint open(const std::string& path);

  bool has(const std::string& name) const { return where_.count(name) > 0; }
  Weight get(const std::string& name) const;  // Error if absent
  std::vector<std::string> names() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, size_t>> where_;  // name -> (file, tensor index)
};

// One mapped .safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    size_t begin, end;  // byte offsets into the data section
  };
  const std::vector<Entry>& entries() const { return entries_; }
  const void* data(const Entry& e) const { return base_ + data_start_ + e.begin; }
  const std::string& path() const { return path_; }

 private:
  void read_header();  // fills entries_ from the mapped file; throws Error on a bad header
  std::string path_;
  const char* base_ = nullptr;
  size_t size_ = 0, data_start_ = 0;
  std::vector<Entry> entries_;
};

// Write tensors as one safetensors file (tests and fixture variants). Values are narrowed to
// each tensor's dtype.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<float> values;     // floating dtypes
  std::vector<int64_t> ints;     // I64
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace modelone
