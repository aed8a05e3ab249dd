// Which cp rank holds which positions of one forward step. A prefill step covers positions
// [p0, p0 + n) of the sequence, split over the cp group:
//   contiguous  cp blocks in rank order;
//   zigzag      2 * cp pieces, rank r taking pieces r and 2cp - 1 - r, so every rank gets one
//               early and one late piece and the causal cost (which grows with position) evens
//               out.
// Piece sizes differ by at most one (the first n % pieces are longer); a rank may get nothing
// (a step shorter than the group). A decode step is one position on one rank: the rank whose
// cache state stands at the newest position (the tail), which keeps the raw window.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/blocks/attention.h"

namespace modelone {

enum class CpLayout : uint8_t { Contiguous, Zigzag };
const char* cp_layout_name(CpLayout l);

enum class Phase : uint8_t { Idle, Prefill, Decode };

struct StepLayout {
  Phase phase = Phase::Idle;
  int64_t p0 = 0, n = 0;
  std::vector<std::vector<Segment>> segs;  // [cp rank]: its segments, rows numbered per rank
  std::vector<int64_t> rows;               // [cp rank]: rows it holds
  int owner(int64_t q) const;              // cp rank holding position q of the step
  int64_t row_of(int64_t q, int rank) const;
  int tail() const { return owner(p0 + n - 1); }
};

StepLayout prefill_layout(int64_t p0, int64_t n, int cp, CpLayout kind);
StepLayout decode_layout(int64_t pos, int cp, int owner);
StepLayout idle_layout(int cp);

}  // namespace modelone
