#include "dist/cp_layout.h"

#include "model/base/check.h"
#include "model/base/even_split.h"

namespace modelone {

int StepLayout::owner(int64_t q) const {
  for (size_t r = 0; r < segs.size(); ++r)
    for (const Segment& s : segs[r])
      if (q >= s.pos && q < s.pos + s.n) return int(r);
  fail("internal: position ", q, " is not in the step [", p0, ", ", p0 + n, ")");
}

int64_t StepLayout::row_of(int64_t q, int rank) const {
  for (const Segment& s : segs[size_t(rank)])
    if (q >= s.pos && q < s.pos + s.n) return s.row + (q - s.pos);
  fail("internal: position ", q, " is not on cp rank ", rank);
}

namespace {
void add(StepLayout& L, int rank, int64_t pos, int64_t n) {
  if (n == 0) return;
  auto& v = L.segs[size_t(rank)];
  if (!v.empty() && v.back().pos + v.back().n == pos) {  // adjacent pieces: one segment
    v.back().n += n;
  } else {
    v.push_back({pos, n, L.rows[size_t(rank)]});
  }
  L.rows[size_t(rank)] += n;
}
}  // namespace

StepLayout prefill_layout(int64_t p0, int64_t n, int cp, CpLayout kind) {
  StepLayout L;
  L.phase = Phase::Prefill;
  L.p0 = p0;
  L.n = n;
  L.segs.resize(size_t(cp));
  L.rows.assign(size_t(cp), 0);
  const int pieces = kind == CpLayout::Zigzag ? 2 * cp : cp;
  std::vector<int64_t> start(size_t(pieces) + 1, p0);
  const EvenSplit split(n, pieces);
  for (int i = 0; i < pieces; ++i) start[size_t(i) + 1] = p0 + split.end(i);
  // Rank r's pieces in position order, so its rows follow the sequence.
  for (int r = 0; r < cp; ++r) {
    if (kind == CpLayout::Contiguous) {
      add(L, r, start[size_t(r)], start[size_t(r) + 1] - start[size_t(r)]);
    } else {
      const int a = r, b = 2 * cp - 1 - r;
      add(L, r, start[size_t(a)], start[size_t(a) + 1] - start[size_t(a)]);
      add(L, r, start[size_t(b)], start[size_t(b) + 1] - start[size_t(b)]);
    }
  }
  return L;
}

StepLayout decode_layout(int64_t pos, int cp, int owner) {
  StepLayout L;
  L.phase = Phase::Decode;
  L.p0 = pos;
  L.n = 1;
  L.segs.resize(size_t(cp));
  L.rows.assign(size_t(cp), 0);
  add(L, owner, pos, 1);
  return L;
}

StepLayout idle_layout(int cp) {
  StepLayout L;
  L.segs.resize(size_t(cp));
  L.rows.assign(size_t(cp), 0);
  return L;
}

}  // namespace modelone
