// A machine profile: this machine's per-operation costs as `modelone bench calibrate` measured
// them with the engine's own kernels and collectives, written as JSON and read by `modelone
// plan`. Every number is a measurement or a fit of measurements (never a datasheet figure); a
// profile holds for the build that made it (the kernels are part of the cost), so reading checks
// the build and every field.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelone {

// Seconds per unit of work measured at increasing sizes (rows of a product, entries of a scan),
// read between the points in log-log and held flat past the ends.
struct CostCurve {
  std::vector<double> size, per_unit;
  double at(double s) const;
  // As at(), but past the last point the median of the last three where all lie within 4x of it
  // in size (else the last): a product's per-FLOP cost is flat past a few hundred rows, and one
  // noisy end point would price every longer prompt.
  double at_plateau(double s) const;
};

// The weight products of one (compute path, stored dtype, thread count): seconds per FLOP against
// rows for weights of increasing size (calibrate: one that stays in cache, copies of a 32 MiB one
// streamed from memory in turn, and one head-sized weight of 1 GiB, which streams slower on one
// thread), and the fixed cost of one call. A weight between two sizes reads between them in log
// bytes; past the ends, the end's curve.
struct ProductClass {
  double bytes = 0;  // stored bytes of the class's weight
  CostCurve curve;
};
struct ProductCosts {
  std::vector<ProductClass> classes;  // increasing bytes
  double call_s = 0;                  // the smallest product: the fixed cost of a call
  // rows x [K -> N] with weight_bytes of stored weight.
  double seconds(double rows, double K, double N, double weight_bytes) const;
};

// Attention cores at one thread count, per unit of work (queries run in parallel over threads).
// Each against keys: seconds per query x key = width x curve + key curve, the width being heads at
// head_dim 512 (attend) or indexer heads x dim (index). The key curves hold what a key costs
// whatever the heads (its loads and packing, the top-k): the tiny preset's 4 heads spend most of
// their time there, V4-Flash's 64 little. Empty in profiles written before them: no key term.
struct AttnCurves {
  CostCurve partial;      // attn_partial
  CostCurve index;        // the indexer's scoring and top-k
  CostCurve partial_key, index_key;
};
struct AttnCosts {
  AttnCurves many;  // queries in a batch (prefill)
  AttnCurves one;   // one query alone (a decode step of one sequence)
};

// A collective on ranks of one node (or across nodes when the world spanned them), fitted per
// group size n as latency + bytes / bandwidth (bytes per rank). A size past the largest measured
// grows its latency in proportion to the peers; one below the smallest takes the smallest's.
// Newer profiles keep each group size's measured seconds against bytes too: priced from them
// (log-log between the sizes; below the smallest its time; past the largest the fit's bandwidth
// on top), as the fit's straight line misses the protocol steps of small transfers (2 ranks'
// all-gather on this VM: 4.1 us at 256 bytes and 2 KiB, 10.3 at 8 KiB, 231 at 2 MiB; the fit's
// latency read 8.1 us).
struct LinkFit {
  std::vector<int> ranks;          // group sizes measured, increasing, >= 2
  std::vector<double> latency_s, gbps;
  std::vector<CostCurve> measured;  // per group size: size = bytes, per_unit = seconds (or none)
  double seconds(double bytes, int n) const;
};

// The engine's costs the operations above do not count (mHC mixes, norms, RoPE, thread
// start-ups, per-query calls, bookkeeping), per layer and step and per row and layer, each linear
// in the layer's width w = hc x hidden + heads x head_dim (the floats a row's element-wise work
// touches): fitted at calibration from the measured steps of two models of different widths
// (the tiny preset, and a 3-layer V4-Flash cut) less what their operations are priced at.
// Each width term is linear (power 1) unless the wide anchor's cost outgrows its width so far
// that a line through both anchors goes below zero at width 0: then it is c * w^p through both
// (the line's clamped intercept overshot the narrow anchor 3x: tiny's one-thread decode).
struct EngineFixed {
  double per_layer_s = 0, per_layer_width_s = 0, per_row_s = 0, per_row_width_s = 0;
  double per_layer_power = 1, per_row_power = 1;
  // The wide anchor's attention (its indexer within) and MoE as the engine's part timers measured
  // them, against their operations' prices, in a decode step and in its prefill: what the
  // kernels timed alone miss inside a step (the check's predictions read 13% fast at the median,
  // 45 of 47 under their measure, while the fixed costs above hold only time outside the parts;
  // this VM's calibrations then read 0.94-1.25). 1 in profiles before them.
  double attention_decode = 1, moe_decode = 1, attention_prefill = 1, moe_prefill = 1;
  double seconds(double rows, double width) const {
    return per_layer_s + per_layer_width_s * std::pow(width, per_layer_power) +
           (per_row_s + per_row_width_s * std::pow(width, per_row_power)) * rows;
  }
};

