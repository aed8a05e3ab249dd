// The engine's steps as operations, priced (see cost_model.h).
#include "dist/plan/cost_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "dist/plan/cost_ops.h"
#include "model/base/check.h"

namespace modelone {

const std::vector<std::string> kPlanParts = {"attention", "indexer", "moe_experts", "moe_exchange",
                                             "engram", "head", "other"};

int64_t layer_width(const ModelConfig& c) { return c.hc_mult * c.hidden_size + c.num_heads * c.head_dim; }

double StepCost::total() const {
  double t = 0;
  for (auto& [k, p] : parts) t += p.total();
  return t;
}
StepCost& StepCost::operator+=(const StepCost& o) {
  for (auto& [k, p] : o.parts) parts[k] += p;
  return *this;
}
StepCost StepCost::scaled(double f) const {
  StepCost s;
  for (auto& [k, p] : parts) s.parts[k] = p.scaled(f);
  return s;
}

std::string PlanLayout::describe() const {
  char b[160];
  std::snprintf(b, sizeof b, "%d node%s x %d rank%s x %d thread%s, cp %d, ep %d, dp %d", nodes,
                nodes == 1 ? "" : "s", ranks_per_node, ranks_per_node == 1 ? "" : "s", threads,
                threads == 1 ? "" : "s", cp, ep, dp());
  return b;
}

void check_plan_layout(const ModelConfig& cfg, const PlanLayout& l) {
  MO_REQUIRE(l.nodes >= 1, "--nodes ", l.nodes, ": must be at least 1");
  MO_REQUIRE(l.ranks_per_node >= 1, "--ranks-per-node ", l.ranks_per_node, ": must be at least 1");
  MO_REQUIRE(l.threads >= 1, "--threads ", l.threads, ": must be at least 1");
  const int W = l.world();
  MO_REQUIRE(l.cp >= 1 && W % l.cp == 0, "--cp ", l.cp, " does not divide the world of ", W,
             " ranks (", l.nodes, " nodes x ", l.ranks_per_node, ")");
  MO_REQUIRE(l.ep >= 1 && W % l.ep == 0, "--ep ", l.ep, " does not divide the world of ", W, " ranks");
  MO_REQUIRE(l.ep % l.cp == 0 || l.cp % l.ep == 0, "--ep ", l.ep, " cannot be laid over --cp ", l.cp,
             " (one must divide the other)");
  MO_REQUIRE(l.ep <= cfg.n_experts, "--ep ", l.ep, ": more expert-parallel ranks than the model's ",
             cfg.n_experts, " experts");
  MO_REQUIRE(l.engram_ranks >= 0 && l.engram_ranks <= W, "--engram-ranks ", l.engram_ranks,
             ": must be in [1, ", W, "]");
}

// A rank's load is hypergeometric per row: variance rows k (1/ep)(1 - 1/ep)(E - k)/(E - 1), far
// below Poisson's rows k / ep where k is a large share of E (a decode row over 16 experts); the
// ep loads sum to rows k, so the busiest exceeds the mean by sigma z / sqrt(1 - 1/ep), z the
// expected largest of ep standard normals (Blom: the (ep - 0.375)/(ep + 0.25) quantile) moved for
// the load's skew (Cornish-Fisher: z + (z^2 - 1) skew / 6; a few rows' loads are skewed). Against
// 1500-4000 draws: within 5% for one to 64 rows over 16-384 experts at ep 2-16 (a decode row, 6
// of 16 experts, ep 2: 3.83 rows against 3.73 drawn; Poisson's sqrt(2 ln ep) gave 5.04), 10% over
// for 6 of 8 at ep 4, 29% over for a row at ep 64 (1.52 against 1.18).
double busiest_rank_rows(double rows, double experts, double top_k, int ep) {
  const double mean = rows * top_k / ep;
  if (ep <= 1 || mean <= 0) return mean;
  const double p = 1.0 / ep;
  const double q = (ep - 0.375) / (ep + 0.25);
  double lo = 0, hi = 10;  // Phi(z) = q, Phi(z) = erfc(-z / sqrt 2) / 2
  for (int i = 0; i < 60; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q ? lo : hi) = mid;
  }
  const double z = 0.5 * (lo + hi), skew = (1 - 2 * p) / std::sqrt(mean * (1 - p));
  const double sigma = std::sqrt(mean * (1 - p) * (experts - top_k) / std::max(experts - 1, 1.0));
  const double busiest = mean + sigma * (z + (z * z - 1) * skew / 6) / std::sqrt(1 - p);
  // At least one row where any is routed; at most every row's share of the rank's experts.
  return std::clamp(busiest, std::min(1.0, rows * top_k), rows * std::min(top_k, std::ceil(experts / ep)));
}

