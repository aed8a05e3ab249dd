// `bench calibrate`, the collectives: all-to-all, all-gather, point-to-point and one-sided get
// between 2 .. P ranks of a node (and between nodes, one rank each, when the world spans nodes),
// timed through comm/ as the engine calls it, each group size fitted as latency + bytes /
// bandwidth by least squares (groups past the cores time-slice: their own fit says so).
#include <algorithm>
#include <cmath>

#include "bench/bench_util.h"
#include "bench/calibrate.h"
#include "comm/comm.h"
#include "comm/rma_window.h"

namespace modelone::bench {

namespace {

struct SizeTime {
  double bytes, seconds;
};

// Seconds of one call of `kind` on c with `bytes` per rank (the slowest rank, median).
double time_collective(const comm::Comm& c, const std::string& kind, int64_t bytes, int iters) {
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

}  // namespace

// Fits every kind on groups of 2 .. size of `c` ranks (the first n of c), into links[prefix.kind].
void calibrate_links(const comm::Comm& c, const std::string& prefix, const CalibrateBenchOptions& o,
                     std::map<std::string, LinkFit>* links) {
  const int P = c.size();
  if (P < 2) return;
  const std::vector<int64_t> sizes = o.quick ? std::vector<int64_t>{256, 65536, 1 << 20}
                                             : std::vector<int64_t>{256, 16384, 262144, 2 << 20};
  for (const char* kind : {"alltoallv", "allgather", "p2p", "rma_get"}) {
    LinkFit& f = (*links)[prefix + "." + kind];
    for (int n = 2; n <= P; ++n) {
      std::vector<SizeTime> pts;
      comm::Comm sub = c.split(c.rank() < n ? 0 : 1, c.rank());
      for (int64_t b : sizes) {
        const double t = c.rank() < n ? time_collective(sub, kind, b, o.quick ? 5 : 11) : 0;
        c.barrier_idle();  // the ranks outside the group wait asleep: they leave it the cores
        const double tmax = c.allreduce(t, comm::Op::Max);
        pts.push_back({double(b), tmax});
      }
      const auto [lat, gbps] = fit(pts);
      f.ranks.push_back(n), f.latency_s.push_back(lat), f.gbps.push_back(gbps);
    }
  }
}

}  // namespace modelone::bench
