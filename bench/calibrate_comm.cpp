// `bench calibrate`, the collectives: all-to-all, all-gather, point-to-point and one-sided get
// between 2 .. P ranks of a node (and between nodes, one rank each, when the world spans nodes),
// and on a node the MoE's exchange through node-shared memory,
// timed through comm/ as the engine calls it at sizes from 256 bytes to 2 MiB, each group size's
// points kept (plan reads between them) and fitted as latency + bytes / bandwidth by least squares
// (groups past the cores time-slice: their own points say so).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "bench/bench_util.h"
#include "bench/calibrate.h"
#include "comm/comm.h"
#include "comm/rma_window.h"
#include "comm/shared_window.h"

namespace modelone::bench {

namespace {

struct SizeTime {
  double bytes, seconds;
};

// The MoE's exchange on one node (dist/moe_transport.cpp), dispatch and combine: each rank writes
// its rows into its segment, a fence, reads its share of every segment, writes results back into
// the sources' segments, a fence, and reads its own results. bytes per rank, as all-to-all.
double time_shm_exchange(const comm::Comm& c, int64_t bytes, int iters) {
  const int n = c.size(), me = c.rank();
  const int64_t share = std::max<int64_t>(bytes / n, 1), half = share * n;
  comm::SharedWindow win(c, size_t(2 * half));
  std::vector<uint8_t> rows(static_cast<size_t>(half), 1), mine(static_cast<size_t>(half));
  const double t = median_max(c, iters, [&] {
    std::memcpy(win.segment(me), rows.data(), size_t(half));
    win.fence();
    for (int s = 0; s < n; ++s) {
      std::memcpy(mine.data() + s * share, win.segment(s) + me * share, size_t(share));
      std::memcpy(win.segment(s) + half + me * share, mine.data() + s * share, size_t(share));
    }
    win.fence();
    std::memcpy(rows.data(), win.segment(me) + half, size_t(half));
  });
  c.barrier();
  return t;
}

// Seconds of one call of `kind` on c with `bytes` per rank (the slowest rank, median).
double time_collective(const comm::Comm& c, const std::string& kind, int64_t bytes, int iters) {
  if (kind == "shm") return time_shm_exchange(c, bytes, iters);  // its own buffers: the window
  const int n = c.size(), me = c.rank();
  std::vector<uint8_t> send(size_t(std::max<int64_t>(bytes, 1)), 1), recv(size_t(bytes) * size_t(n) + 1);
  if (kind == "alltoallv") {
    std::vector<int64_t> counts(size_t(n), bytes / n);
    return median_max(c, iters, [&] { c.alltoallv(send.data(), counts, recv.data(), counts); });
  }
  if (kind == "allgather")
    return median_max(c, iters, [&] { c.allgather(send.data(), bytes, recv.data()); });
  if (kind == "p2p")  // a ring: every rank sends to the next and receives from the previous
    return median_max(c, iters, [&] {
      comm::RequestSet rs;
      rs.add(c.irecv(recv.data(), bytes, (me + n - 1) % n, 7));
      rs.add(c.isend(send.data(), bytes, (me + 1) % n, 7));
      rs.wait_all();
    });
  // rma_get: rows of 256 bytes (an FP8 Engram row) from the next rank's window.
  const int64_t row = 256, rows = std::max<int64_t>(1, bytes / row);
  comm::RmaWindow win(c, rows * row);
  std::vector<int64_t> offs(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) offs[size_t(i)] = i * row;
  const double t = median_max(c, iters, [&] {
    win.get_rows((me + 1) % n, offs.data(), rows, row, recv.data());
    win.flush();
  });
  c.barrier();
  return t;
}

// Least squares of t = a + b MB over one group size's points, a and b kept >= 0 (a flat or
// falling slope, noise, leaves the largest transfer's rate).
std::pair<double, double> fit(const std::vector<SizeTime>& pts) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const SizeTime& p : pts) {
    const double x = p.bytes / 1e6;
    n += 1, sx += x, sy += p.seconds, sxx += x * x, sxy += x * p.seconds;
  }
  double b = (n * sxy - sx * sy) / (n * sxx - sx * sx), a = (sy - b * sx) / n;
  const SizeTime& big = *std::max_element(pts.begin(), pts.end(), [](auto& x, auto& y) { return x.bytes < y.bytes; });
  if (!(b > 0) || !std::isfinite(b)) b = big.seconds / (big.bytes / 1e6);
  if (a < 0) a = 0, b = big.seconds / (big.bytes / 1e6);
  return {a, 1e-3 / b};  // latency s, GB/s
}