namespace {

// One step as the critical rank sees it.
struct StepShape {
  double rows = 0;        // rows this rank projects (decode: the cp group's tail rank)
  double rows_world = 0;  // rows over the world (the MoE's)
  double pos = 0;         // mean position of the rows
  bool decode = false;
  double active = 1;      // cp groups with a sequence in this step
};

struct Pricer {
  const ModelConfig& c;
  const PlanLayout& l;
  const OpCosts& op;

  // Ranks of the world computing at once, for time slicing on shared cores (OpCosts::shared):
  // where the rows live (prefill: every rank of an active cp group; decode: its tail rank), ...
  double home_busy(const StepShape& s) const { return s.active * (s.decode ? 1 : l.cp); }
  // ... the attention (decode: a compressed layer's work is split over the group, a window
  // layer's stays on the tail) ...
  double attn_busy(const StepShape& s, double r) const { return s.active * (s.decode && r <= 0 ? 1 : l.cp); }
  // ... and the experts: every rank of the ep groups the rows go to (a decode row at cp > ep
  // reaches only its tail's ep group).
  double expert_busy(const StepShape& s) const {
    if (s.decode && l.ep < l.cp) return s.active * l.ep;
    return std::min(double(l.world()), l.ep * std::ceil(s.active * l.cp / l.ep));
  }

  // One sequence's decode at cp > 1 (not a batch's: the engine's batch path splits nothing): the
  // tail's shared experts and Engram product split by output rows over the cp group (DecodeSplit,
  // Engine::engram_apply), every rank of the group computing its share at once.
  int dense_split(const StepShape& s) const { return s.decode && s.rows_world <= 1 ? l.cp : 1; }
  double split_busy(const StepShape& s, int sp) const { return sp > 1 ? s.active * sp : home_busy(s); }
  // A split's collective moving `floats` in all (out from the tail, or gathered): each rank's
  // share, priced as an all-gather over the group.
  double split_gather(double floats) const { return op.collective("allgather", floats * 4 / l.cp, l.cp, false); }

  // Positions a query at position p sees in a store of ratio r (entries that have closed).
  static double entries(double p, double r) { return r > 0 ? std::floor((p + 1) / r) : 0; }

  // The cp exchanges of one attention layer (prefill: halo, new entries and keys; decode: the
  // query out to the group, heads split and gathered, partials back).
  double cp_exchange(const StepShape& s, double r, bool scores) const {
    if (l.cp <= 1) return 0;
    const double Dh = double(c.head_dim), H = double(c.num_heads), D = double(c.hidden_size);
    const double nI = double(c.index_n_heads), Di = double(c.index_head_dim);
    if (!s.decode) {
      double t = op.collective("p2p", double(c.sliding_window) * Dh * 4, 2, false);
      if (r > 0) t += op.collective("allgather", s.rows / r * Dh * 4, l.cp, false);
      if (scores) t += op.collective("allgather", s.rows / r * Di * 4, l.cp, false);
      return t;
    }
    double t = op.collective("allgather", s.rows * (H * Dh + (scores ? nI * (Di + 1) : 0)) * 4, l.cp, false);
    t += op.collective("allgather", s.rows * H * Dh * 4 / l.cp, l.cp, false);        // q heads
    t += op.collective("allgather", s.rows * H * (Dh + 2) * 4, l.cp, false);         // partials
    t += op.collective("allgather", s.rows * D * 4 / l.cp, l.cp, false);             // output rows
    if (scores) t += op.collective("allgather", s.rows * double(c.index_topk) * 8, l.cp, false);
    return t;
  }

