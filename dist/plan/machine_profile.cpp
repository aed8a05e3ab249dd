// Machine profiles: cost curves, fits and their JSON form (see machine_profile.h).
#include "dist/plan/machine_profile.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/base/check.h"

namespace modelone {

using ojson = nlohmann::ordered_json;  // keys in the order written

double CostCurve::at(double s) const {
  MO_CHECK(!size.empty() && size.size() == per_unit.size());
  if (s <= size.front()) return per_unit.front();
  if (s >= size.back()) return per_unit.back();
  size_t i = 1;
  while (size[i] < s) ++i;
  // log-log between the points around s: costs per unit fall as powers of the size.
  const double f = std::log(s / size[i - 1]) / std::log(size[i] / size[i - 1]);
  return std::exp(std::log(per_unit[i - 1]) * (1 - f) + std::log(per_unit[i]) * f);
}

// Why past the end: calibrate's 2-thread streamed product at 512 rows read 213-313 GFLOPS in four
// calibrations at np 4 where 256 rows read 389-428 (medians of three passes each; alone, 443;
// `bench gemm` on both cores: 427-443 GFLOPS from 256 to 2048 rows), and priced the V4-Flash
// cut's 2-thread prefill of 2048-4096 tokens (its products at 2048 rows) 1.13-1.38x what it took.
double CostCurve::at_plateau(double s) const {
  MO_CHECK(!size.empty() && size.size() == per_unit.size());
  const size_t n = size.size();
  if (s <= size.back()) return at(s);
  // Priced per product of every layout plan searches: no allocation. Calibrate's grids double,
  // so the points within 4x of the last are the last three (the head class's 4x steps: two).
  if (n < 3 || size[n - 3] * 4 < size.back()) return per_unit.back();
  const double a = per_unit[n - 3], b = per_unit[n - 2], c = per_unit[n - 1];
  return std::max(std::min(a, b), std::min(std::max(a, b), c));  // the median of the three
}

double Together::at(double cores, double rows) const {
  if (ranks < 2 || slowdown.size.empty() || cores <= 1) return 1;
  const double f = std::max(1.0, slowdown.at(rows));
  return 1 + (f - 1) * (std::min(cores, double(ranks)) - 1) / double(ranks - 1);
}

double ProductCosts::seconds(double rows, double K, double N, double weight_bytes) const {
  if (rows <= 0 || K <= 0 || N <= 0) return 0;
  MO_CHECK(!classes.empty());
  // The two classes around this weight's bytes, and how far between them it sits in log bytes.
  size_t i = 1;
  while (i + 1 < classes.size() && classes[i].bytes < weight_bytes) ++i;
  const ProductClass& a = classes[classes.size() > 1 ? i - 1 : 0];  // one class: itself
  const ProductClass& b = classes[std::min(i, classes.size() - 1)];
  double f = b.bytes > a.bytes ? std::log(std::max(weight_bytes, 1.0) / a.bytes) / std::log(b.bytes / a.bytes) : 0;
  f = std::clamp(f, 0.0, 1.0);
  const double spf = std::exp(std::log(a.curve.at_plateau(rows)) * (1 - f) + std::log(b.curve.at_plateau(rows)) * f);
  return std::max(call_s, 2 * rows * K * N * spf);
}

double LinkFit::seconds(double bytes, int n) const {
  if (n <= 1) return 0;
  MO_CHECK(!ranks.empty());
  size_t i = 0;
  while (i + 1 < ranks.size() && ranks[i] < n) ++i;
  if (n <= ranks[i] && i < measured.size()) {
    const CostCurve& c = measured[i];
    const double top = c.size.back();
    return bytes <= top ? c.at(bytes) : c.at(top) + (bytes - top) / (gbps[i] * 1e9);
  }
  const double lat = n > ranks[i] ? latency_s[i] * double(n - 1) / double(ranks[i] - 1) : latency_s[i];
  return lat + bytes / (gbps[i] * 1e9);
}

std::string MachineProfile::key(const std::string& compute, const std::string& dtype, int t) {
  return compute + "/" + dtype + "/" + std::to_string(t);
}

double slowest_pace(const std::vector<double>& gflops) {
  if (gflops.empty()) return 1;
  return *std::min_element(gflops.begin(), gflops.end()) / *std::max_element(gflops.begin(), gflops.end());
}

double MachineProfile::slowest_core_pace() const {
  const auto it = machine.find("core_gflops");
  if (it == machine.end() || !it->is_array()) return 1;
  std::vector<double> g;
  for (const auto& x : *it)
    if (x.is_number()) g.push_back(x.get<double>());
  return slowest_pace(g);
}

std::pair<double, double> MachineProfile::memory_range() const {
  const auto it = machine.find("memory_gbps");
  std::vector<double> g;
  if (it != machine.end() && it->is_array())
    for (const auto& x : *it)
      if (x.is_number() && x.get<double>() > 0) g.push_back(x.get<double>());
  if (g.empty()) return {0, 0};
  return {*std::min_element(g.begin(), g.end()), *std::max_element(g.begin(), g.end())};
}

bool MachineProfile::links_only_past_cores() const {
  const auto cores = machine.find("cores");
  const auto ag = links.find("intra.allgather");
  if (cores == machine.end() || !cores->is_number() || ag == links.end() || ag->second.ranks.empty()) return false;
  return links.count("intra_cores.allgather") == 0 && ag->second.ranks.back() > cores->get<int>();
}

int MachineProfile::nearest_threads(int t) const {
  MO_CHECK(!threads.empty());
  int best = threads.front();
  for (int x : threads)
    if (x <= t) best = std::max(best, x);
  return best;
}

namespace {
template <class M>
const auto& find_in(const M& m, const std::string& k, const char* what) {
  auto it = m.find(k);
  MO_REQUIRE(it != m.end(), "the machine profile has no ", what, " costs for ", k,
             std::string(what) == "collective"
                 ? " (calibrate under mpirun with as many ranks as a node runs)"
                 : " (calibrate with those threads, or pick another compute path)");
  return it->second;
}
}  // namespace

const ProductCosts& MachineProfile::product(const std::string& c, const std::string& d, int t) const {
  return find_in(products, key(c, d, nearest_threads(t)), "product");
}
const ProductCosts& MachineProfile::expert(const std::string& c, const std::string& d, int t) const {
  return find_in(experts, key(c, d, nearest_threads(t)), "expert");
}
const LinkFit& MachineProfile::link(const std::string& name) const {
  return find_in(links, name, "collective");
}

// ---- JSON ----

namespace {
ojson curve_json(const CostCurve& c) { return {{"size", c.size}, {"per_unit", c.per_unit}}; }
ojson product_json(const ProductCosts& p) {
  ojson c = ojson::array();
  for (const ProductClass& k : p.classes) c.push_back({{"bytes", k.bytes}, {"curve", curve_json(k.curve)}});
  return {{"classes", c}, {"call_s", p.call_s}};
}

// Reading: every field present, every number finite and positive (a cost of 0 would make a
// plan free), sizes increasing. Errors name the path inside the file.
struct Reader {
  std::string file;
  [[noreturn]] void bad(const std::string& where, const std::string& what) const {
    fail("machine profile ", file, ": ", where, " ", what,
         " (make a new one with `modelone bench calibrate --out FILE`)");
  }
  const ojson& at(const ojson& j, const char* k, const std::string& where) const {
    if (!j.is_object() || !j.contains(k)) bad(where, std::string("has no \"") + k + "\"");
    return j[k];
  }
  double value(const ojson& v, const std::string& where, bool zero_ok = false) const {
    if (!v.is_number()) bad(where, "is not a number");
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < 0 || (!zero_ok && x == 0)) bad(where, "is not a positive number");
    return x;
  }
  double num(const ojson& j, const char* k, const std::string& where, bool zero_ok = false) const {
    return value(at(j, k, where), where + "." + k, zero_ok);
  }
  CostCurve curve(const ojson& j, const std::string& where) const {
    CostCurve c;
    const ojson &s = at(j, "size", where), &u = at(j, "per_unit", where);
    if (!s.is_array() || !u.is_array() || s.empty() || s.size() != u.size())
      bad(where, "needs equal, non-empty size and per_unit lists");
    for (size_t i = 0; i < s.size(); ++i) {
      if (!s[i].is_number() || !u[i].is_number()) bad(where, "holds a value that is not a number");
      c.size.push_back(s[i].get<double>());
      c.per_unit.push_back(u[i].get<double>());
      if (!(c.size[i] > 0) || !(c.per_unit[i] > 0) || !std::isfinite(c.size[i]) || !std::isfinite(c.per_unit[i]))
        bad(where, "holds a value that is not positive");
      if (i > 0 && !(c.size[i] > c.size[i - 1])) bad(where, "sizes do not increase");
    }
    return c;
  }
  ProductCosts product(const ojson& j, const std::string& w) const {
    ProductCosts p;
    const ojson& cs = at(j, "classes", w);
    if (!cs.is_array() || cs.empty()) bad(w + ".classes", "is not a non-empty list");
    for (size_t i = 0; i < cs.size(); ++i) {
      const std::string wi = w + ".classes[" + std::to_string(i) + "]";
      p.classes.push_back({num(cs[i], "bytes", wi), curve(at(cs[i], "curve", wi), wi + ".curve")});
      if (i > 0 && !(p.classes[i].bytes > p.classes[i - 1].bytes)) bad(wi, "bytes do not increase");
    }
    p.call_s = num(j, "call_s", w);
    return p;
  }
  std::vector<double> list(const ojson& j, const char* k, const std::string& w, bool zero_ok) const {
    const ojson& v = at(j, k, w);
    if (!v.is_array() || v.empty()) bad(w + "." + k, "is not a non-empty list");
    std::vector<double> out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(value(v[i], w + "." + k + "[" + std::to_string(i) + "]", zero_ok));
    return out;
  }
  LinkFit link(const ojson& j, const std::string& w) const {
    LinkFit l;
    for (double n : list(j, "ranks", w, false)) {
      if (n < 2 || n != double(int(n)) || (!l.ranks.empty() && int(n) <= l.ranks.back()))
        bad(w + ".ranks", "must be increasing group sizes of 2 or more");
      l.ranks.push_back(int(n));
    }
    l.latency_s = list(j, "latency_s", w, true);
    l.gbps = list(j, "gbps", w, false);
    if (l.latency_s.size() != l.ranks.size() || l.gbps.size() != l.ranks.size())
      bad(w, "needs one latency and bandwidth per group size");
    if (j.contains("measured")) {  // newer profiles
      const ojson& m = j.at("measured");
      if (!m.is_array() || m.size() != l.ranks.size()) bad(w + ".measured", "needs one curve per group size");
      for (size_t i = 0; i < m.size(); ++i) l.measured.push_back(curve(m[i], w + ".measured[" + std::to_string(i) + "]"));
    }
    return l;
  }
  int threads(const std::string& k, const std::string& where) const {
    try {
      size_t used = 0;
      const int t = std::stoi(k, &used);
      if (used == k.size() && t >= 1) return t;
    } catch (const std::exception&) {
    }
    bad(where + "." + k, "is not a thread count");
  }
};
}  // namespace

