// `bench batch`: what batching buys a decode step. Every sequence holds `context` positions (one
// prefill, copied: the caches then diverge as each decodes its own tokens); per batch size the
// world runs timed decode steps (cp = 1, each rank its share of the sequences, experts over the
// world), and reports tokens/s against batch 1 measured in the same run, the step's time by part,
// and the weight bytes the step read per generated token (the dense weights once, the routed
// experts that any of the step's tokens chose). Then, at --mixed-batch, steps that also carry a
// prompt chunk of a new sequence: decode step p50 / p99 against the decode-only step.
#include <algorithm>
#include <random>

#include "bench/bench_options.h"
#include "bench/bench_util.h"
#include "comm/comm.h"
#include "dist/engine.h"
#include "dist/engine_setup.h"
#include "model/base/check.h"
#include "model/config/model_info.h"
#include "model/io/model_source.h"
#include "model/io/weight_sizes.h"

namespace modelone::bench {

namespace {

double quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = size_t(std::min<double>(double(v.size() - 1), p * double(v.size() - 1) + 0.5));
  return v[i];
}

// The world's routed (token, expert) pairs per [layer][expert] so far, summed over the ranks.
std::vector<int64_t> world_expert_tokens(Engine& e) {
  std::vector<int64_t> flat;
  for (const auto& layer : e.moe().expert_tokens) flat.insert(flat.end(), layer.begin(), layer.end());
  if (!flat.empty()) e.grid().world.allreduce(flat.data(), int64_t(flat.size()), comm::Op::Sum);
  return flat;
}

struct Bench {
  const BatchBenchOptions& o;
  Engine& e;
  const RankGrid& g;
  std::mt19937 rng;
  SequenceState base;  // `context` positions, the start of every sequence
  double dense_bytes = 0, expert_bytes = 0;  // bytes a step reads: once, and per chosen expert

  // This rank's share of b sequences (dealt round-robin), each a copy of base.
  std::vector<SequenceState> deal(int64_t b) {
    const int64_t mine = b / g.W + (g.world.rank() < b % g.W ? 1 : 0);
    return std::vector<SequenceState>(size_t(mine), base);
  }
  // One decode step of seqs, random tokens; its wall seconds (collective).
  double decode_step(std::vector<SequenceState>& seqs, const std::vector<BatchItem>& extra = {}) {
    std::uniform_int_distribution<int32_t> tok(0, int32_t(e.config().vocab_size - 1));
    std::vector<int32_t> ids(seqs.size());
    std::vector<BatchItem> items;
    for (size_t i = 0; i < seqs.size(); ++i) {
      ids[i] = tok(rng);
      items.push_back({&seqs[i], &ids[i], 1});
    }
    items.insert(items.end(), extra.begin(), extra.end());
    g.world.barrier();
    const double t0 = comm::now();
    e.step_batch(items);
    return comm::now() - t0;
  }
};

void decode_lines(Bench& b) {
  const BatchBenchOptions& o = b.o;
  double base_tps = 0;
  for (int64_t batch : o.batches) {
    std::vector<SequenceState> seqs = b.deal(batch);
    b.decode_step(seqs);  // warm-up: first touches of this batch's buffers
    const EngineTimers t0 = b.e.timers();
    std::vector<double> steps;
    double read = 0;
    for (int64_t s = 0; s < o.decode_steps; ++s) {
      const std::vector<int64_t> before = world_expert_tokens(b.e);
      steps.push_back(b.decode_step(seqs));
      const std::vector<int64_t> after = world_expert_tokens(b.e);
      int64_t chosen = 0;  // (layer, expert) pairs any token of the step chose
      for (size_t k = 0; k < after.size(); ++k) chosen += after[k] > before[k] ? 1 : 0;
      // Each rank with sequences reads the dense weights; an expert is read where it lives.
      const double readers = double(std::min<int64_t>(batch, b.g.W));
      read += readers * b.dense_bytes + double(chosen) * b.expert_bytes;
    }
    const EngineTimers t1 = b.e.timers();
    const double step = median(steps), tps = double(batch) / step;
    // The baseline: batch 1 when the list starts there (the default), else the first batch's
    // throughput per sequence.
    if (batch == o.batches.front()) base_tps = tps / double(batch);
    const double n = double(o.decode_steps);
    Line l("batch");
    l.add("model", b.e.config().name)
        .add("compute", std::string(compute_name(compute_mode())))
        .add("world", int64_t(b.g.W))
        .add("batch", batch)
        .add("context", o.context)
        .add("step_ms", step * 1e3)
        .add("decode_tokens_per_second", tps)
        .add("ratio_vs_batch1", base_tps > 0 ? tps / base_tps : 0.0, 3)
        .add("weight_bytes_per_token", read / n / double(batch))
        .add("attention_ms", (t1.attention - t0.attention) / n * 1e3)
        .add("moe_ms", (t1.moe - t0.moe) / n * 1e3)
        .add("head_ms", (t1.head - t0.head) / n * 1e3);
    l.print();
  }
}

void mixed_lines(Bench& b) {
  const BatchBenchOptions& o = b.o;
  if (o.mixed_batch == 0) return;
  std::vector<SequenceState> seqs = b.deal(o.mixed_batch);
  std::vector<double> only;
  b.decode_step(seqs);
  for (int64_t s = 0; s < o.mixed_steps; ++s) only.push_back(b.decode_step(seqs));
  const double ref = median(only);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(b.e.config().vocab_size - 1));
  for (int64_t chunk : o.chunks) {
    // A new sequence's prompt, `chunk` tokens a step, on rank 0 (the others decode alongside).
    SequenceState fresh = b.e.new_sequence();
    std::vector<int32_t> prompt(static_cast<size_t>(chunk));
    std::vector<double> steps;
    for (int64_t s = 0; s < o.mixed_steps; ++s) {
      if (int64_t(fresh.tokens.size()) + chunk > 4096) fresh = b.e.new_sequence();
      for (int32_t& t : prompt) t = tok(b.rng);
      std::vector<BatchItem> extra;
      if (b.g.is_root()) extra.push_back({&fresh, prompt.data(), chunk});
      steps.push_back(b.decode_step(seqs, extra));
    }
    const double p50 = quantile(steps, 0.5), p99 = quantile(steps, 0.99);
    Line l("batch_mixed");
    l.add("model", b.e.config().name)
        .add("world", int64_t(b.g.W))
        .add("batch", o.mixed_batch)
        .add("chunk", chunk)
        .add("decode_only_ms", ref * 1e3)
        .add("p50_ms", p50 * 1e3)
        .add("p99_ms", p99 * 1e3)
        .add("p99_ratio_vs_decode_only", p99 / ref, 3);
    l.print();
  }
}

}  // namespace

