// splitmix64's finalizer: a 64-bit value to a well-mixed one. The seeded streams (synthetic
// weights, Engram tables, sampling) draw from it; their values must not change.
#pragma once

#include <cstdint>

namespace modelone {

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace modelone