// Seconds of arithmetic (dependent multiply-adds, ~1 ms a phase, no memory traffic) on each of
// the first `cores` ranks over 40 phases, the node's ranks meeting after each: the others wait
// in a polling barrier, or an idle one.
double compute_beside_waiters(const comm::Comm& node, int cores, bool poll) {
  double busy = 0, x = 1;
  for (int phase = 0; phase < 40; ++phase) {
    if (node.rank() < cores) {
      const double t0 = comm::now();
      for (int i = 0; i < 250000; ++i) x = x * 1.0000001 + 1e-9;
      busy += comm::now() - t0;
    }
    poll ? node.barrier() : node.barrier_idle();
  }
  volatile double sink = x;
  (void)sink;
  return busy;
}

}  // namespace

// As many ranks as cores compute while the other P - cores wait, in MPI's polling barrier against
// an idle one (alternated, medians of 3): the computing ranks' mean slowdown s gives the waiters'
// share f from s = (cores + f (P - cores)) / cores, clamped to [0, 1].
double calibrate_poll_share(const comm::Comm& node, int cores) {
  const int P = node.size();
  if (P <= cores) return 1;
  std::vector<double> polled, idle;
  for (int rep = 0; rep < 3; ++rep) {
    idle.push_back(compute_beside_waiters(node, cores, false));
    polled.push_back(compute_beside_waiters(node, cores, true));
  }
  const double s = node.rank() < cores ? median(polled) / median(idle) : 0;
  const double mean_s = node.allreduce(s, comm::Op::Sum) / cores;
  return std::clamp((mean_s - 1) * cores / (P - cores), 0.0, 1.0);
}

namespace {
// One kind on groups of 2 .. `upto` ranks of c (the first n), fitted per group size. The ranks
// outside a group wait asleep (they leave it the cores) or, `polled`, in MPI's polling barrier
// as the engine's waiting ranks do: a group of a node whose ranks outnumber its cores then
// shares them with the waiters' polling and yields.
LinkFit fit_groups(const comm::Comm& c, const std::string& kind, int upto, bool polled,
                   const CalibrateBenchOptions& o) {
  // The engine's calls run from a few hundred bytes (a decode's partials) to megabytes (a
  // prompt's entries); Open MPI changes protocol between 2 and 8 KiB here.
  const std::vector<int64_t> sizes = o.quick ? std::vector<int64_t>{256, 65536, 1 << 20}
                                             : std::vector<int64_t>{256, 2048, 8192, 32768, 131072, 524288, 2 << 20};
  LinkFit f;
  for (int n = 2; n <= upto; ++n) {
    std::vector<SizeTime> pts;
    comm::Comm sub = c.split(c.rank() < n ? 0 : 1, c.rank());
    for (int64_t b : sizes) {
      const double t = c.rank() < n ? time_collective(sub, kind, b, o.quick ? 5 : 11) : 0;
      polled ? c.barrier() : c.barrier_idle();
      const double tmax = c.allreduce(t, comm::Op::Max);
      pts.push_back({double(b), tmax});
    }
    const auto [lat, gbps] = fit(pts);
    f.ranks.push_back(n), f.latency_s.push_back(lat), f.gbps.push_back(gbps);
    CostCurve& m = f.measured.emplace_back();
    for (const SizeTime& p : pts) m.size.push_back(p.bytes), m.per_unit.push_back(std::max(p.seconds, 1e-9));
  }
  return f;
}
}  // namespace

// Fits every kind on groups of 2 .. size of `c` ranks into links[prefix.kind]; on a node with
// more ranks than `cores`, the groups smaller than the node once more beside polling waiters,
// into links[prefix_polled.kind].
void calibrate_links(const comm::Comm& c, const std::string& prefix, int cores,
                     const CalibrateBenchOptions& o, std::map<std::string, LinkFit>* links) {
  const int P = c.size();
  if (P < 2) return;
  std::vector<const char*> kinds = {"alltoallv", "allgather", "p2p", "rma_get"};
  if (prefix.rfind("intra", 0) == 0) kinds.push_back("shm");  // node-shared memory: within a node only
  for (const char* kind : kinds) {
    (*links)[prefix + "." + kind] = fit_groups(c, kind, P, false, o);
    if (prefix == "intra" && P > cores && P > 2)
      (*links)[prefix + "_polled." + kind] = fit_groups(c, kind, P - 1, true, o);
  }
}

}  // namespace modelone::bench
