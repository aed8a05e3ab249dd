#include "dist/engram_store.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "model/check.h"
#include "model/engram.h"

namespace modelone {

EngramFetch engram_fetch_from_name(const std::string& s) {
  if (s == "get") return EngramFetch::Get;
  if (s == "alltoall") return EngramFetch::Alltoall;
  fail("--engram-fetch must be get or alltoall, got '", s, "'");
}

const char* engram_fetch_name(EngramFetch f) { return f == EngramFetch::Get ? "get" : "alltoall"; }

namespace {

// MemAvailable from /proc/meminfo in bytes (0 when unreadable).
double mem_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream ss(line.substr(13));
      double kb = 0;
      ss >> kb;
      return kb * 1024;
    }
  return 0;
}

}  // namespace

int RowRanges::owner(int64_t row) const {
  const int64_t cut = extra * (base + 1);
  return row < cut ? int(row / (base + 1)) : int(extra + (row - cut) / base);
}

EngramStore::EngramStore(const ModelConfig& cfg, const comm::Comm& world, EngramOptions opt,
                         std::vector<int32_t> cmap, const EngramTables& tables,
                         comm::Counters* counters)
    : cfg_(cfg), world_(world), opt_(std::move(opt)), cmap_(std::move(cmap)), counters_(counters) {
  const EngramConfig& ec = cfg.engram;
  check_compression_map(cmap_, cfg, cfg.name);
  if (opt_.owners.empty())
    for (int r = 0; r < world.size(); ++r) opt_.owners.push_back(r);
  for (size_t i = 0; i < opt_.owners.size(); ++i) {
    const int r = opt_.owners[i];
    MO_REQUIRE(r >= 0 && r < world.size(), "--engram-ranks: rank ", r, " is outside the world [0, ",
               world.size(), ")");
    MO_REQUIRE(i == 0 || r > opt_.owners[i - 1], "--engram-ranks must be increasing and distinct");
    if (r == world.rank()) me_owner_ = int(i);
  }
  const int P = int(opt_.owners.size());
  dtype_ = tables.dtype();
  row_bytes_ = engram_row_bytes(dtype_, ec.head_dim);
  const std::vector<EngramHashParams> hps =
      engram_hash_params(ec.layers, ec.max_ngram, ec.n_heads, ec.prime_start, ec.compressed_vocab);
  // Refuse a share that cannot fit before allocating any of it.
  double budget = opt_.budget_gib * double(1ll << 30);
  if (budget <= 0) {
    const comm::Comm node = world.split_shared();
    budget = mem_available_bytes() / double(node.size());
  }
  if (me_owner_ >= 0 && budget > 0) {
    int64_t share = 0;
    for (auto& hp : hps) share += RowRanges(hp.rows, P).count(me_owner_) * row_bytes_;
    MO_REQUIRE(double(share) <= budget, "the Engram tables need ", double(share) / double(1ll << 30),
               " GiB on rank ", world.rank(), " (", P, " ranks hold them), more than its budget of ",
               budget / double(1ll << 30), " GiB (--engram-budget); spread them over more ranks");
  }
  tables_.resize(hps.size());
  for (size_t k = 0; k < hps.size(); ++k) {
    Table& t = tables_[k];
    t.hp = hps[k];
    t.ranges = RowRanges(t.hp.rows, P);
    t.row_count = me_owner_ >= 0 ? t.ranges.count(me_owner_) : 0;
    if (opt_.fetch == EngramFetch::Get) {
      t.win = std::make_unique<comm::RmaWindow>(world, t.row_count * row_bytes_);
      t.rows = t.win->data();
    } else {
      t.own.resize(size_t(t.row_count * row_bytes_));
      t.rows = t.own.data();
    }
    if (t.row_count > 0) tables.read(int64_t(k), t.ranges.begin(me_owner_), t.row_count, t.rows);
  }
}

EngramStore::~EngramStore() = default;

EngramStore::Loc EngramStore::locate(int64_t k, int64_t row) const {
  const Table& t = tables_[size_t(k)];
  const int i = t.ranges.owner(row);
  return {opt_.owners[size_t(i)], row - t.ranges.begin(i)};
}

int64_t EngramStore::local_bytes() const {
  int64_t b = 0;
  for (auto& t : tables_) b += t.row_count * row_bytes_;
  return b;
}