  // Keys a layer's indexer scores for a query at p, and whether the layer scores at all.
  double scored_keys(int64_t layer, double p, double r) const {
    if (!c.v41()) return c.attn[size_t(layer)] == AttnKind::CSA ? entries(p, r) : 0;
    if (!c.shared.is_index_source(layer)) return 0;
    const double all = entries(p, r);
    if (!c.shared.uses_candidates(layer)) return all;
    return std::min(all, double(c.shared.candidate_topk_blocks * c.shared.candidate_block_size));
  }
  // Compressed keys a query at p attends: the top-k where an indexer picks, else every entry.
  double attended_keys(int64_t layer, double p, double r) const {
    if (r <= 0) return 0;
    const bool picked = c.v41() || c.attn[size_t(layer)] == AttnKind::CSA;
    return picked ? std::min(entries(p, r), double(c.index_topk)) : entries(p, r);
  }

  void attention(int64_t layer, const StepShape& s, StepCost* out) const {
    const double D = double(c.hidden_size), H = double(c.num_heads), Dh = double(c.head_dim);
    const double qr = double(c.q_lora_rank), G = double(c.o_groups), olr = double(c.o_lora_rank);
    const double r = double(c.compress_rate(layer)), R = s.rows;
    // Decode: a compressed layer's heads, output rows and entries are split over the group; a
    // window-only layer runs on the tail rank alone, with no exchange.
    const int split = s.decode && r > 0 ? l.cp : 1;
    const double busy = attn_busy(s, r);
    const OpCosts o = op.beside(busy);
    double t = o.product(R, D, qr) + o.product(R, D, Dh) + o.product(R, qr, H * Dh / split) +
               G / split * o.product(R, H * Dh / G, olr) + o.product(R, G * olr, D / split);
    const bool source = c.v41() ? c.shared.is_kv_source(layer) : r > 0;
    if (source) {  // compressor projections (V4's CSA overlaps two windows: twice the width)
      const double cw = !c.v41() && c.attn[size_t(layer)] == AttnKind::CSA ? 2 * Dh : Dh;
      t += 2 * o.product(R, D, cw);
    }
    // Window keys on the rank holding the rows, compressed keys shared over the group in decode.
    const double win = std::min(s.pos + 1, double(c.sliding_window));
    const double comp = attended_keys(layer, s.pos, r) / split;
    t += o.attend(R, win + comp, H, Dh);
    const double keys = scored_keys(layer, s.pos, r);
    const double sliced = op.shared(busy);
    out->parts["attention"] += {t * sliced, s.decode && r <= 0 ? 0 : cp_exchange(s, r, keys > 0), 0};
    if (keys > 0) {
      const double nI = double(c.index_n_heads), Di = double(c.index_head_dim);
      double ti = o.product(R, qr, nI * Di) + o.product(R, D, nI);
      if (!c.v41()) ti += 2 * o.product(R, D, 2 * Di);  // the indexer's compressor
      ti += o.index(R, keys / split, nI, Di);
      out->parts["indexer"] += {ti * sliced, 0, 0};
    }
  }

