#include "dist/eplb.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "model/base/check.h"

namespace modelone {

using nlohmann::json;

namespace {

json read_json(const std::string& path, const char* what) {
  std::ifstream f(path);
  MO_REQUIRE(f.good(), what, ": cannot open '", path, "'");
  try {
    return json::parse(f);
  } catch (const json::exception&) {
    fail(what, ": '", path, "' is not valid JSON");
  }
}

void write_json(const std::string& path, const json& j, const char* what) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    MO_REQUIRE(f.good(), what, ": cannot write '", path, "'");
    f << j.dump(1) << "\n";
    MO_REQUIRE(f.good(), what, ": failed writing '", path, "'");
  }
  MO_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0, what, ": cannot write '", path, "'");
}

}  // namespace

void write_expert_stats(const std::string& path, const ExpertStats& s, const std::string& model) {
  json j;
  j["model"] = model;
  j["ep"] = s.ep;
  for (size_t l = 0; l < s.tokens_per_expert.size(); ++l)
    j["layers"].push_back({{"layer", l},
                           {"tokens_per_expert", s.tokens_per_expert[l]},
                           {"tokens_per_rank", s.tokens_per_rank[l]}});
  write_json(path, j, "--expert-stats");
}

ExpertStats read_expert_stats(const std::string& path) {
  const json j = read_json(path, "--stats");
  ExpertStats s;
  // Counts are whole numbers in [0, 2^53) (a float like 1e30 would convert to garbage).
  auto counts = [&](const json& a, const char* key, int64_t l) {
    MO_REQUIRE(a.is_array(), "--stats: '", path, "': layer ", l, ": ", key, " is not a list");
    std::vector<int64_t> v;
    for (const json& x : a) {
      MO_REQUIRE(x.is_number_integer() && x.get<double>() >= 0 && x.get<double>() < 0x1p53,
                 "--stats: '", path, "': layer ", l, ": ", key, " holds ", x.dump().substr(0, 32),
                 ", not a count of tokens");
      v.push_back(x.get<int64_t>());
    }
    return v;
  };
  try {
    const json& ep = j.at("ep");
    MO_REQUIRE(ep.is_number_integer() && ep.get<int64_t>() >= 1 && ep.get<int64_t>() <= 65536,
               "--stats: '", path, "': ep is ", ep.dump().substr(0, 32), ", not in [1, 65536]");
    s.ep = ep.get<int>();
    for (const json& l : j.at("layers")) {
      const int64_t i = int64_t(s.tokens_per_expert.size());
      s.tokens_per_expert.push_back(counts(l.at("tokens_per_expert"), "tokens_per_expert", i));
      s.tokens_per_rank.push_back(l.contains("tokens_per_rank")
                                      ? counts(l["tokens_per_rank"], "tokens_per_rank", i)
                                      : std::vector<int64_t>{});
      const size_t E = s.tokens_per_expert[0].size();
      MO_REQUIRE(E >= 1 && E <= (size_t(1) << 20), "--stats: '", path, "': layer 0 has ", E,
                 " experts, not in [1, 1048576]");
      MO_REQUIRE(s.tokens_per_expert.back().size() == E, "--stats: '", path, "': layer ", i,
                 " has ", s.tokens_per_expert.back().size(), " experts, layer 0 has ", E);
    }
  } catch (const json::exception& e) {
    fail("--stats: '", path, "' is not an expert-stats file (", e.what(), ")");
  }
  MO_REQUIRE(!s.tokens_per_expert.empty(), "--stats: '", path, "' has no layers");
  return s;
}

