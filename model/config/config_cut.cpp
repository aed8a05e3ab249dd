#include "model/config/config_cut.h"

#include <algorithm>

#include "model/base/check.h"
#include "model/config/config.h"

namespace modelone {

namespace {

// New index of original layer l, -1 when the cut leaves it out.
int64_t new_index(const std::vector<int64_t>& keep, int64_t l) {
  auto it = std::find(keep.begin(), keep.end(), l);
  return it == keep.end() ? -1 : int64_t(it - keep.begin());
}

// The kept layers that are sources, renumbered; every kept layer's source must be kept.
std::vector<int64_t> kept_sources(const std::vector<int64_t>& keep, const std::vector<int64_t>& sources,
                                  const std::vector<int64_t>& of, const char* what,
                                  const std::string& source) {
  for (int64_t l : keep)
    if (of[size_t(l)] >= 0)
      MO_REQUIRE(new_index(keep, of[size_t(l)]) >= 0, source, ": keep_layers keeps layer ", l,
                 " but not its ", what, " ", of[size_t(l)]);
  std::vector<int64_t> out;
  for (int64_t s : sources)
    if (new_index(keep, s) >= 0) out.push_back(new_index(keep, s));
  return out;
}

void set_list(google::protobuf::RepeatedField<int64_t>* f, const std::vector<int64_t>& v) {
  f->Clear();
  for (int64_t x : v) f->Add(x);
}

}  // namespace

pb::ModelConfig select_layers(const pb::ModelConfig& p, const std::string& source) {
  pb::ModelConfig full = p;
  full.clear_keep_layers();
  const ModelConfig c = config_from_proto(full, source);  // the uncut model, checked
  const std::vector<int64_t> keep(p.keep_layers().begin(), p.keep_layers().end());
  for (size_t i = 0; i < keep.size(); ++i)
    MO_REQUIRE(keep[i] >= 0 && keep[i] < c.num_layers && (i == 0 || keep[i] > keep[i - 1]), source,
               ": keep_layers must be increasing layers of [0, ", c.num_layers, "), got ", keep[i]);
  pb::ModelConfig out = full;
  out.set_num_hidden_layers(int64_t(keep.size()));
  out.clear_compress_ratios();
  out.clear_layer_types();
  out.clear_mlp_layer_types();
  out.clear_num_hash_layers();
  for (int64_t l : keep) {
    out.add_mlp_layer_types(c.mlp[size_t(l)] == MlpKind::HashMoE ? "hash_moe" : "moe");
    if (c.v41()) out.add_compress_ratios(c.shared.ratio[size_t(l)]);
    else out.add_layer_types(attn_kind_name(c.attn[size_t(l)]));
  }
  if (c.v41()) {
    const SharedAttn& s = c.shared;
    set_list(out.mutable_kv_source_layer_ids(), kept_sources(keep, s.kv_sources, s.kv_of, "kv source", source));
    set_list(out.mutable_index_source_layer_ids(),
             kept_sources(keep, s.index_sources, s.index_of, "index source", source));
    const int64_t cand = s.candidate_source >= 0 ? new_index(keep, s.candidate_source) : -1;
    for (int64_t l : keep)
      MO_REQUIRE(cand >= 0 || !s.uses_candidates(l) || !s.is_index_source(l), source,
                 ": keep_layers keeps index source ", l, " but not the candidate source ",
                 s.candidate_source, " whose blocks mask it");
    out.set_candidate_source_layer_id(cand);
  }
  // Engram layers: the kept ones, renumbered; their row counts follow from the primes again.
  std::vector<int64_t> eng;
  for (int64_t l : c.engram.layers)
    if (new_index(keep, l) >= 0) eng.push_back(new_index(keep, l));
  set_list(out.mutable_engram_layer_ids(), eng);
  out.clear_engram_num_embeddings();
  return out;
}

}  // namespace modelone