int batch_bench(const BatchBenchOptions& o) {
  RankGrid grid = RankGrid::make(1, 0);
  grid.start_threads(o.threads);
  std::vector<std::string> sets = {"num_hidden_layers=4", "n_routed_experts=16"};
  sets.insert(sets.end(), o.sets.begin(), o.sets.end());
  const ModelSource ms = resolve_model(o.model, sets);
  set_compute(resolve_compute(compute_choices().parse(o.compute)));
  EngineOptions eo;
  eo.kv_dtype = kv_cache_dtype(kv_cache_choices().parse(o.kv_cache), ms.cfg, compute_mode());
  auto engine = make_engine(ms, grid, eo);
  Bench b{o, *engine, grid, std::mt19937(uint32_t(o.seed)), engine->new_sequence()};
  // Bytes per parameter as stored, applied to what a step reads: the non-expert weights but the
  // embedding table (a row a token), and each chosen expert of a layer.
  const ModelConfig& cfg = ms.cfg;
  const ParamCounts pc = count_params(cfg);
  const WeightBytes wb = ms.checkpoint ? checkpoint_weight_bytes(cfg, *ms.checkpoint)
                                       : uniform_weight_bytes(cfg, cfg.weight_dtype);
  const double shared_params = double(pc.total - pc.routed_experts);
  b.dense_bytes = double(wb.shared) * (shared_params - double(cfg.vocab_size * cfg.hidden_size)) / shared_params;
  b.expert_bytes = double(wb.experts) / double(pc.routed_experts) * double(pc.per_expert);
  // The common context: every rank prefills its own copy of the same prompt, in chunks.
  std::uniform_int_distribution<int32_t> tok(0, int32_t(cfg.vocab_size - 1));
  std::vector<int32_t> ids(size_t(o.context));
  for (int32_t& t : ids) t = tok(b.rng);
  for (int64_t p = 0; p < o.context; p += 512) {
    const BatchItem it{&b.base, ids.data() + p, std::min<int64_t>(512, o.context - p)};
    engine->step_batch({it});
  }
  decode_lines(b);
  mixed_lines(b);
  return 0;
}

}  // namespace modelone::bench
