// Which build of modelone is running: the launch check compares it over the ranks, and a machine
// profile (`bench calibrate`) records it, since its costs hold for the kernels of one build only.
#pragma once
#include <string>

namespace modelone {

// The GNU build ID the linker wrote into this executable, hex; empty when it wrote none.
std::string build_id();
// "build-id HEX", else a hash of the executable file.
std::string executable_hash();

}  // namespace modelone