  void moe(const StepShape& s, StepCost* out) const {
    const double D = double(c.hidden_size), I = double(c.moe_inter), E = double(c.n_experts);
    const double k = double(c.top_k), R = s.rows, S = double(c.n_shared_experts);
    // The router on the home rank; the shared experts there too, or split by rows over the cp
    // group in one sequence's decode (DecodeSplit: the token out to the group, the activations
    // [S I] gathered on every rank, the output rows [D] at the tail).
    const int sp = S > 0 ? dense_split(s) : 1;
    const double home = home_busy(s), split = split_busy(s, sp);
    double t = op.beside(home).product(R, D, E) * op.shared(home);
    const OpCosts so = op.beside(split);
    t += S * (2 * so.product(R, D, I / sp) + so.product(R, I, D / sp)) * op.shared(split);
    const double split_x = sp > 1 ? 2 * split_gather(D) + split_gather(S * I) : 0;
    const int ep = l.ep;
    // The rows of an ep group that holds sequences, whole: with fewer sequences than ep groups
    // (batch 1 over dp replicas) the group holding a sequence does all its experts' work, in
    // prefill as in decode; a mean share over every group would price the step lighter the more
    // idle replicas there are (a 1M-token prompt's TTFT fell 10% from 8 to 64 nodes).
    const double group_rows = std::ceil(s.rows_world / (expert_busy(s) / ep));
    const double recv = group_rows * k / ep;                   // a rank's routed rows (mean)
    const double local = std::ceil(E / ep);
    // Experts a rank's rows touch (uniform routing, k distinct experts a row), and rows each.
    const double touched = local * (1 - std::pow(1 - k / E, group_rows));
    const double busy = expert_busy(s);
    const double te = op.beside(busy).experts(touched, recv / std::max(touched, 1e-9), D, I);
    // The busiest rank of the group waits the others out.
    const double excess = recv > 0 ? busiest_rank_rows(group_rows, E, k, ep) / recv - 1 : 0;
    const double routed = te * op.shared(busy);
    out->parts["moe_experts"] += {t + routed, split_x, routed * excess};
    if (ep > 1) {
      const double bytes = R * k * double(ep - 1) / ep * D * 4;  // fp32 rows out (and back)
      const bool spans = ep > l.ranks_per_node;
      // On one node the engine exchanges through node-shared memory (its auto transport), out
      // and back in one priced round; across nodes, MPI all-to-all each way. Profiles from
      // before the shared-memory round price all-to-all on a node too.
      const double t = !spans && op.has_link("intra.shm") ? op.collective("shm", bytes, ep, false)
                                                          : 2 * op.collective("alltoallv", bytes, ep, spans);
      out->parts["moe_exchange"] += {0, t, 0};
    }
  }

  // Engram on its layers: the gate's products, and the remote rows not hidden behind the
  // compute of the layers before it (the lookups are issued at the step's start).
  void engram(const StepShape& s, double before, StepCost* out) const {
    const EngramConfig& e = c.engram;
    const double D = double(c.hidden_size), hc = double(c.hc_mult), R = s.rows;
    // The wkv product [dim -> (hc + 1) D]; in one sequence's decode at cp > 1 split by rows over
    // the group, the looked-up rows [dim] out from the tail and the products gathered back.
    const int sp = dense_split(s);
    const double busy = split_busy(s, sp);
    const double t = op.beside(busy).product(R, double(e.dim()), (hc + 1) * D / sp) * op.shared(busy);
    const double split_x = sp > 1 ? split_gather(double(e.dim())) + split_gather((hc + 1) * D) : 0;
    const int owners = l.engram_ranks > 0 ? l.engram_ranks : std::max(l.cp, l.ep);
    const double row_bytes = double(e.head_dim) * (e.table_dtype == DType::F32 ? 4 : e.table_dtype == DType::BF16 ? 2 : 1);
    const double bytes = R * double(e.columns()) * row_bytes * double(owners - 1) / owners;
    const double fetch = op.collective("rma_get", bytes, owners, owners > l.ranks_per_node);
    out->parts["engram"] += {t, split_x + std::max(0.0, fetch - before), 0};
  }

  StepCost step(const StepShape& s, double head_rows) const {
    StepCost out;
    for (const std::string& p : kPlanParts) out.parts[p] = {};
    // Layers of the same kind cost the same in a step: each kind is priced once.
    std::map<std::array<int64_t, 5>, StepCost> kinds;
    for (int64_t layer = 0; layer < c.num_layers; ++layer) {
      if (c.engram.index_of(layer) >= 0) engram(s, out.total(), &out);
      const bool v41 = c.v41();
      const std::array<int64_t, 5> kind = {c.compress_rate(layer), int64_t(c.attn[size_t(layer)]),
                                           v41 && c.shared.is_kv_source(layer),
                                           v41 && c.shared.is_index_source(layer),
                                           v41 && c.shared.uses_candidates(layer)};
      auto it = kinds.find(kind);
      if (it == kinds.end()) {
        StepCost one;
        attention(layer, s, &one);
        moe(s, &one);
        op.engine_scales(s.decode, &one);
        one.parts["other"] += {op.fixed(s.rows, double(layer_width(c))) * op.shared(home_busy(s)), 0, 0};
        it = kinds.emplace(kind, std::move(one)).first;
      }
      out += it->second;
    }
    if (head_rows > 0) out.parts["head"] += head(head_rows, s.active);
    return out;
  }

