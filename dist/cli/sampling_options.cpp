// Sampling flags: see sampling_options.h.
#include "dist/cli/sampling_options.h"

#include <sstream>

#include "model/base/check.h"

namespace modelone {

void add_sampling_options(CLI::App* app, SampleCli* o) {
  app->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy, the default)")
      ->capture_default_str();
  app->add_option("--top-k", o->top_k, "Sample from the k most likely tokens (0: all)");
  app->add_option("--top-p", o->top_p, "Sample from the most likely tokens holding this share of "
                  "the probability, in (0, 1]");
  app->add_option("--min-p", o->min_p, "Drop tokens less likely than this fraction of the most "
                  "likely one, in [0, 1]");
  app->add_option("--repetition-penalty", o->repetition_penalty, "Divide the positive logits (and "
                  "multiply the negative ones) of tokens seen in the prompt or output (1: off)");
  app->add_option("--presence-penalty", o->presence_penalty, "Subtracted once from the logit of "
                  "every token the output holds, in [-2, 2]");
  app->add_option("--frequency-penalty", o->frequency_penalty, "Subtracted per occurrence in the "
                  "output, in [-2, 2]");
  app->add_option("--logit-bias", o->logit_bias, "Added to token logits: id:bias,id:bias (bias "
                  "in [-100, 100])");
  app->add_option("--sample-seed", o->seed, "Seed of the sampling draws: the same seed gives the "
                  "same tokens at any rank count");
  app->add_option("--stop", o->stop, "Stop string (repeatable): generation ends where one "
                  "completes, and the text is cut before it (needs a tokenizer)");
  app->add_option("--stop-ids", o->stop_ids, "Token ids that end generation, like eos: 1,2,3");
}

namespace {

// "a,b,c" (commas or spaces) as integers; `flag` names the option in errors.
std::vector<std::string> fields(const std::string& text) {
  std::string t = text;
  for (char& c : t)
    if (c == ',') c = ' ';
  std::stringstream ss(t);
  std::vector<std::string> out;
  for (std::string f; ss >> f;) out.push_back(f);
  return out;
}

}  // namespace

SamplingParams sampling_params(const SampleCli& o, int64_t vocab) {
  SamplingParams p;
  p.temperature = o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  p.min_p = o.min_p;
  p.repetition_penalty = o.repetition_penalty;
  p.presence_penalty = o.presence_penalty;
  p.frequency_penalty = o.frequency_penalty;
  p.seed = o.seed;
  for (const std::string& f : fields(o.logit_bias)) {
    const size_t colon = f.find(':');
    MO_REQUIRE(colon != std::string::npos, "--logit-bias: '", f, "' is not id:bias");
    const int32_t id = parse_token_id(f.substr(0, colon), "--logit-bias", vocab);
    size_t used = 0;
    double b = NAN;
    try {
      b = std::stod(f.substr(colon + 1), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MO_REQUIRE(used > 0 && used == f.size() - colon - 1, "--logit-bias: '", f.substr(colon + 1),
               "' is not a number");
    p.logit_bias.emplace_back(id, float(b));
  }
  p.validate(vocab);
  return p;
}

std::vector<int32_t> stop_token_ids(const SampleCli& o, int64_t vocab) {
  std::vector<int32_t> ids;
  for (const std::string& f : fields(o.stop_ids)) ids.push_back(parse_token_id(f, "--stop-ids", vocab));
  return ids;
}


}  // namespace modelone