ojson MachineProfile::to_json() const {
  ojson j = {{"format", kFormat}, {"build", build}, {"machine", machine}, {"threads", threads},
            {"compute", compute}};
  for (auto& [k, p] : products) j["products"][k] = product_json(p);
  for (auto& [k, p] : experts) j["experts"][k] = product_json(p);
  for (auto& [t, a] : attention)
    j["attention"][std::to_string(t)] = {
        {"partial", curve_json(a.many.partial)}, {"index", curve_json(a.many.index)},
        {"partial_key", curve_json(a.many.partial_key)}, {"index_key", curve_json(a.many.index_key)},
        {"partial_one", curve_json(a.one.partial)}, {"index_one", curve_json(a.one.index)},
        {"partial_key_one", curve_json(a.one.partial_key)}, {"index_key_one", curve_json(a.one.index_key)}};
  for (auto& [t, g] : read_gbps) j["read_gbps"][std::to_string(t)] = g;
  j["links"] = ojson::object();  // empty on one rank: plan then prices no collective
  for (auto& [k, l] : links) {
    j["links"][k] = {{"ranks", l.ranks}, {"latency_s", l.latency_s}, {"gbps", l.gbps}};
    for (const CostCurve& c : l.measured) j["links"][k]["measured"].push_back(curve_json(c));
  }
  j["poll_share"] = poll_share;
  if (together.ranks > 1) j["together"] = {{"ranks", together.ranks}, {"slowdown", curve_json(together.slowdown)}};
  for (auto& [t, f] : fixed)
    j["fixed"][std::to_string(t)] = {{"per_layer_s", f.per_layer_s}, {"per_layer_width_s", f.per_layer_width_s},
                                     {"per_layer_power", f.per_layer_power}, {"per_row_s", f.per_row_s},
                                     {"per_row_width_s", f.per_row_width_s}, {"per_row_power", f.per_row_power},
                                     {"attention_decode", f.attention_decode}, {"moe_decode", f.moe_decode},
                                     {"attention_prefill", f.attention_prefill}, {"moe_prefill", f.moe_prefill}};
  return j;
}

