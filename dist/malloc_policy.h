// glibc's allocator, set for the engine's buffers (why: malloc_policy.cpp).
#pragma once
#include <string>

namespace modelone {

// Re-executes this program with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES, unless that key
// is there already (the user's own value wins) or MODELONE_MALLOC is "system". Returns only when
// no re-exec happened (or it failed: the program goes on as it is). Call first in main, before
// MPI or any thread starts.
void reexec_with_malloc_tunables(char** argv);

// From now on freed buffers stay in the heap (unless MODELONE_MALLOC is "system"). make_engine
// calls it once the weights are loaded, so the loader's temporaries went back to the system.
void keep_freed_buffers();

// What this process runs with, for the report lines: "GLIBC_TUNABLES=..., freed buffers kept"
// (kept: once an engine is loaded), or "glibc defaults" (MODELONE_MALLOC=system, and
// GLIBC_TUNABLES unset).
std::string malloc_settings();

}  // namespace modelone
