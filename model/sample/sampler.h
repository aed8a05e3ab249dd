// Choosing the next token from a position's logits: greedy (the default) or sampled with the
// options every peer offers (OpenAI's names; vLLM's order of application):
//   logits[V] + logit_bias -> repetition penalty (tokens of prompt and output: a positive logit
//   divided by it, a negative one multiplied) -> frequency / presence penalties (output tokens:
//   logit -= frequency * count + presence * [count > 0]) -> greedy argmax at temperature 0, else
//   softmax(logits / temperature) -> min-p (drop p < min_p * p_max) -> top-k -> top-p (the
//   smallest most likely set holding top_p of the mass) -> one draw from what is left.
// The draw is a counter-based generator keyed by (seed, sequence, position), so a sequence gets
// the same tokens at any rank count, in any batch, in any order of calls. Ties go to the lower
// token id everywhere.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace modelone {

struct SamplingParams {
  double temperature = 0;          // 0: greedy
  int64_t top_k = 0;               // 0: all tokens
  double top_p = 1, min_p = 0;     // top_p in (0, 1], min_p in [0, 1]
  double repetition_penalty = 1;   // > 0; 1: off
  double presence_penalty = 0, frequency_penalty = 0;  // in [-2, 2], as OpenAI bounds them
  std::vector<std::pair<int32_t, float>> logit_bias;   // (token id, added to its logit)
  uint64_t seed = 0;
  // Throws Error naming the first option out of range (token ids against vocab).
  void validate(int64_t vocab) const;
  bool greedy() const { return temperature == 0; }
};

// A uniform double in [0, 1) for (seed, sequence, position): the counter-based draw.
double sample_uniform(uint64_t seed, uint64_t sequence, int64_t position);

// logits[V] after the bias and the penalties, in place. history: the prompt and the output so
// far; n_prompt: how many of them are the prompt.
void apply_penalties(const SamplingParams& p, const std::vector<int32_t>& history,
                     int64_t n_prompt, float* logits, int64_t V);

// The probabilities a draw picks from, after temperature, min-p, top-k and top-p: (token, p)
// pairs in order of decreasing p (ties: lower id first), summing to 1. Not for greedy params.
std::vector<std::pair<int32_t, double>> sampling_distribution(const SamplingParams& p,
                                                              const float* logits, int64_t V);

// The next token of `sequence` at `position`: logits[V] are left as they were.
int32_t sample_token(const SamplingParams& p, const float* logits, int64_t V,
                     const std::vector<int32_t>& history, int64_t n_prompt, uint64_t sequence,
                     int64_t position);

}  // namespace modelone
