// Perplexity windows and scores: see perplexity.h.
#include "dist/cli/perplexity.h"

#include <algorithm>

#include "model/base/check.h"

namespace modelone {

std::vector<PplWindow> perplexity_windows(int64_t n, int64_t N, int64_t S) {
  MO_REQUIRE(N >= 2, "--context ", N, ": a window needs at least 2 tokens");
  MO_REQUIRE(S >= 1 && S <= N, "--stride ", S, " is outside [1, --context ", N, "]");
  MO_REQUIRE(n >= 2, "the document has ", n, " token(s): perplexity needs at least 2");
  std::vector<PplWindow> w;
  int64_t prev_end = 0;
  for (int64_t b = 0; prev_end < n; b += S) {
    PplWindow x;
    x.begin = b;
    x.end = std::min(b + N, n);
    x.score_from = w.empty() ? 1 : std::max(b + 1, prev_end);
    prev_end = x.end;
    if (x.score_from < x.end) w.push_back(x);
  }
  return w;
}

double token_nll(const float* row, int64_t V, int32_t next) {
  double m = -INFINITY;
  for (int64_t i = 0; i < V; ++i) m = std::max(m, double(row[i]));
  double z = 0;
  for (int64_t i = 0; i < V; ++i) z += std::exp(double(row[i]) - m);
  return std::log(z) + m - double(row[next]);
}

}  // namespace modelone