std::vector<ExpertPlacement> plan_placement(const std::vector<std::vector<int64_t>>& loads, int ep,
                                            int64_t redundant) {
  std::vector<ExpertPlacement> out;
  for (const auto& load : loads) {
    const int64_t E = int64_t(load.size());
    const int64_t slots = (E + redundant + ep - 1) / ep;
    // Copies: one each, then extra copies to the largest load per copy.
    std::vector<int64_t> copies(size_t(E), 1);
    for (int64_t r = 0; r < redundant; ++r) {
      int64_t best = -1;
      double best_load = -1;
      for (int64_t e = 0; e < E; ++e) {
        if (copies[size_t(e)] >= ep) continue;  // at most one copy per rank
        const double per = double(load[size_t(e)]) / double(copies[size_t(e)]);
        if (per > best_load) {
          best_load = per;
          best = e;
        }
      }
      if (best < 0) break;
      ++copies[size_t(best)];
    }
    struct Item {
      int64_t e;
      double load;
    };
    std::vector<Item> items;
    for (int64_t e = 0; e < E; ++e)
      for (int64_t c = 0; c < copies[size_t(e)]; ++c)
        items.push_back({e, double(load[size_t(e)]) / double(copies[size_t(e)])});
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.load > b.load; });
    ExpertPlacement p;
    p.ep = ep;
    p.replicas.resize(size_t(E));
    std::vector<double> rank_load(size_t(ep), 0);
    std::vector<int64_t> used(size_t(ep), 0);
    for (const Item& it : items) {
      int best = -1;
      for (int r = 0; r < ep; ++r) {
        if (used[size_t(r)] >= slots || p.holds(r, it.e)) continue;
        if (best < 0 || rank_load[size_t(r)] < rank_load[size_t(best)]) best = r;
      }
      MO_CHECK(best >= 0, "no rank has a free slot for expert ", it.e);
      p.replicas[size_t(it.e)].push_back(best);
      rank_load[size_t(best)] += it.load;
      ++used[size_t(best)];
    }
    for (auto& r : p.replicas) std::sort(r.begin(), r.end());
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<std::vector<double>> rank_loads(const std::vector<std::vector<int64_t>>& loads,
                                            const std::vector<ExpertPlacement>& placement) {
  std::vector<std::vector<double>> out;
  for (size_t l = 0; l < loads.size(); ++l) {
    const ExpertPlacement& p = placement[l];
    std::vector<double> r(size_t(p.ep), 0);
    for (size_t e = 0; e < loads[l].size(); ++e)
      for (int rank : p.replicas[e]) r[size_t(rank)] += double(loads[l][e]) / double(p.replicas[e].size());
    out.push_back(std::move(r));
  }
  return out;
}

void write_placement(const std::string& path, const std::vector<ExpertPlacement>& p) {
  json j;
  j["ep"] = p.empty() ? 1 : p[0].ep;
  j["num_experts"] = p.empty() ? 0 : p[0].replicas.size();
  for (size_t l = 0; l < p.size(); ++l) j["layers"].push_back({{"layer", l}, {"replicas", p[l].replicas}});
  write_json(path, j, "--out");
}

std::vector<ExpertPlacement> read_placement(const std::string& path, int64_t n_layers,
                                            int64_t n_experts, int ep) {
  const json j = read_json(path, "--expert-placement");
  const std::string where = "--expert-placement " + path;
  std::vector<ExpertPlacement> out = ExpertPlacement::uniform(n_experts, ep, n_layers);
  try {
    const int file_ep = j.at("ep").get<int>();
    MO_REQUIRE(file_ep == ep, where, ": plan is for ep ", file_ep, " but this run has ep ", ep);
    for (auto& lj : j.at("layers")) {
      const int64_t l = lj.at("layer").get<int64_t>();
      MO_REQUIRE(l >= 0 && l < n_layers, where, ": layer ", l, " does not exist (", n_layers,
                 " layers)");
      const auto reps = lj.at("replicas").get<std::vector<std::vector<int>>>();
      MO_REQUIRE(int64_t(reps.size()) == n_experts, where, ": layer ", l, " lists ", reps.size(),
                 " experts, the model has ", n_experts);
      ExpertPlacement p;
      p.ep = ep;
      p.replicas = reps;
      for (int64_t e = 0; e < n_experts; ++e) {
        MO_REQUIRE(!reps[size_t(e)].empty(), where, ": layer ", l, ": expert ", e,
                   " is placed on no rank");
        const auto& re = reps[size_t(e)];
        for (size_t i = 0; i < re.size(); ++i) {
          MO_REQUIRE(re[i] >= 0 && re[i] < ep, where, ": layer ", l, ": expert ", e,
                     " is placed on rank ", re[i], ", outside [0, ", ep, ")");
          MO_REQUIRE(std::find(re.begin(), re.begin() + long(i), re[i]) == re.begin() + long(i),
                     where, ": layer ", l, ": expert ", e, " is placed on rank ", re[i], " twice");
        }
      }
      out[size_t(l)] = std::move(p);
    }
  } catch (const json::exception& e) {
    fail(where, ": not a placement file (", e.what(), ")");
  }
  return out;
}

}  // namespace modelone
