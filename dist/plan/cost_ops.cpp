// Pricing one operation from the machine profile (see cost_ops.h).
#include "dist/plan/cost_ops.h"

#include <algorithm>
#include <cmath>

#include "model/kernels/linear.h"

namespace modelone {

namespace {
// Stored bytes per weight element (block scales included: FP8 one E8M0 per 128 x 128, FP4 one per
// 32 inputs).
double element_bytes(const std::string& dtype) {
  if (dtype == "fp8") return 1.0 + 1.0 / 16384;
  if (dtype == "fp4") return 0.5 + 1.0 / 32;
  if (dtype == "fp32") return 4.0;
  return 2.0;
}
// A key curve's cost per query and key; none where the profile has no key curves.
double key_term(const CostCurve& c, double keys) { return c.size.empty() ? 0.0 : c.at(keys); }
}  // namespace

OpCosts::OpCosts(const MachineProfile& prof, const PlanLayout& l, const PlanWork& w,
                 const NetworkModel& net)
    : prof_(prof), l_(l), w_(w), net_(net), t_(prof.nearest_threads(l.threads)) {
  // Threads past the calibrated count: assumed to scale linearly (said in the plan's output).
  stretch_ = double(t_) / double(l.threads);
}

double OpCosts::shared(double busy) const {
  if (w_.cores_per_node <= 0) return 1;
  const double per_node = std::min(double(l_.ranks_per_node), std::ceil(busy / double(l_.nodes)));
  const double waiting = double(l_.ranks_per_node) - per_node;
  return std::max(1.0, (per_node + prof_.poll_share * waiting) * double(l_.threads) / double(w_.cores_per_node));
}

OpCosts OpCosts::beside(double busy) const {
  OpCosts o = *this;
  if (w_.cores_per_node <= 0) return o;
  const double per_node = std::min(double(l_.ranks_per_node), std::ceil(busy / double(l_.nodes)));
  o.busy_cores_ = std::min(per_node * double(l_.threads), double(w_.cores_per_node));
  return o;
}

double OpCosts::crowd(double rows) const {
  if (busy_cores_ <= l_.threads) return 1;
  // A rank's own threads' sharing is in its calibrated costs already.
  return prof_.together.at(busy_cores_, rows) / prof_.together.at(l_.threads, rows);
}

double OpCosts::product(double rows, double K, double N, const std::string& dtype) const {
  const std::string d = dtype.empty() ? w_.dense_dtype : dtype;
  const ProductCosts& p = prof_.product(w_.compute, d, t_);
  return stretch_ * crowd(rows) * p.seconds(rows, K, N, K * N * element_bytes(d));
}

double OpCosts::experts(double n_experts, double rows_each, double D, double I) const {
  if (n_experts <= 0 || rows_each <= 0) return 0;
  const std::string& d = w_.expert_dtype;
  // The engine runs each expert's three products on its own (its row-wise path) unless some
  // expert has more than kGemvMaxRows rows: then all in the grouped kernel, priced per FLOP at
  // the mean rows per expert. The busiest of n Poisson loads of mean m: ~ m + sqrt(2 m ln n).
  const double busiest = rows_each + std::sqrt(2 * rows_each * std::log(std::max(n_experts, 1.0)));
  if (busiest <= double(kGemvMaxRows) || w_.compute != "bf16") {
    const ProductCosts& p = prof_.product(w_.compute, d, t_);
    const double one = 2 * p.seconds(rows_each, D, I, D * I * element_bytes(d)) +
                       p.seconds(rows_each, I, D, D * I * element_bytes(d));
    return stretch_ * crowd(rows_each) * n_experts * one;
  }
  const ProductCosts& g = prof_.expert(w_.compute, d, t_);
  // One expert's FLOPs: gate and up [D -> 2I], down [I -> D].
  return stretch_ * crowd(rows_each) * n_experts * g.seconds(rows_each, D, 3 * I, 3 * D * I * element_bytes(d));
}

double OpCosts::attend(double q, double keys, double heads, double head_dim) const {
  if (q <= 0 || keys <= 0) return 0;
  const AttnCurves& a = q < 2 ? prof_.attention.at(t_).one : prof_.attention.at(t_).many;
  // The partials' merge (attn_merge, under the engine's attend timer): each query's [heads,
  // head_dim] fp32 output read and written once more, at the memory's read bandwidth.
  const double core = q * keys * (heads * (head_dim / 512.0) * a.partial.at(keys) + key_term(a.partial_key, keys));
  const double merge = 2 * q * heads * head_dim * 4 / (prof_.read_gbps.at(t_) * 1e9);
  return stretch_ * crowd(q) * (core + merge);
}

double OpCosts::index(double q, double keys, double nI, double Di) const {
  if (q <= 0 || keys <= 0) return 0;
  const AttnCurves& a = q < 2 ? prof_.attention.at(t_).one : prof_.attention.at(t_).many;
  return stretch_ * crowd(q) * q * keys * (nI * Di * a.index.at(keys) + key_term(a.index_key, keys));
}

double OpCosts::collective(const std::string& kind, double bytes, int n, bool spans_nodes) const {
  if (n <= 1) return 0;
  const int rpn = l_.ranks_per_node;
  // The ranks of the group on one node, and the nodes it covers.
  const int local = spans_nodes ? std::min(n, std::max(1, n / std::max(1, l_.nodes))) : std::min(n, rpn);
  const int nodes = (n + local - 1) / local;
  // A group smaller than a node whose ranks outnumber its cores meets the others polling beside
  // it (measured so where the profile has it).
  const bool past_cores = w_.cores_per_node > 0 && rpn > w_.cores_per_node;
  const bool beside_pollers = local < rpn && past_cores && has_link("intra_polled." + kind);
  // Ranks within the cores wait spinning; a world past them (as calibrate's often is) makes MPI
  // yield in every wait, 5x slower for a few hundred bytes here: their own links where measured.
  const bool spinning = !past_cores && has_link("intra_cores." + kind);
  const LinkFit& f = prof_.link((beside_pollers ? "intra_polled." : spinning ? "intra_cores." : "intra.") + kind);
  double t = f.seconds(bytes, local);
  if (nodes > 1) {
    // Off the node, through its one link: all-to-all sends the share of each local rank's
    // bytes meant for ranks elsewhere; all-gather brings every remote rank's bytes to each local
    // one; a point-to-point or one-sided read moves each local rank's bytes once.
    double node_bytes = bytes * local;
    if (kind == "alltoallv") node_bytes *= double(n - local) / double(n);
    if (kind == "allgather") node_bytes *= double(n - local);
    const auto inter = prof_.links.find("inter." + kind);
    if (inter != prof_.links.end())
      t += inter->second.seconds(node_bytes, nodes);  // measured across nodes at calibration
    else
      t += double(nodes - 1) * net_.latency_s + node_bytes * 8 / (net_.gbit * 1e9);
  }
  return t;
}

void OpCosts::engine_scales(bool decode, StepCost* layer) const {
  const EngineFixed& f = prof_.fixed.at(t_);
  const double attn = decode ? f.attention_decode : f.attention_prefill, moe = decode ? f.moe_decode : f.moe_prefill;
  for (const auto& [part, scale] : {std::pair{"attention", attn}, {"indexer", attn}, {"moe_experts", moe}}) {
    PartTime& p = layer->parts[part];
    p.compute *= scale, p.wait *= scale;
  }
}

double OpCosts::fixed(double rows, double width) const {
  const EngineFixed& f = prof_.fixed.at(t_);
  return stretch_ * f.seconds(rows, width);
}

}  // namespace modelone
