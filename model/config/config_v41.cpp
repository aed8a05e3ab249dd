#include "model/config/config_v41.h"

#include "model/base/check.h"
#include "model/config.pb.h"

namespace modelone {

namespace {

// The latest of `sources` at or below each layer, -1 before the first.
std::vector<int64_t> latest_at_or_below(const std::vector<int64_t>& sources, int64_t n) {
  std::vector<int64_t> of(static_cast<size_t>(n), -1);
  for (int64_t l = 0, cur = -1; l < n; ++l) {
    for (int64_t s : sources)
      if (s == l) cur = l;
    of[size_t(l)] = cur;
  }
  return of;
}

// Strictly increasing layer ids inside [0, n).
void check_layer_list(const std::vector<int64_t>& ids, int64_t n, const char* key,
                      const std::string& source) {
  for (size_t i = 0; i < ids.size(); ++i) {
    MO_REQUIRE(ids[i] >= 0 && ids[i] < n, source, ": ", key, ": layer ", ids[i],
               " is outside [0, ", n, ")");
    MO_REQUIRE(i == 0 || ids[i] > ids[i - 1], source, ": ", key,
               " must be increasing and distinct, got ", ids[i - 1], " then ", ids[i]);
  }
}

}  // namespace

void resolve_shared_attn(const pb::ModelConfig& p, ModelConfig* c, const std::string& source) {
  const int64_t n = c->num_layers;
  MO_REQUIRE(p.layer_types_size() == 0, source,
             ": layer_types is V4's; a deepseek_v41 config gives compress_ratios");
  MO_REQUIRE(p.compress_ratios_size() >= n, source, ": compress_ratios has ",
             p.compress_ratios_size(), " entries for num_hidden_layers = ", n,
             " (deepseek_v41 needs one per layer)");
  SharedAttn& s = c->shared;
  // Entries past num_hidden_layers are the DSpark draft layers': not part of the backbone.
  s.ratio.assign(p.compress_ratios().begin(), p.compress_ratios().begin() + n);
  c->attn.clear();
  for (int64_t l = 0; l < n; ++l) {
    const int64_t r = s.ratio[size_t(l)];
    MO_REQUIRE(r >= 0 && r <= (int64_t(1) << 16), source, ": compress_ratios[", l, "] is ", r,
               " (expected 0 for window only, or a ratio in [1, 65536])");
    c->attn.push_back(r == 0 ? AttnKind::Sliding : AttnKind::Shared);
  }
  s.kv_sources.assign(p.kv_source_layer_ids().begin(), p.kv_source_layer_ids().end());
  s.index_sources.assign(p.index_source_layer_ids().begin(), p.index_source_layer_ids().end());
  s.candidate_source = p.has_candidate_source_layer_id() ? p.candidate_source_layer_id() : -1;
  s.candidate_topk_blocks = p.has_candidate_topk_blocks() ? p.candidate_topk_blocks() : 0;
  s.candidate_block_size = p.has_candidate_block_size() ? p.candidate_block_size() : 0;
  s.kv_of = latest_at_or_below(s.kv_sources, n);
  s.index_of = latest_at_or_below(s.index_sources, n);
}

void validate_shared_attn(const ModelConfig& c, const std::string& source) {
  const SharedAttn& s = c.shared;
  const int64_t n = c.num_layers;
  check_layer_list(s.kv_sources, n, "kv_source_layer_ids", source);
  check_layer_list(s.index_sources, n, "index_source_layer_ids", source);
  auto ratio = [&](int64_t l) { return s.ratio[size_t(l)]; };
  for (int64_t k : s.kv_sources)
    MO_REQUIRE(ratio(k) > 0, source, ": kv_source_layer_ids names layer ", k,
               ", a window-only layer (compress ratio 0): it has no compressor");
  for (int64_t i : s.index_sources)
    MO_REQUIRE(ratio(i) > 0 && s.kv_of[size_t(i)] >= 0, source, ": index source layer ", i,
               ratio(i) > 0 ? " has no kv source at or before it (its keys come from one)"
                            : " is a window-only layer (compress ratio 0): it has no top-k");
  if (s.candidate_source >= 0) {
    MO_REQUIRE(s.is_index_source(s.candidate_source), source, ": candidate_source_layer_id ",
               s.candidate_source, " is not an index source (index_source_layer_ids)");
    MO_REQUIRE(s.candidate_topk_blocks > 0 && s.candidate_block_size > 0, source,
               ": candidate_topk_blocks and candidate_block_size must be positive with a "
               "candidate source, got ", s.candidate_topk_blocks, " and ", s.candidate_block_size);
  }
  for (int64_t l = 0; l < n; ++l) {
    if (ratio(l) == 0) continue;
    const int64_t kv = s.kv_of[size_t(l)], ix = s.index_of[size_t(l)];
    MO_REQUIRE(kv >= 0, source, ": layer ", l, " (compress ratio ", ratio(l),
               ") comes before the first kv source (kv_source_layer_ids): no cache to read");
    MO_REQUIRE(ratio(kv) == ratio(l), source, ": layer ", l, " has compress ratio ", ratio(l),
               " but reads the entries of kv source ", kv, ", whose ratio is ", ratio(kv));
    MO_REQUIRE(ix >= 0, source, ": layer ", l, " (compress ratio ", ratio(l),
               ") comes before the first index source (index_source_layer_ids): no top-k to use");
    // Picks are entry numbers of one cache: the layer's picks must number the cache it reads.
    MO_REQUIRE(s.kv_of[size_t(ix)] == kv, source, ": layer ", l, " reads kv source ", kv,
               "'s entries but takes its top-k from index source ", ix, ", which scores kv source ",
               s.kv_of[size_t(ix)], "'s");
    if (s.uses_candidates(l) && s.is_index_source(l))
      MO_REQUIRE(s.kv_of[size_t(s.candidate_source)] == kv, source, ": index source ", l,
                 " reads kv source ", kv, " but the candidate blocks of layer ", s.candidate_source,
                 " number kv source ", s.kv_of[size_t(s.candidate_source)], "'s entries");
  }
}

}  // namespace modelone
