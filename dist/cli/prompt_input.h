// The inputs of `run` that come from files: --ids-file and --prompt-file. A file is read once, on
// rank 0 (under mpirun standard input reaches rank 0 only, and one read is cheaper than one per
// rank), up to the bytes the longest prompt the model takes can need, and broadcast; /dev/zero
// or a 20 MB text for a 4K-token model is refused at its first bytes past that bound.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "comm/comm.h"

namespace modelone {

// Collective over world: the bytes of `path` ("-": standard input) read on rank 0 and broadcast.
// More than max_bytes is an error on every rank, naming the flag and the bound.
std::string read_input_once(const comm::Comm& world, const std::string& path, const char* flag,
                            int64_t max_bytes);

// Token ids separated by commas or white space; `what` names the source in errors.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& what);

}  // namespace modelone
