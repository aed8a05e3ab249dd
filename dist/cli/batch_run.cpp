// Running a batch job (batch_job.h) through the batch scheduler. Rank 0 writes every answer as
// it arrives.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "comm/clock.h"
#include "comm/comm.h"
#include "dist/cli/batch_job.h"
#include "dist/cli/commands.h"
#include "dist/engine.h"
#include "dist/grid.h"
#include "model/base/check.h"

namespace modelone {

namespace {

// OUT on rank 0: cut to the answers it holds, then appended to a line at a time, with the
// progress line every 2 s.
class AnswerWriter {
 public:
  AnswerWriter(const RankGrid& grid, const std::string& path, size_t keep, int64_t total, bool quiet)
      : grid_(grid), path_(path), total_(total), quiet_(quiet), t0_(comm::now()), last_(t0_) {
    comm::agree(grid.world, [&] {
      if (grid.is_root()) out_.reset(open(path, keep));
    });
  }
  // Collective: rank 0 appends lines (each ends with '\n'; a full disk stops every rank here).
  void write(const std::string& lines, int64_t answers, int64_t tokens) {
    comm::agree(grid_.world, [&] {
      if (!out_ || lines.empty()) return;
      MO_REQUIRE(std::fwrite(lines.data(), 1, lines.size(), out_.get()) == lines.size() &&
                     std::fflush(out_.get()) == 0,
                 "--out ", path_, ": writing an answer failed");
    });
    done_ += answers;
    tokens_ += tokens;
    if (answers > 0 && (comm::now() - last_ > 2 || done_ == total_)) {
      last_ = comm::now();
      log_line(quiet_, progress_line());
    }
  }
  int64_t done() const { return done_; }

 private:
  static std::FILE* open(const std::string& path, size_t keep) {
    if (std::FILE* f = std::fopen(path.c_str(), "r")) {
      std::fclose(f);
      MO_REQUIRE(::truncate(path.c_str(), off_t(keep)) == 0, "--out ", path, ": cannot cut its "
                 "unfinished last line");
    }
    std::FILE* f = std::fopen(path.c_str(), "a");
    MO_REQUIRE(f, "--out ", path, ": cannot open it for appending");
    return f;
  }
  std::string progress_line() const {
    char buf[160];
    const double elapsed = last_ - t0_;
    const double rate = elapsed > 0 ? double(tokens_) / elapsed : 0;
    const double eta = done_ > 0 ? elapsed / double(done_) * double(total_ - done_) : 0;
    std::snprintf(buf, sizeof buf, "batch: %lld / %lld requests, %lld tokens, %.1f tokens/s, ETA %.0f s",
                  (long long)done_, (long long)total_, (long long)tokens_, rate, eta);
    return buf;
  }

  const RankGrid& grid_;
  std::string path_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> out_{nullptr, &std::fclose};
  int64_t total_, done_ = 0, tokens_ = 0;
  bool quiet_;
  double t0_, last_;
};

int64_t output_tokens(const std::vector<Generation>& samples) {
  int64_t n = 0;
  for (const Generation& g : samples) n += int64_t(g.tokens.size());
  return n;
}

// Request j goes to the dp group with the fewest positions so far (ties to the lower group), the
// same choice on every rank without a message; each group schedules its share (with cp = 1 a
// group is one rank; under cp > 1 its ranks run the same schedule, each sequence split over them).
void run_scheduled(Engine& engine, const RankGrid& grid, const BatchInput& in,
                   const Tokenizer* tokenizer, const SchedulerOptions& opt,
                   std::vector<std::string>* errors, AnswerWriter& w) {
  BatchScheduler sched(engine, opt);
  std::vector<int64_t> load(size_t(grid.dp), 0);
  const bool writes = grid.cp_comm.rank() == 0;  // one rank of each group reports its answers
  const ModelConfig& cfg = engine.config();
  for (size_t j = 0; j < in.todo.size(); ++j) {
    const BatchRequest& r = in.todo[j];
    const int64_t need = sched.bytes_needed(int64_t(r.ids.size()), r.gen.max_tokens, r.n);
    if (need > opt.cache_budget || r.n > opt.max_seqs) {  // every rank sees the same
      errors->push_back(in.path + " line " + std::to_string(r.line) + ": " +
                        (r.n > opt.max_seqs ? "its " + std::to_string(r.n) + " samples are more than --max-seqs"
                                            : "its caches need " + std::to_string(need >> 20) +
                                                  " MiB, more than --cache-budget (" +
                                                  std::to_string(opt.cache_budget >> 20) + " MiB)"));
      continue;
    }
    const int group = int(std::min_element(load.begin(), load.end()) - load.begin());
    load[size_t(group)] += (int64_t(r.ids.size()) + r.gen.max_tokens) * r.n;
    if (group != grid.dp_index) continue;
    ScheduledRequest s;
    s.key = int64_t(j);
    s.prompt = r.ids;
    s.max_tokens = r.gen.max_tokens;
    s.ignore_eos = r.gen.ignore_eos;
    for (int64_t i = 0; i < r.n; ++i) {
      GenerationSpec spec = r.gen;
      spec.sequence = uint64_t(i);
      s.samples.push_back(std::make_unique<SequenceGen>(spec, int64_t(r.ids.size()), tokenizer, cfg));
    }
    sched.add(std::move(s));
  }
  while (sched.busy_anywhere()) {
    std::string lines;
    int64_t answers = 0, tokens = 0;
    for (FinishedRequest& f : sched.step()) {
      if (!writes) continue;
      const BatchRequest& r = in.todo[size_t(f.key)];
      std::vector<Generation> samples;
      for (size_t i = 0; i < f.samples.size(); ++i)
        samples.push_back(static_cast<SequenceGen&>(*f.samples[i]).finish(std::move(f.tokens[i])));
      lines += answer_json(r, samples, tokenizer != nullptr, f.prefill_s, f.decode_s, f.queue_s).dump() + "\n";
      ++answers;
      tokens += output_tokens(samples);
    }
    std::vector<char> all;
    grid.world.gatherv(lines.data(), int64_t(lines.size()), &all, 0);
    int64_t counts[2] = {answers, tokens};
    grid.world.allreduce(counts, 2, comm::Op::Sum);
    w.write(std::string(all.begin(), all.end()), counts[0], counts[1]);
  }
}

}  // namespace

int64_t run_batch(Engine& engine, const RankGrid& grid, const BatchInput& in,
                  const std::string& out_path, size_t keep, const Tokenizer* tokenizer, bool quiet,
                  const SchedulerOptions& sched, std::vector<std::string>* errors) {
  AnswerWriter w(grid, out_path, keep, int64_t(in.todo.size()), quiet);
  run_scheduled(engine, grid, in, tokenizer, sched, errors, w);
  return w.done();
}

}  // namespace modelone
