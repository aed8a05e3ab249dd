// `bench serve`'s client: one streamed completion against an OpenAI-compatible server, timed as
// vLLM's benchmark_serving times it (first token, the gaps between tokens, the whole request).
// Self-contained on cpp-httplib: bench/ sits below dist/serve and may not use the server's code.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace modelone::bench {

// Where the server is: "http://host:port" (or https), checked before anything is sent.
struct ServeTarget {
  std::string url;      // scheme://host[:port], no trailing slash
  std::string api_key;  // "Authorization: Bearer KEY" when not empty
};
// Throws modelone::Error naming --url when `url` is not scheme://host[:port][/].
ServeTarget parse_serve_url(const std::string& url, const std::string& api_key);

// GET /v1/models: the served models' ids and context lengths (max_model_len; 0 when absent).
// Throws modelone::Error when no server answers there or it answers with an error.
struct ServedModel {
  std::string id;
  int64_t max_model_len = 0;
};
std::vector<ServedModel> list_models(const ServeTarget& t);

// One request's measurements. Times are seconds; ttft from the send to the first chunk with
// tokens, itl one entry per token after the first chunk (a chunk of k tokens after a gap g
// gives k entries of g / k, so a server that batches its writes is not credited with zero gaps).
struct RequestOutcome {
  bool ok = false;
  std::string error;  // why not ok: the status and the server's message, or what was missing
  double ttft = 0, e2e = 0;
  std::vector<double> itl;
  int64_t prompt_tokens = 0, output_tokens = 0;
};

// POST /v1/completions with the prompt's ids, max_tokens = output_len, ignore_eos, streamed with
// usage; never throws (a failure is an outcome: the sweep counts them).
RequestOutcome stream_completion(const ServeTarget& t, const std::string& model,
                                 const std::vector<int32_t>& prompt, int64_t output_len);

}  // namespace modelone::bench
