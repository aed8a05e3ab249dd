// `modelone run --batch FILE.jsonl --out OUT.jsonl`: a file of prompts as one job. Each input line
// is an object with `id`, the prompt as `prompt` (text, needs a tokenizer) or `ids`, and its own
// options under OpenAI's names (max_tokens, temperature, top_p, top_k, min_p, seed, stop,
// presence_penalty, frequency_penalty, repetition_penalty, logit_bias, n, ignore_eos); the command
// line's flags are the defaults. Answers are appended to OUT as each request finishes, so a killed
// job keeps what it finished; rerun, it skips the ids OUT already answers. A bad line (malformed
// JSON, an unknown key, a value out of range, a prompt too long) is named by its line number and
// skipped, the others still run, and the job then exits with status 2.
// n samples of a request share its prefill.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/batch_scheduler.h"
#include "dist/generation.h"
#include "model/config/config.h"
#include "model/text/tokenizer.h"

namespace modelone {

struct BatchRequest {
  nlohmann::json id;  // as the input wrote it (a string or a number)
  int64_t line = 0;   // 1-based line of the input
  std::vector<int32_t> ids;
  GenerationSpec gen;
  int64_t n = 1;
};

struct BatchInput {
  std::vector<BatchRequest> todo;   // valid requests OUT does not answer yet, in input order
  std::vector<std::string> errors;  // one line per bad input line
  int64_t answered = 0;             // requests OUT answered already (skipped)
  int64_t longest = 0;              // most positions a request needs (prompt + max_tokens)
  std::string path;                 // the input file, for messages
};

// The ids OUT's text answers (each id's JSON text); *keep: the bytes of its complete lines (a
// line cut by a kill is dropped). Throws Error naming the line that is not an answer.
std::set<std::string> answered_ids(const std::string& out_text, const std::string& out_path,
                                   size_t* keep);

// Every rank parses the same text the same way. defaults: the command line's generation.
BatchInput parse_batch(const std::string& text, const std::string& path,
                       const GenerationSpec& defaults, const Tokenizer* tokenizer,
                       const ModelConfig& cfg, const std::set<std::string>& answered);

// One output line: id, tokens, text (with a tokenizer), finish_reason, token counts, timings, and
// with n > 1 every sample under `choices`.
// queue_s: the time it waited for room in a batch.
nlohmann::json answer_json(const BatchRequest& r, const std::vector<Generation>& samples,
                           bool with_text, double prefill_s, double decode_s, double queue_s = 0);

}  // namespace modelone

namespace modelone {
class Engine;
struct RankGrid;

// Runs in.todo (collective over the world; every rank holds the same input). The requests are
// shared out over the dp groups (the fewest tokens first) and each group runs its share through
// the batch scheduler (dist/batch_scheduler.h), under cp > 1 each sequence split over the
// group. Rank 0 cuts OUT to its first `keep` bytes and appends each answer as it
// finishes, with a progress line on stderr every few seconds unless quiet. Requests whose caches
// cannot fit the scheduler's budget are not run: their lines go to *errors. Returns the answers
// written.
int64_t run_batch(Engine& engine, const RankGrid& grid, const BatchInput& in,
                  const std::string& out_path, size_t keep, const Tokenizer* tokenizer, bool quiet,
                  const SchedulerOptions& sched, std::vector<std::string>* errors);
}  // namespace modelone
