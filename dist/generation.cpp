// generate_sequence: see generation.h.
#include "dist/generation.h"

#include <algorithm>
#include <memory>

#include "model/base/check.h"

namespace modelone {

namespace {
bool sampling_changes_argmax(const SamplingParams& p) {
  return !p.greedy() || !p.logit_bias.empty() || p.repetition_penalty != 1 ||
         p.presence_penalty != 0 || p.frequency_penalty != 0;
}
}  // namespace

SequenceGen::SequenceGen(const GenerationSpec& spec, int64_t n_prompt, const Tokenizer* tokenizer,
                         const ModelConfig& cfg, std::function<void(const std::string&)> show)
    : spec_(spec), n_prompt_(n_prompt), eos_(int32_t(cfg.eos_token_id)),
      sampled_(sampling_changes_argmax(spec.sampling)), show_(std::move(show)) {
  MO_REQUIRE(spec.stop.empty() || tokenizer, "stop strings need the model's tokenizer.json (this "
             "model has none); stop ids work without one");
  if (tokenizer) {
    stream_ = std::make_unique<TextStream>(*tokenizer);
    stops_ = std::make_unique<StopStrings>(spec.stop);
  }
}

int32_t SequenceGen::choose(const std::vector<float>& logits, const std::vector<int32_t>& tokens) {
  if (!sampled_)  // the argmax, ties to the lower id
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  return sample_token(spec_.sampling, logits.data(), int64_t(logits.size()), tokens, n_prompt_,
                      spec_.sequence, int64_t(tokens.size()));
}

bool SequenceGen::stop(int32_t tok) {
  if (std::find(spec_.stop_ids.begin(), spec_.stop_ids.end(), tok) != spec_.stop_ids.end())
    stopped_ = true;
  if (stops_ && !stopped_) {
    const std::string safe = stops_->push(stream_->push(tok));
    if (show_ && !safe.empty()) show_(safe);
    stopped_ = stops_->stopped();
  }
  return stopped_;
}

Generation SequenceGen::finish(std::vector<int32_t> tokens) {
  if (stops_ && !stopped_) {
    const std::string rest = stops_->push(stream_->finish()) + stops_->finish();
    if (show_ && !rest.empty()) show_(rest);
  }
  Generation g;
  if (stops_) g.text = stops_->text();
  const bool eos = !spec_.ignore_eos && !tokens.empty() && tokens.back() == eos_;
  g.finish_reason = stopped_ || eos ? "stop" : "length";
  g.tokens = std::move(tokens);
  return g;
}

Generation generate_sequence(Engine& engine, const GenerationSpec& spec, int64_t n_prompt,
                             const Tokenizer* tokenizer,
                             const std::function<void(const std::string&)>& show,
                             const std::function<void(int64_t)>& progress) {
  SequenceGen gen(spec, n_prompt, tokenizer, engine.config(), show);
  TokenPolicy policy;
  if (sampling_changes_argmax(spec.sampling))
    policy.choose = [&](const std::vector<float>& logits) { return gen.choose(logits, engine.tokens()); };
  policy.stop = [&](int32_t tok) { return gen.stop(tok); };
  return gen.finish(engine.generate(spec.max_tokens, spec.ignore_eos, progress, {}, policy));
}

}  // namespace modelone