namespace {
void read_tables(const Reader& r, const ojson& j, MachineProfile* p) {
  for (const char* section : {"products", "experts"}) {
    const ojson& s = r.at(j, section, "the file");
    if (!s.is_object() || s.empty()) r.bad(section, "is empty");
    auto& out = std::string(section) == "products" ? p->products : p->experts;
    for (auto& [k, v] : s.items()) out[k] = r.product(v, std::string(section) + "." + k);
  }
  for (auto& [k, v] : r.at(j, "attention", "the file").items()) {
    const std::string w = "attention." + k;
    auto curve = [&](const char* name) { return r.curve(r.at(v, name, w), w + "." + name); };
    // The key curves are newer: a profile without them prices no key term.
    auto key_curve = [&](const char* name) { return v.contains(name) ? curve(name) : CostCurve{}; };
    AttnCosts& a = p->attention[r.threads(k, "attention")];
    a.many = {curve("partial"), curve("index"), key_curve("partial_key"), key_curve("index_key")};
    a.one = {curve("partial_one"), curve("index_one"), key_curve("partial_key_one"), key_curve("index_key_one")};
  }
  for (auto& [k, v] : r.at(j, "read_gbps", "the file").items())
    p->read_gbps[r.threads(k, "read_gbps")] = r.value(v, "read_gbps." + k);
  for (auto& [k, v] : r.at(j, "links", "the file").items()) p->links[k] = r.link(v, "links." + k);
  if (j.contains("poll_share")) p->poll_share = r.value(j.at("poll_share"), "poll_share", true);  // newer
  if (j.contains("together")) {  // newer
    const ojson& t = j.at("together");
    const double k = r.num(t, "ranks", "together");
    if (k < 2 || k != std::floor(k) || k > 1e6) r.bad("together.ranks", "is not a count of ranks of at least 2");
    p->together = {int(k), r.curve(r.at(t, "slowdown", "together"), "together.slowdown")};
  }
  for (auto& [k, v] : r.at(j, "fixed", "the file").items()) {
    const std::string w = "fixed." + k;
    EngineFixed& f = p->fixed[r.threads(k, "fixed")];
    f = {r.num(v, "per_layer_s", w, true), r.num(v, "per_layer_width_s", w, true),
         r.num(v, "per_row_s", w, true), r.num(v, "per_row_width_s", w, true)};
    // Profiles written before the powers: linear terms.
    if (v.is_object() && v.contains("per_layer_power")) f.per_layer_power = r.num(v, "per_layer_power", w);
    if (v.is_object() && v.contains("per_row_power")) f.per_row_power = r.num(v, "per_row_power", w);
    for (auto [name, scale] : {std::pair{"attention_decode", &f.attention_decode}, {"moe_decode", &f.moe_decode},
                               {"attention_prefill", &f.attention_prefill}, {"moe_prefill", &f.moe_prefill}})
      if (v.is_object() && v.contains(name)) *scale = r.num(v, name, w);  // newer
  }
}
}  // namespace

