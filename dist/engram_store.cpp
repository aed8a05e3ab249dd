#include "dist/engram_store.h"

#include <algorithm>
#include <cstring>

#include "dist/memory_limit.h"
#include "model/base/check.h"
#include "model/blocks/engram.h"

namespace modelone {

EngramFetch engram_fetch_from_name(const std::string& s) {
  if (s == "get") return EngramFetch::Get;
  if (s == "alltoall") return EngramFetch::Alltoall;
  fail("--engram-fetch must be get or alltoall, got '", s, "'");
}

const char* engram_fetch_name(EngramFetch f) { return f == EngramFetch::Get ? "get" : "alltoall"; }

RowCache::RowCache(int64_t capacity, int64_t row_bytes)
    : cap_(capacity), rb_(row_bytes), data_(static_cast<size_t>(capacity * row_bytes)) {}

const uint8_t* RowCache::find(int64_t row) {
  auto it = where_.find(row);
  if (it == where_.end()) return nullptr;
  order_.splice(order_.begin(), order_, it->second.first);  // now the most recent
  return data_.data() + it->second.second * rb_;
}

void RowCache::insert(int64_t row, const uint8_t* bytes) {
  if (where_.count(row)) return;
  int64_t slot = int64_t(where_.size());
  if (slot == cap_) {  // full: reuse the least recently used row's slot
    const int64_t old = order_.back();
    order_.pop_back();
    slot = where_[old].second;
    where_.erase(old);
  }
  order_.push_front(row);
  where_[row] = {order_.begin(), slot};
  std::memcpy(data_.data() + slot * rb_, bytes, size_t(rb_));
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
  if (opt_.replicate) me_owner_ = 0;  // one owner, present on every rank
  const int P = opt_.replicate ? 1 : int(opt_.owners.size());
  dtype_ = tables.dtype();
  row_bytes_ = engram_row_bytes(dtype_, ec.head_dim);
  const std::vector<EngramHashParams> hps =
      engram_hash_params(ec.layers, ec.max_ngram, ec.n_heads, ec.prime_start, ec.compressed_vocab);
  // Refuse a share that cannot fit before allocating any of it. Budgets differ between nodes,
  // so the ranks compare notes first and all stop with the first offender's numbers.
  double budget = opt_.budget_gib * double(1ll << 30);
  if (budget <= 0)  // what run's memory check allows a rank (cgroup and ulimit -v included)
    budget = double(rank_memory_limit(world.split_shared().size()).bytes);
  double mine[2] = {0, budget};
  for (auto& hp : hps) {
    if (me_owner_ >= 0) mine[0] += double(RowRanges(hp.rows, P).count(me_owner_) * row_bytes_);
    mine[0] += double(std::min(opt_.cache_rows, hp.rows)) * double(row_bytes_);  // --engram-cache
  }
  std::vector<double> all(static_cast<size_t>(2 * world.size()));
  world.allgather(mine, 2, all.data());
  for (int r = 0; r < world.size(); ++r) {
    const double share = all[size_t(2 * r)], cap = all[size_t(2 * r + 1)];
    MO_REQUIRE(cap <= 0 || share <= cap, "the Engram tables need ", share / double(1ll << 30),
               " GiB on rank ", r, " (", P, " ranks hold them), more than its budget of ",
               cap / double(1ll << 30), " GiB (--engram-budget); spread them over more ranks");
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
    if (opt_.cache_rows > 0)  // a cache past the table's rows could never fill
      t.cache = std::make_unique<RowCache>(std::min(opt_.cache_rows, t.hp.rows), row_bytes_);
  }
  // This rank's rows of the files, after every collective of the set-up: a damaged shard only
  // this rank reads must not leave the others waiting in the next window's allocation.
  comm::agree(world, [&] {
    for (size_t k = 0; k < hps.size(); ++k) {
      Table& t = tables_[k];
      if (t.row_count > 0) tables.read(int64_t(k), t.ranges.begin(me_owner_), t.row_count, t.rows);
    }
  });
}

EngramStore::~EngramStore() = default;

EngramStore::Loc EngramStore::locate(int64_t k, int64_t row) const {
  if (opt_.replicate) return {world_.rank(), row};
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
  // Rows held here and cached rows are copied now; the rest (t.need, indices into uniq) are
  // fetched. Sorted rows under a row-range split: each owner's rows are one run of t.need.
  const int me = world_.rank(), W = world_.size();
  t.need.clear();
  t.send_counts.assign(size_t(W), 0);
  for (int64_t u = 0; u < U; ++u) {
    const Loc l = locate(k, t.uniq[size_t(u)]);
    uint8_t* dst = t.got.data() + u * rb;
    if (l.rank == me) {
      std::memcpy(dst, t.rows + l.local * rb, size_t(rb));
      continue;
    }
    ++stats.cache_lookups;
    if (const uint8_t* c = t.cache ? t.cache->find(t.uniq[size_t(u)]) : nullptr) {
      ++stats.cache_hits;
      std::memcpy(dst, c, size_t(rb));
      continue;
    }
    t.need.push_back(u);
    ++t.send_counts[size_t(l.rank)];
  }
  const int64_t F = int64_t(t.need.size());
  stats.remote += F;
  stats.bytes += F * rb;
  t.fetched.resize(size_t(F * rb));

  if (opt_.fetch == EngramFetch::Get) {
    comm::Timed timed(comm::stats(counters_, "engram_get"), F * rb);
    std::vector<int64_t> offs;
    for (int64_t i = 0; i < F;) {
      const int owner = locate(k, t.uniq[size_t(t.need[size_t(i)])]).rank;
      const int64_t n = t.send_counts[size_t(owner)];
      offs.resize(size_t(n));
      for (int64_t j = 0; j < n; ++j)
        offs[size_t(j)] = locate(k, t.uniq[size_t(t.need[size_t(i + j)])]).local * rb;
      t.win->get_rows(owner, offs.data(), n, rb, t.fetched.data() + i * rb);
      i += n;
    }
    return;
  }
  // alltoall: ids to their owners, each owner packs what it was asked for, rows come back.
  comm::Timed timed(comm::stats(counters_, "engram_alltoall"), F * rb);
  t.recv_counts = world_.exchange_counts(t.send_counts);
  int64_t asked = 0;
  for (int64_t c : t.recv_counts) asked += c;
  std::vector<int64_t> want(static_cast<size_t>(F)), ids(static_cast<size_t>(asked));
  for (int64_t i = 0; i < F; ++i) want[size_t(i)] = t.uniq[size_t(t.need[size_t(i)])];
  world_.alltoallv(want.data(), t.send_counts, ids.data(), t.recv_counts);
  t.serve.resize(size_t(asked * rb));
  for (int64_t i = 0; i < asked; ++i) {
    const Loc l = locate(k, ids[size_t(i)]);
    MO_REQUIRE(l.rank == me, "internal: Engram row ", ids[size_t(i)], " asked of rank ", me,
               " which does not hold it");
    std::memcpy(t.serve.data() + i * rb, t.rows + l.local * rb, size_t(rb));
  }
  t.resp = world_.ialltoallv_rows(t.serve.data(), t.recv_counts, t.fetched.data(), t.send_counts, rb);
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
  const int64_t rb = row_bytes_;
  for (size_t i = 0; i < t.need.size(); ++i) {
    const uint8_t* src = t.fetched.data() + int64_t(i) * rb;
    std::memcpy(t.got.data() + t.need[i] * rb, src, size_t(rb));
    if (t.cache) t.cache->insert(t.uniq[size_t(t.need[i])], src);
  }
  const int64_t hd = cfg_.engram.head_dim;
  for (size_t i = 0; i < t.want.size(); ++i)
    engram_row_to_f32(dtype_, hd, t.got.data() + t.slot[i] * row_bytes_,
                      e + int64_t(i) * hd);
}

}  // namespace modelone
