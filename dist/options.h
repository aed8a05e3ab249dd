// The choice flags that run, inspect and the benchmarks share (--kv-cache, --compute, --dispatch,
// --combine, --ep-transport, --cp-layout, --repack): one table each from the option's text to its value,
// whose first row is the one default. The command line registers a flag from its table (the
// allowed set and the default shown in --help); the runtime parses the text with the same table,
// so a value the table lacks is one error line naming the flag and what it takes.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "dist/cp_layout.h"
#include "dist/engine.h"
#include "dist/moe_parallel.h"
#include "dist/moe_payload.h"
#include "model/cache/layer_cache.h"
#include "model/kernels/linear.h"

namespace modelone {

template <class T>
struct Choices {
  const char* flag;
  std::vector<std::pair<std::string, T>> rows;  // rows[0] is the default

  const std::string& default_text() const { return rows.front().first; }
  std::vector<std::string> texts() const;
  T parse(const std::string& text) const;  // unknown text: fail("<flag>: '<text>' is not one of ...")
  const std::string& text_of(T value) const;
};

// --compute: auto is bf16 where the CPU has it (default_compute()), else fp32.
enum class ComputeChoice : uint8_t { Auto, F32, BF16 };
Compute resolve_compute(ComputeChoice c);

const Choices<KvCacheChoice>& kv_cache_choices();  // auto, fp32, bf16, fp8, fp4
const Choices<ComputeChoice>& compute_choices();   // auto, fp32, bf16
const Choices<Payload>& dispatch_choices();        // fp32, bf16, fp8
const Choices<Payload>& combine_choices();         // fp32, bf16
const Choices<Transport>& transport_choices();     // auto, mpi, shm
const Choices<CpLayout>& layout_choices();         // zigzag, contiguous
const Choices<Repack>& repack_choices();           // all, experts, none

}  // namespace modelone
