// `modelone perplexity`: a document's tokens scored in windows of N positions, as
// llama-perplexity and transformers' strided evaluation do. Window k spans tokens
// [k S, min(k S + N, n)); the logits at a window's position p predict token p + 1, and a window
// scores the tokens the windows before it did not: from 1 in the first, then from the previous
// window's end (S < N: each scored token has at least N - S tokens of context) or, with S = N,
// from its second token (disjoint windows; a window's first token has no prediction in it).
// Perplexity = exp(mean negative log-likelihood); its error is perplexity x the standard error
// of that mean (the delta method, as llama-perplexity reports it).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace modelone {

struct PplWindow {
  int64_t begin = 0, end = 0, score_from = 0;  // tokens [begin, end); scored [score_from, end)
  int64_t scored() const { return end - score_from; }
};

// The windows over n tokens; throws Error when n < 2, N < 2 or S outside [1, N].
std::vector<PplWindow> perplexity_windows(int64_t n, int64_t N, int64_t S);

// -log softmax(row)[next] in double: log(sum exp(row - max)) + max - row[next].
double token_nll(const float* row, int64_t V, int32_t next);

struct PplStats {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(double nll) {
    sum += nll;
    sum2 += nll * nll;
    ++n;
  }
  double mean() const { return n ? sum / double(n) : 0; }
  double perplexity() const { return std::exp(mean()); }
  double error() const {  // perplexity x standard error of the mean nll
    if (n < 2) return 0;
    const double var = std::max(0.0, (sum2 / double(n) - mean() * mean()) * double(n) / double(n - 1));
    return perplexity() * std::sqrt(var / double(n));
  }
};

}  // namespace modelone
