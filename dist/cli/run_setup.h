// What `run` (and `perplexity`) set up before the first token: the grid and threads agreed on
// over the ranks, the model and tokenizer, the prompt (or a batch job's requests) checked against
// the vocabulary, the positions and every rank's memory, then the engine with this rank's weights.
#pragma once
#include <memory>
#include <vector>

#include "dist/cli/batch_job.h"
#include "dist/cli/commands.h"
#include "dist/generation.h"
#include "dist/engine.h"
#include "dist/grid.h"
#include "model/io/model_source.h"
#include "model/text/tokenizer.h"

namespace modelone {

// What a run is set up with before any weight is loaded: the grid, the model, the prompt.
struct RunSetup {
  RankGrid grid;
  int threads = 1;
  ModelSource ms;
  std::unique_ptr<Tokenizer> tokenizer;
  DType kv = DType::F32;
  std::vector<int32_t> prompt;
  GenerationSpec gen;  // --generate, --ignore-eos and the sampling flags
  BatchInput batch;    // --batch: the requests left to answer
  size_t out_keep = 0; // --batch: the bytes of --out that hold whole answers
};

// The grid, threads, model, tokenizer and prompt (or --batch's requests), each step agreed on
// over the ranks, then the resolved run compared across them.
void set_up_run(const RunOptions& o, RunSetup* r);
// The engine: the expert placement (compared across ranks), the options from the flags, and this
// rank's weights (the shared ones and the routed experts its ep rank holds).
std::unique_ptr<Engine> load_engine(const RunOptions& o, const RunSetup& r, double t_start);

}  // namespace modelone