void EngramStore::request(int64_t k, const std::vector<int64_t>& rows) {
  Table& t = tables_[size_t(k)];
  MO_REQUIRE(!t.pending, "internal: Engram table ", k, " requested twice in one step");
  t.pending = true;
  t.want = rows;
  t.uniq = rows;
  std::sort(t.uniq.begin(), t.uniq.end());
  t.uniq.erase(std::unique(t.uniq.begin(), t.uniq.end()), t.uniq.end());
  t.slot.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    t.slot[i] = std::lower_bound(t.uniq.begin(), t.uniq.end(), rows[i]) - t.uniq.begin();
  const int64_t U = int64_t(t.uniq.size()), rb = row_bytes_;
  t.got.resize(size_t(U * rb));
  stats.lookups += int64_t(rows.size());
  stats.unique += U;
  // Sorted rows under a row-range split: each owner's rows are one run of uniq.
  const int me = world_.rank(), W = world_.size();
  t.send_counts.assign(size_t(W), 0);
  for (int64_t u = 0; u < U; ++u) ++t.send_counts[size_t(locate(k, t.uniq[size_t(u)]).rank)];
  const int64_t remote = U - t.send_counts[size_t(me)];
  stats.remote += remote;
  stats.bytes += remote * rb;

  if (opt_.fetch == EngramFetch::Get) {
    comm::Timed timed(comm::stats(counters_, "engram_get"), remote * rb);
    std::vector<int64_t> offs;
    for (int64_t u = 0; u < U;) {
      const Loc first = locate(k, t.uniq[size_t(u)]);
      const int64_t n = t.send_counts[size_t(first.rank)];
      if (first.rank == me) {
        for (int64_t j = 0; j < n; ++j)
          std::memcpy(t.got.data() + (u + j) * rb,
                      t.rows + locate(k, t.uniq[size_t(u + j)]).local * rb, size_t(rb));
      } else {
        offs.resize(size_t(n));
        for (int64_t j = 0; j < n; ++j) offs[size_t(j)] = locate(k, t.uniq[size_t(u + j)]).local * rb;
        t.win->get_rows(first.rank, offs.data(), n, rb, t.got.data() + u * rb);
      }
      u += n;
    }
    return;
  }
  // alltoall: ids to their owners, each owner packs what it was asked for, rows come back.
  comm::Timed timed(comm::stats(counters_, "engram_alltoall"), remote * rb);
  t.recv_counts = world_.exchange_counts(t.send_counts);
  int64_t asked = 0;
  for (int64_t c : t.recv_counts) asked += c;
  std::vector<int64_t> ids(static_cast<size_t>(asked));
  world_.alltoallv(t.uniq.data(), t.send_counts, ids.data(), t.recv_counts);
  t.serve.resize(size_t(asked * rb));
  for (int64_t i = 0; i < asked; ++i) {
    const Loc l = locate(k, ids[size_t(i)]);
    MO_REQUIRE(l.rank == me, "internal: Engram row ", ids[size_t(i)], " asked of rank ", me,
               " which does not hold it");
    std::memcpy(t.serve.data() + i * rb, t.rows + l.local * rb, size_t(rb));
  }
  t.resp = world_.ialltoallv_rows(t.serve.data(), t.recv_counts, t.got.data(), t.send_counts, rb);
}

void EngramStore::lookup_owned(int64_t k, const std::vector<int64_t>& rows, float* e) const {
  const Table& t = tables_[size_t(k)];
  const int64_t hd = cfg_.engram.head_dim;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Loc l = locate(k, rows[i]);
    float* out = e + int64_t(i) * hd;
    if (l.rank == world_.rank()) engram_row_to_f32(dtype_, hd, t.rows + l.local * row_bytes_, out);
    else std::fill(out, out + hd, 0.f);
  }
}

void EngramStore::wait(int64_t k, float* e) {
  Table& t = tables_[size_t(k)];
  MO_REQUIRE(t.pending, "internal: Engram table ", k, " waited for without a request");
  const double t0 = comm::now();
  {
    comm::Timed timed(comm::stats(counters_, opt_.fetch == EngramFetch::Get ? "engram_get"
                                                                           : "engram_alltoall"),
                      0);
    if (opt_.fetch == EngramFetch::Get) t.win->flush();
    else t.resp.wait();
  }
  stats.wait_s += comm::now() - t0;
  t.pending = false;
  const int64_t hd = cfg_.engram.head_dim;
  for (size_t i = 0; i < t.want.size(); ++i)
    engram_row_to_f32(dtype_, hd, t.got.data() + t.slot[i] * row_bytes_,
                      e + int64_t(i) * hd);
}

}  // namespace modelone
