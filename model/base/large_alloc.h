// Buffers for weights of many megabytes: aligned to 2 MiB and advised as transparent huge pages,
// so that filling one faults a page per 2 MiB instead of per 4 KiB (loading a V4-Flash cut
// spent most of its time in those faults, on a VM above all). Memory stays the same but for the
// rounding up to 2 MiB; smaller buffers come from the ordinary heap, aligned to 64 bytes.
#pragma once
#include <cstddef>
#include <memory>

namespace modelone {

// At least `bytes` bytes (uninitialised); throws Error when out of memory. `what` names the
// buffer in that error.
std::shared_ptr<char> alloc_large(size_t bytes, const char* what);

}  // namespace modelone
