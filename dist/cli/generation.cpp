// generate_sequence: see generation.h.
#include "dist/cli/generation.h"

#include <algorithm>
#include <memory>

#include "model/base/check.h"
#include "model/sample/stop_strings.h"

namespace modelone {

namespace {
bool sampling_changes_argmax(const SamplingParams& p) {
  return !p.greedy() || !p.logit_bias.empty() || p.repetition_penalty != 1 ||
         p.presence_penalty != 0 || p.frequency_penalty != 0;
}
}  // namespace

Generation generate_sequence(Engine& engine, const GenerationSpec& spec, int64_t n_prompt,
                             const Tokenizer* tokenizer,
                             const std::function<void(const std::string&)>& show,
                             const std::function<void(int64_t)>& progress) {
  MO_REQUIRE(spec.stop.empty() || tokenizer, "stop strings need the model's tokenizer.json (this "
             "model has none); stop ids work without one");
  const int64_t V = engine.config().vocab_size;
  // Every rank of the group keeps the text (the stop decision must agree), one stream each.
  std::unique_ptr<TextStream> stream;
  std::unique_ptr<StopStrings> stops;
  if (tokenizer) {
    stream = std::make_unique<TextStream>(*tokenizer);
    stops = std::make_unique<StopStrings>(spec.stop);
  }
  bool stopped = false;
  TokenPolicy policy;
  if (sampling_changes_argmax(spec.sampling))
    policy.choose = [&](const std::vector<float>& logits) {
      return sample_token(spec.sampling, logits.data(), V, engine.tokens(), n_prompt,
                          spec.sequence, engine.position());
    };
  policy.stop = [&](int32_t tok) {
    if (std::find(spec.stop_ids.begin(), spec.stop_ids.end(), tok) != spec.stop_ids.end())
      stopped = true;
    if (stops && !stopped) {
      const std::string safe = stops->push(stream->push(tok));
      if (show && !safe.empty()) show(safe);
      stopped = stops->stopped();
    }
    return stopped;
  };
  Generation g;
  g.tokens = engine.generate(spec.max_tokens, spec.ignore_eos, progress, {}, policy);
  if (stops && !stopped) {
    const std::string rest = stops->push(stream->finish()) + stops->finish();
    if (show && !rest.empty()) show(rest);
  }
  if (stops) g.text = stops->text();
  const bool eos = !spec.ignore_eos && !g.tokens.empty() &&
                   g.tokens.back() == engine.config().eos_token_id;
  g.finish_reason = stopped || eos ? "stop" : "length";
  return g;
}

}  // namespace modelone