// Ranks of one node computing at once share its memory and caches. calibrate ran a streamed
// product on `ranks` of the node's ranks at once (one thread each, up to its cores) and on one
// alone: `slowdown` is the slowest one's time together against the one's alone, by rows. (Two
// ranks' decode steps over this VM's two cores gained 1.4x over one rank's, not the 2x of their
// halved work: the vocabulary head, 25.7 ms on one rank, 17.4 for each half on two; but two
// ranks streaming here read 0.96-1.11 of one alone, so the gap lies elsewhere: uneven cores.)
// Empty in profiles before it, or from a node of one core or rank: no sharing priced.
struct Together {
  int ranks = 1;
  CostCurve slowdown;  // size: rows; per_unit: time together / time alone
  // The slowdown of work of `rows` rows while `cores` cores of the node compute: 1 on one core,
  // the measured one at `ranks` cores, along the line between them (held past it: a node of
  // more cores than measured is not priced slower than the measure).
  double at(double cores, double rows) const;
};

// The slowest of these GFLOPS against the fastest (1 with none).
double slowest_pace(const std::vector<double>& gflops);

struct MachineProfile {
  static constexpr const char* kFormat = "modelone-machine-1";
  std::string build;              // executable_hash() of the build that measured it
  nlohmann::ordered_json machine; // bench's machine line: CPU, cores, ranks, libraries, date,
                                  // and core_gflops: each cpu's pace after calibrate's last pass,
                                  // memory_gbps: every cpu streaming at once, each reading
  // A node's cores ran evenly where the slowest's GFLOPS reached this share of the fastest's
  // (best-of-three readings of even cores read 0.91-1.0 on this VM; a busy neighbour's spell,
  // 0.65).
  static constexpr double kEvenCorePace = 0.85;
  // The node's memory held steady where its every-cpu read rates (machine's memory_gbps, one a
  // reading) stayed within this ratio; this VM's moved 35 <-> 55 GB/s within minutes.
  static constexpr double kSteadyMemory = 1.25;
  std::vector<int> threads;       // the thread counts calibrated
  std::string compute;            // the compute path `auto` takes here (bf16 or fp32)
  std::map<std::string, ProductCosts> products;  // key(compute, dtype, threads)
  std::map<std::string, ProductCosts> experts;   // the routed experts' kernels, same keys
  std::map<int, AttnCosts> attention;            // by threads
  std::map<int, double> read_gbps;               // by threads
  std::map<std::string, LinkFit> links;          // "intra.alltoallv", ..., "inter.*" if measured
  std::map<int, EngineFixed> fixed;              // by threads
  // The share of a core a rank waiting in MPI takes from ranks computing beside it when the
  // node's ranks outnumber its cores (Open MPI polls, yielding when oversubscribed): 0 none, 1
  // a whole one (the value for profiles without it, or calibrated on no more ranks than cores).
  double poll_share = 1;
  Together together;

  static std::string key(const std::string& compute, const std::string& dtype, int threads);
  // The nearest calibrated thread count at or below t (else the smallest).
  int nearest_threads(int t) const;
  // The slowest cpu's GFLOPS against the fastest's in machine's core_gflops (1 where absent).
  double slowest_core_pace() const;
  // The lowest and highest of machine's memory_gbps ({0, 0} where absent).
  std::pair<double, double> memory_range() const;
  // Whether the node's links were timed only in a world past its cores (MPI yielding in every
  // wait): no intra_cores links, and intra ones with more ranks than machine's cores.
  bool links_only_past_cores() const;
  const ProductCosts& product(const std::string& compute, const std::string& dtype, int t) const;
  const ProductCosts& expert(const std::string& compute, const std::string& dtype, int t) const;
  const LinkFit& link(const std::string& name) const;

  nlohmann::ordered_json to_json() const;
};

// Reads and checks a profile: a one-line error naming the file and what is wrong (unreadable, not
// JSON, another format, another build unless build is empty, a missing or non-finite field).
MachineProfile read_machine_profile(const std::string& path, const std::string& build);
void write_machine_profile(const std::string& path, const MachineProfile& p);

}  // namespace modelone
