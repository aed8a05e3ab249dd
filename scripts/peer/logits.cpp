// Prompt logits from llama.cpp, to check that a GGUF from to_gguf.py is the same model as the
// modelone checkpoint it came from (peer_bench.sh --check compares them with `modelone run
// --logits-out`). Built by peer_bench.sh against the prebuilt libllama beside llama-bench.
//   peer-logits MODEL.gguf ID,ID,... OUT.f32 [THREADS]
// OUT.f32: float32 [n_ids, n_vocab], row-major, no header.
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.gguf ID,ID,... OUT.f32 [THREADS]\n", argv[0]);
    return 2;
  }
  std::vector<llama_token> ids;
  std::stringstream ss(argv[2]);
  for (std::string t; std::getline(ss, t, ',');) ids.push_back(std::atoi(t.c_str()));
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;

  ggml_backend_load_all();
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    std::fprintf(stderr, "peer-logits: cannot load %s\n", argv[1]);
    return 2;
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = uint32_t(ids.size() + 16);
  cp.n_batch = cp.n_ubatch = uint32_t(ids.size());
  cp.n_threads = cp.n_threads_batch = threads;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    std::fprintf(stderr, "peer-logits: cannot make a context\n");
    return 2;
  }
  llama_batch b = llama_batch_init(int32_t(ids.size()), 0, 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    b.token[i] = ids[i];
    b.pos[i] = llama_pos(i);
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 1;
  }
  b.n_tokens = int32_t(ids.size());
  if (llama_decode(ctx, b) != 0) {
    std::fprintf(stderr, "peer-logits: llama_decode failed\n");
    return 2;
  }
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  FILE* f = std::fopen(argv[3], "wb");
  if (!f) {
    std::fprintf(stderr, "peer-logits: cannot write %s\n", argv[3]);
    return 2;
  }
  for (size_t i = 0; i < ids.size(); ++i)
    std::fwrite(llama_get_logits_ith(ctx, int32_t(i)), sizeof(float), size_t(n_vocab), f);
  std::fclose(f);
  llama_batch_free(b);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
