// The threads a kernel's own parallel region may use: all of OpenMP's outside a parallel region,
// one inside one (a caller already split the work over the threads).
#pragma once

#include <omp.h>

namespace modelone {

inline int threads_here() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

}  // namespace modelone
