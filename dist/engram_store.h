// Engram's tables sharded over the host memory of a set of ranks (all of the world by default),
// and the fetch of the rows a step needs. The rows of a step follow from its token ids alone, so
// the engine requests every Engram layer's rows at the start of the step and waits for each just
// before its layer (dist/engine.cpp).
//
// Sharding is by row range: owner i of P holds rows [i * base + min(i, extra), ...), base = R / P,
// extra = R % P. The hashed row indices are already spread uniformly over each column's range, so
// ranges balance the load as well as hashing would, and a range is one contiguous slice of the
// checkpoint's table (one read per rank at load). locate() is the one mapping from a global row to
// its owner and local offset.
//
// Two ways to move rows, chosen by EngramOptions::fetch:
//   get       one-sided MPI_Get on a window over each table (passive target: one lock_all for the
//             run, one hindexed get per owner, a flush per layer): owners take no part.
//   alltoall  owner-sorted request/response: row ids out (blocking all-to-all at request time),
//             rows back with a nonblocking all-to-all waited for at the layer.
// A row wanted several times in a step is fetched once (the step's rows are sorted and deduped),
// and an optional bounded per-rank cache keeps recently fetched remote rows (off by default).
#pragma once
#include <cstdint>
#include <memory>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

#include "comm/comm.h"
#include "comm/counters.h"
#include "comm/rma_window.h"
#include "model/base/even_split.h"
#include "model/config/config.h"
#include "model/blocks/engram_hash.h"
#include "model/io/engram_tables.h"

namespace modelone {

enum class EngramFetch : uint8_t { Get, Alltoall };
EngramFetch engram_fetch_from_name(const std::string& s);  // "get" | "alltoall"
const char* engram_fetch_name(EngramFetch f);

struct EngramOptions {
  bool enabled = true;     // --engram off: the same model without the blocks
  EngramFetch fetch = EngramFetch::Get;
  bool prefetch = true;    // request at step start (else just before each Engram layer)
  std::vector<int> owners; // world ranks that hold table rows; empty = every rank
  // Most table bytes one rank may hold; 0: this node's available memory (MemAvailable) over
  // the ranks on the node. A larger share is refused before anything is allocated.
  double budget_gib = 0;
  int64_t cache_rows = 0;  // per table: a bounded LRU of remote rows on each rank (0: off)
  // Every rank holds every row (no remote rows): the baseline the sharded fetch is measured
  // against (`bench engram`), where the tables fit each rank.
  bool replicate = false;
};

struct EngramStats {
  int64_t lookups = 0;  // rows wanted (positions x columns)
  int64_t unique = 0;   // after dedupe
  int64_t remote = 0;   // of those, held by another rank
  int64_t bytes = 0;    // row bytes received from other ranks
  double wait_s = 0;    // wall seconds waiting for rows at the layers
  int64_t cache_lookups = 0, cache_hits = 0;  // remote rows looked up in the hot-row cache
  template <class S, class F>
  static void fields(S& s, F&& f) {  // comm/rank_stats.h
    f("lookups", s.lookups), f("unique", s.unique), f("remote", s.remote), f("bytes", s.bytes);
    f("wait_s", s.wait_s), f("cache_lookups", s.cache_lookups), f("cache_hits", s.cache_hits);
  }
};

// The hot-row cache: at most `capacity` rows, least recently used out first.
class RowCache {
 public:
  RowCache(int64_t capacity, int64_t row_bytes);
  const uint8_t* find(int64_t row);  // nullptr on a miss; a hit becomes the most recent
  void insert(int64_t row, const uint8_t* bytes);

 private:
  int64_t cap_, rb_;
  std::vector<uint8_t> data_;
  std::list<int64_t> order_;  // most recent first
  std::unordered_map<int64_t, std::pair<std::list<int64_t>::iterator, int64_t>> where_;  // -> slot
};

// Which rows each owner holds, for R rows over P owners.
struct RowRanges : EvenSplit {
  RowRanges(int64_t R, int P) : EvenSplit(R, P) {}
  int owner(int64_t row) const { return int(part_of(row)); }  // owner index in [0, P)
};

class EngramStore {
 public:
  // Collective over world. cmap: token id -> compressed id (checked). Each owner reads only its
  // own rows from `tables`.
  EngramStore(const ModelConfig& cfg, const comm::Comm& world, EngramOptions opt,
              std::vector<int32_t> cmap, const EngramTables& tables, comm::Counters* counters);
  ~EngramStore();

  int64_t tables() const { return int64_t(tables_.size()); }
  const EngramHashParams& hash(int64_t k) const { return tables_[size_t(k)].hp; }
  const EngramOptions& options() const { return opt_; }
  int32_t compress(int32_t token) const { return cmap_[size_t(token)]; }
  int32_t pad_id() const { return cmap_[size_t(cfg_.engram.pad_token_id)]; }
  // The owner (a world rank) and local row of table k's global row.
  struct Loc { int rank; int64_t local; };
  Loc locate(int64_t k, int64_t row) const;
  int64_t local_bytes() const;  // this rank's share of every table
  void set_counters(comm::Counters* c) { counters_ = c; }

  // Table k's rows for this rank's T positions: rows [T, C] global row ids (T may be 0).
  // Collective over the world with alltoall fetch; every rank requests the tables in order.
  void request(int64_t k, const std::vector<int64_t>& rows);
  // Waits for table k's rows and writes the memory vectors e [T, C * head_dim].
  void wait(int64_t k, float* e);

  // The reference's design (a baseline in `bench engram`): e [T, C * head_dim] holds the rows
  // this rank owns and zeros elsewhere; an all-reduce over the owners then sums the full rows.
  void lookup_owned(int64_t k, const std::vector<int64_t>& rows, float* e) const;

  EngramStats stats;

 private:
  struct Table {
    EngramHashParams hp;
    RowRanges ranges{0, 1};
    std::unique_ptr<comm::RmaWindow> win;   // get fetch: the window holds this rank's rows
    std::vector<uint8_t> own;               // alltoall fetch: this rank's rows
    uint8_t* rows = nullptr;                // this rank's rows [count, row_bytes], in one of them
    int64_t row_count = 0;
    // The step in flight: wanted rows [T * C], their sorted unique set, where each want sits in
    // it, and the unique rows' bytes as they arrive.
    std::vector<int64_t> want, uniq, slot, need;  // need: uniq indices fetched from others
    std::vector<uint8_t> got, fetched, serve;
    std::unique_ptr<RowCache> cache;
    std::vector<int64_t> send_counts, recv_counts;
    comm::Request resp;                     // alltoall fetch: the rows coming back
    bool pending = false;
  };
  const ModelConfig& cfg_;
  const comm::Comm& world_;
  EngramOptions opt_;
  std::vector<int32_t> cmap_;
  comm::Counters* counters_;
  int me_owner_ = -1;  // this rank's index among the owners, -1 if it holds none
  DType dtype_ = DType::F32;  // row storage
  int64_t row_bytes_ = 0;
  std::vector<Table> tables_;
};

}  // namespace modelone