  // The head, after every step (prefill steps too: the newest position's logits), split by
  // vocabulary over the group, the logits gathered; `active` groups at once.
  PartTime head(double rows, double active) const {
    const int hs = l.cp;
    const double V = double(c.vocab_size), busy = active * hs;
    return {op.beside(busy).product(rows, double(c.hidden_size), V / hs) * op.shared(busy),
            op.collective("allgather", rows * V / hs * 4, hs, false), 0};
  }
};

}  // namespace

PlanPrediction predict(const ModelConfig& cfg, const PlanLayout& l, const PlanWork& w,
                       const MachineProfile& prof, const NetworkModel& net) {
  check_plan_layout(cfg, l);
  MO_REQUIRE(w.context >= 1 && w.context <= cfg.max_position_embeddings, "--context ", w.context,
             ": the model holds ", cfg.max_position_embeddings, " positions");
  MO_REQUIRE(w.batch >= 1, "--batch ", w.batch, ": must be at least 1");
  const OpCosts op(prof, l, w, net);
  const Pricer pr{cfg, l, op};
  PlanPrediction out;
  out.extrapolated_threads = l.threads > prof.threads.back();
  // Prefill: a sequence's prompt over its cp group, chunk rows per rank per step; the dp groups
  // take sequences side by side, in rounds.
  const double P = double(w.context), cp = l.cp, chunk = double(w.prefill_chunk);
  const double side = double(std::min<int64_t>(w.batch, l.dp()));
  const double rounds = std::ceil(double(w.batch) / l.dp());
  // Steps of cp x chunk tokens; a long prompt's steps are priced at 32 evenly spaced ones (each
  // step's cost is smooth in its position), so plan stays fast at 1M tokens.
  const double per_step = cp * chunk, n_steps = std::ceil(P / per_step);
  const double sampled = std::min(n_steps, 32.0);
  StepCost seq;
  for (double k = 0; k < sampled; ++k) {
    const double i = sampled == n_steps ? k : std::floor((k + 0.5) * n_steps / sampled);
    const double done = i * per_step, rows = std::min(chunk, std::ceil((P - done) / cp));
    StepShape s{rows, rows * cp * side, done + rows * cp / 2, false, side};
    seq += pr.step(s, 0).scaled(n_steps / sampled);
  }
  seq.parts["head"] += pr.head(1, side).scaled(n_steps);
  out.prefill_steps = int64_t(n_steps);
  out.ttft_seconds = seq.total();
  out.prefill = seq.scaled(rounds);
  out.prefill_steps = int64_t(n_steps * rounds);
  out.prefill_seconds = out.prefill.total();
  out.prefill_tokens_per_second = double(w.batch) * P / out.prefill_seconds;
  // Decode: one token of every sequence per step, a group's rows on its tail rank.
  const double per_group = std::ceil(double(w.batch) / l.dp());
  out.decode = pr.step({per_group, double(w.batch), P, true, std::ceil(double(w.batch) / per_group)}, per_group);
  out.decode_ms_per_token = out.decode.total() * 1e3;
  out.decode_tokens_per_second = double(w.batch) / out.decode.total();
  return out;
}

NetworkModel parse_network(const std::string& s) {
  NetworkModel n;
  const auto bad = [&] {
    fail("--network '", s, "': expected Gb/s then an optional latency, as 100g or 25g,5us");
  };
  char unit[16] = {0}, lat_unit[8] = {0};
  double g = 0, lat = 0;
  const int got = std::sscanf(s.c_str(), "%lf%15[a-zA-Z/],%lf%7s", &g, unit, &lat, lat_unit);
  const std::string u = unit;
  if (got < 1 || !(g > 0) || !std::isfinite(g) || (got >= 2 && u != "g" && u != "gbit" && u != "gbps" && u != "G"))
    bad();
  n.gbit = g;
  if (got >= 3) {
    if (!(lat >= 0) || !std::isfinite(lat) || (got == 4 && std::string(lat_unit) != "us")) bad();
    n.latency_s = lat * 1e-6;
  } else if (s.find(',') != std::string::npos) {
    bad();
  }
  return n;
}

std::string NetworkModel::describe() const {
  char b[64];
  std::snprintf(b, sizeof b, "%g Gb/s links, %g us latency", gbit, latency_s * 1e6);
  return b;
}

}  // namespace modelone