MachineProfile read_machine_profile(const std::string& path, const std::string& build) {
  Reader r{path};
  std::ifstream f(path);
  MO_REQUIRE(f, "machine profile ", path, ": cannot be read");
  ojson j;
  try {
    j = ojson::parse(f);
  } catch (const std::exception&) {
    r.bad("the file", "is not JSON (corrupt or cut short)");
  }
  if (!j.is_object() || !j.contains("format") || j["format"] != MachineProfile::kFormat)
    r.bad("the file", std::string("is not a profile of format ") + MachineProfile::kFormat);
  MachineProfile p;
  const ojson& b = r.at(j, "build", "the file");
  if (!b.is_string()) r.bad("build", "is not a string");
  p.build = b.get<std::string>();
  if (!build.empty() && p.build != build)
    fail("machine profile ", path, ": made by another build of modelone (", p.build, ", this is ",
         build, "); calibrate again with this one: `modelone bench calibrate --out ", path, "`");
  p.machine = r.at(j, "machine", "the file");
  for (const ojson& t : r.at(j, "threads", "the file")) {
    if (!t.is_number_integer() || t.get<int>() < 1) r.bad("threads", "holds a bad thread count");
    p.threads.push_back(t.get<int>());
  }
  if (p.threads.empty()) r.bad("threads", "is empty");
  const ojson& c = r.at(j, "compute", "the file");
  if (!c.is_string() || (c != "bf16" && c != "fp32")) r.bad("compute", "is not bf16 or fp32");
  p.compute = c.get<std::string>();
  read_tables(r, j, &p);
  for (int t : p.threads)
    if (!p.attention.count(t) || !p.read_gbps.count(t) || !p.fixed.count(t))
      r.bad("the file", "lacks the attention, bandwidth or fixed costs of " + std::to_string(t) + " threads");
  return p;
}

void write_machine_profile(const std::string& path, const MachineProfile& p) {
  // Beside the file, then renamed over it: a failed write leaves the old profile whole.
  const std::string tmp = path + ".part";
  {
    std::ofstream f(tmp);
    MO_REQUIRE(f, "--out ", path, ": cannot be written");
    f << p.to_json().dump(1) << "\n";
    MO_REQUIRE(f.good(), "--out ", path, ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  MO_REQUIRE(!ec, "--out ", path, ": ", ec.message());
}

}  // namespace modelone
