#include "bench/bench_report.h"

#include <cblas.h>
#include <dnnl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "bench/bench_util.h"
#include "comm/comm.h"
#include "dist/malloc_policy.h"
#include "model/base/check.h"
#include "model/base/cpu_features.h"
#include "model/kernels/linear.h"

namespace modelone::bench {

namespace {

enum class Format { Text, Markdown, Csv, Json, JsonLines };

// The report of the benchmark now running. One per process: a bench subcommand runs one
// benchmark, and its Lines reach the report through Line::print without being passed it.
struct State {
  Format format = Format::Text;
  int reps = 1;
  bool collect = false;      // lines kept per run and printed aggregated at the end
  bool root = true;          // world rank 0: the only rank that prints
  bool header_done = false;  // streaming: the machine line went out before the first result
  std::vector<std::vector<Line>> runs;
};
State& state() {
  static State s;
  return s;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

std::string num(double v, int precision) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", precision, v);
  return b;
}

// One case: a Line's identity and its measurements and notes from every run it appeared in.
struct Case {
  std::string tag;
  std::vector<Line::Field> ids;
  struct Series {
    std::string key;
    int precision = 4;
    std::vector<double> values;
  };
  std::vector<Series> measures;
  struct Notes {
    std::string key;
    std::vector<std::string> values;
  };
  std::vector<Notes> notes;
  int n = 0;  // runs it appeared in
};

template <class T> T& by_key(std::vector<T>& v, const std::string& key) {
  for (T& x : v)
    if (x.key == key) return x;
  v.push_back(T{});
  v.back().key = key;
  return v.back();
}

std::vector<Case> aggregate(const std::vector<std::vector<Line>>& runs) {
  std::vector<Case> cases;
  std::map<std::string, size_t> index;
  for (const auto& run : runs) {
    std::map<std::string, int> seen;  // a case printed twice in one run stays two cases
    for (const Line& l : run) {
      std::string id = l.tag();
      for (const Line::Field& f : l.fields())
        if (f.kind == Line::Kind::Identity) id += '\x1f' + f.key + '=' + f.text;
      id += '\x1f' + std::to_string(seen[id]++);
      auto [it, fresh] = index.emplace(id, cases.size());
      if (fresh) {
        cases.push_back(Case{});
        cases.back().tag = l.tag();
        for (const Line::Field& f : l.fields())
          if (f.kind == Line::Kind::Identity) cases.back().ids.push_back(f);
      }
      Case& c = cases[it->second];
      ++c.n;
      for (const Line::Field& f : l.fields()) {
        if (f.kind == Line::Kind::Measure) {
          Case::Series& s = by_key(c.measures, f.key);
          s.precision = f.precision;
          s.values.push_back(f.value);
        } else if (f.kind == Line::Kind::Note) {
          by_key(c.notes, f.key).values.push_back(f.text);
        }
      }
    }
  }
  return cases;
}

std::string joined(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// "median (mean ± sd)" pieces as the text and md formats print them: the field's own digits,
// two for the sd (its own uncertainty is large at a handful of runs).
std::string mean_sd(const Stat& s, int precision) {
  return num(s.mean, precision) + " ± " + num(s.sd, 2);
}

void print_text(const std::vector<Case>& cases, const Machine& m, int reps) {
  std::printf("# machine: %s\n", m.line().c_str());
  if (reps > 1) std::printf("# %d repetitions: each measurement is median(mean±sd)\n", reps);
  for (const Case& c : cases) {
    std::string s = c.tag;
    for (const Line::Field& f : c.ids) s += " " + f.key + "=" + f.text;
    for (const Case::Series& x : c.measures) {
      const Stat st = summarize(x.values);
      s += " " + x.key + "=" + num(st.median, x.precision);
      if (reps > 1) s += "(" + num(st.mean, x.precision) + "±" + num(st.sd, 2) + ")";
    }
    for (const Case::Notes& x : c.notes) s += " " + x.key + "=" + joined(x.values, ";");
    std::printf("%s\n", s.c_str());
  }
}

// A field's columns: the union over the cases, in the order they first appear.
template <class F> std::vector<std::string> columns(const std::vector<const Case*>& cases, F keys) {
  std::vector<std::string> cols;
  for (const Case* c : cases)
    for (const std::string& k : keys(*c))
      if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
  return cols;
}
std::vector<std::string> id_keys(const Case& c) {
  std::vector<std::string> k;
  for (const auto& f : c.ids) k.push_back(f.key);
  return k;
}
std::vector<std::string> note_keys(const Case& c) {
  std::vector<std::string> k;
  for (const auto& f : c.notes) k.push_back(f.key);
  return k;
}
std::vector<std::string> measure_keys(const Case& c) {
  std::vector<std::string> k;
  for (const auto& f : c.measures) k.push_back(f.key);
  return k;
}
const Line::Field* find_id(const Case& c, const std::string& k) {
  for (const auto& f : c.ids)
    if (f.key == k) return &f;
  return nullptr;
}
template <class T> const T* find(const std::vector<T>& v, const std::string& k) {
  for (const T& x : v)
    if (x.key == k) return &x;
  return nullptr;
}

std::string md_cell(std::string s) {
  for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
  return s;
}

void print_md(const std::vector<Case>& cases, const Machine& m, int reps) {
  std::printf("machine: %s\n\n", m.line().c_str());
  std::vector<std::string> tags;
  for (const Case& c : cases)
    if (std::find(tags.begin(), tags.end(), c.tag) == tags.end()) tags.push_back(c.tag);
  for (const std::string& tag : tags) {
    std::vector<const Case*> mine;
    for (const Case& c : cases)
      if (c.tag == tag) mine.push_back(&c);
    const auto ids = columns(mine, id_keys), notes = columns(mine, note_keys),
               meas = columns(mine, measure_keys);
    std::vector<std::string> head = ids;
    head.insert(head.end(), notes.begin(), notes.end());
    for (const auto& k : meas) {
      head.push_back(k);
      if (reps > 1) head.push_back(k + " mean ± sd");
    }
    head.push_back("n");
    std::printf("### %s (%d repetition%s; median, then mean ± sd)\n\n|", tag.c_str(), reps,
                reps == 1 ? "" : "s");
    for (const auto& h : head) std::printf(" %s |", md_cell(h).c_str());
    std::printf("\n|");
    for (size_t i = 0; i < head.size(); ++i) std::printf(i < ids.size() + notes.size() ? " --- |" : " ---: |");
    std::printf("\n");
    for (const Case* c : mine) {
      std::vector<std::string> row;
      for (const auto& k : ids) row.push_back(find_id(*c, k) ? find_id(*c, k)->text : "");
      for (const auto& k : notes) row.push_back(find(c->notes, k) ? joined(find(c->notes, k)->values, "; ") : "");
      for (const auto& k : meas) {
        const Case::Series* x = find(c->measures, k);
        const Stat st = x ? summarize(x->values) : Stat{};
        row.push_back(x ? num(st.median, x->precision) : "");
        if (reps > 1) row.push_back(x ? mean_sd(st, x->precision) : "");
      }
      row.push_back(std::to_string(c->n));
      std::printf("|");
      for (const auto& v : row) std::printf(" %s |", md_cell(v).c_str());
      std::printf("\n");
    }
    std::printf("\n");
  }
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

// One table over every case: the union of the fields as columns (empty where a case has no such
// field), measurements as median, mean and sd columns, the machine repeated on every row so a
// row keeps its provenance when files are concatenated.
void print_csv(const std::vector<Case>& cases, const Machine& m) {
  std::vector<const Case*> all;
  for (const Case& c : cases) all.push_back(&c);
  const auto ids = columns(all, id_keys), notes = columns(all, note_keys),
             meas = columns(all, measure_keys);
  const std::vector<std::pair<std::string, std::string>> mach = {
      {"machine_cpu", m.cpu}, {"machine_cores", std::to_string(m.cores)},
      {"machine_ranks", std::to_string(m.ranks)}, {"machine_threads", std::to_string(m.threads)},
      {"machine_host", m.host}, {"machine_mpi", m.mpi}, {"machine_blas", m.blas},
      {"machine_onednn", m.onednn}, {"machine_compute", m.compute}, {"machine_date", m.date}};
  std::vector<std::string> head = {"bench"};
  head.insert(head.end(), ids.begin(), ids.end());
  head.insert(head.end(), notes.begin(), notes.end());
  for (const auto& k : meas)
    for (const char* s : {"_median", "_mean", "_sd"}) head.push_back(k + s);
  head.push_back("n");
  for (const auto& [k, v] : mach) head.push_back(k);
  std::vector<std::string> out;
  for (const auto& h : head) out.push_back(csv_cell(h));
  std::printf("%s\n", joined(out, ",").c_str());
  for (const Case* c : all) {
    out = {csv_cell(c->tag)};
    for (const auto& k : ids) out.push_back(csv_cell(find_id(*c, k) ? find_id(*c, k)->text : ""));
    for (const auto& k : notes)
      out.push_back(csv_cell(find(c->notes, k) ? joined(find(c->notes, k)->values, ";") : ""));
    for (const auto& k : meas) {
      const Case::Series* x = find(c->measures, k);
      const Stat st = x ? summarize(x->values) : Stat{};
      // Full precision: csv is read by programs, which should not inherit the text's rounding.
      for (double v : {st.median, st.mean, st.sd})
        out.push_back(x ? nlohmann::json(v).dump() : "");
    }
    out.push_back(std::to_string(c->n));
    for (const auto& [k, v] : mach) out.push_back(csv_cell(v));
    std::printf("%s\n", joined(out, ",").c_str());
  }
}

nlohmann::ordered_json case_json(const Case& c) {
  nlohmann::ordered_json r = nlohmann::ordered_json::object();
  r["bench"] = c.tag;
  for (const auto& f : c.ids) r[f.key] = nlohmann::ordered_json::parse(f.json);
  for (const auto& x : c.notes) r[x.key] = x.values;
  for (const auto& x : c.measures) {
    const Stat st = summarize(x.values);
    // The raw values too, so a reader can check or redo the statistics.
    r[x.key] = {{"median", st.median}, {"mean", st.mean}, {"sd", st.sd}, {"n", st.n},
                {"values", x.values}};
  }
  return r;
}

// The JSON-lines format's style ({"key": value, ...} with spaces), as one run prints it.
std::string json_line(const std::string& tag, const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string s = "{\"bench\": " + nlohmann::json(tag).dump();
  for (const auto& [k, v] : kv) s += ", " + nlohmann::json(k).dump() + ": " + v;
  return s + "}";
}

std::string machine_json_line(const Machine& m) {
  std::vector<std::pair<std::string, std::string>> kv;
  const nlohmann::ordered_json j = m.json();  // items() would dangle on a temporary
  for (const auto& [k, v] : j.items()) kv.push_back({k, v.dump()});
  return json_line("machine", kv);
}

void print_jsonl(const std::vector<Case>& cases, const Machine& m) {
  std::printf("%s\n", machine_json_line(m).c_str());
  for (const Case& c : cases) {
    std::vector<std::pair<std::string, std::string>> kv;
    const nlohmann::ordered_json j = case_json(c);
    for (const auto& [k, v] : j.items())
      if (k != "bench") kv.push_back({k, v.dump()});
    std::printf("%s\n", json_line(c.tag, kv).c_str());
  }
}

// One document, a result per line: valid JSON for a parser, and still readable and greppable.
void print_json(const std::vector<Case>& cases, const Machine& m, int reps) {
  std::printf("{\"machine\": %s,\n \"repetitions\": %d,\n \"results\": [", m.json().dump().c_str(), reps);
  for (size_t i = 0; i < cases.size(); ++i)
    std::printf("%s\n  %s", i ? "," : "", case_json(cases[i]).dump().c_str());
  std::printf("\n]}\n");
}

// One run's line exactly as modelone has always printed it.
void print_now(const Line& l, Format f) {
  State& s = state();
  if (!s.header_done) {
    const Machine m = this_machine();
    if (f == Format::JsonLines) std::printf("%s\n", machine_json_line(m).c_str());
    else std::printf("# machine: %s\n", m.line().c_str());
    s.header_done = true;
  }
  std::string out;
  if (f == Format::JsonLines) {
    std::vector<std::pair<std::string, std::string>> kv;
    for (const auto& x : l.fields()) kv.push_back({x.key, x.json});
    out = json_line(l.tag(), kv);
  } else {
    out = l.tag();
    for (const auto& x : l.fields()) out += " " + x.key + "=" + x.text;
  }
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
}

Format format_from(const ReportOptions& r) {
  if (r.json || r.output == "jsonl") return Format::JsonLines;
  if (r.output == "md") return Format::Markdown;
  if (r.output == "csv") return Format::Csv;
  if (r.output == "json") return Format::Json;
  if (r.output == "text") return Format::Text;
  throw Error("--output: '" + r.output + "' is not one of text, md, csv, json, jsonl");
}

}  // namespace

Stat summarize(std::vector<double> v) {
  Stat s;
  s.n = int(v.size());
  if (v.empty()) return s;
  s.median = median(v);
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / double(v.size() - 1));
  }
  return s;
}

Machine this_machine() {
  Machine m;
  std::ifstream in("/proc/cpuinfo");
  std::string line, name, family, model;
  while (std::getline(in, line) && (name.empty() || family.empty() || model.empty())) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string k = trim(line.substr(0, colon)), v = trim(line.substr(colon + 1));
    if (k == "model name" && name.empty()) name = v;
    if (k == "cpu family" && family.empty()) family = v;
    if (k == "model" && model.empty()) model = v;
  }
  m.cpu = name.empty() ? "unknown CPU" : name;
  if (!family.empty()) m.cpu += " (cpuid family " + family + " model " + model + ")";
  m.cores = int(sysconf(_SC_NPROCESSORS_ONLN));
  m.ranks = comm::Comm::world().size();
  m.threads = omp_get_max_threads();
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) m.host = host;
  m.mpi_detail = comm::library_version();
  m.mpi = m.mpi_detail.substr(0, m.mpi_detail.find_first_of(",\n"));
  const char* cfg = openblas_get_config();
  m.blas_config = cfg ? cfg : "";
  std::istringstream words(m.blas_config);
  std::string w1, w2;
  words >> w1 >> w2;
  m.blas = trim(w1 + " " + w2);
  const dnnl_version_t* dv = dnnl_version();
  m.onednn = "oneDNN " + std::to_string(dv->major) + "." + std::to_string(dv->minor) + "." +
             std::to_string(dv->patch);
  m.compute = compute_name(default_compute());
  m.features = cpu_features().str();
  const std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&now));
  m.date = date;
  m.malloc = malloc_settings();
  return m;
}

std::string Machine::line() const {
  return cpu + ", " + std::to_string(cores) + " cores, " + std::to_string(ranks) + " rank(s) x " +
         std::to_string(threads) + " threads, " + mpi + ", " + blas + ", " + onednn +
         ", compute: " + compute + " (" + features + "), host " + host + ", " + date;
}

nlohmann::ordered_json Machine::json() const {
  return {{"cpu", cpu}, {"cores", cores}, {"ranks", ranks}, {"threads", threads},
          {"host", host}, {"mpi", mpi}, {"mpi_detail", mpi_detail}, {"blas", blas},
          {"blas_config", blas_config}, {"onednn", onednn}, {"compute", compute},
          {"cpu_features", features}, {"date", date}, {"malloc", malloc}};
}

void report_line(const Line& l) {
  State& s = state();
  if (!s.root) return;
  if (s.collect) s.runs.back().push_back(l);
  else print_now(l, s.format);
}

int run_report(const ReportOptions& r, const std::function<int()>& body) {
  State& s = state();
  s = State{};
  s.format = format_from(r);
  s.reps = std::max(1, r.repetitions);
  s.collect = s.reps > 1 || (s.format != Format::Text && s.format != Format::JsonLines);
  s.root = comm::Comm::world().rank() == 0;
  int code = 0;
  for (int i = 0; i < s.reps && code == 0; ++i) {
    if (s.reps > 1 && s.root) std::fprintf(stderr, "bench: repetition %d of %d\n", i + 1, s.reps);
    s.runs.emplace_back();
    code = body();
  }
  if (s.collect && s.root) {
    const std::vector<Case> cases = aggregate(s.runs);
    const Machine m = this_machine();
    switch (s.format) {
      case Format::Text: print_text(cases, m, s.reps); break;
      case Format::Markdown: print_md(cases, m, s.reps); break;
      case Format::Csv: print_csv(cases, m); break;
      case Format::Json: print_json(cases, m, s.reps); break;
      case Format::JsonLines: print_jsonl(cases, m); break;
    }
    std::fflush(stdout);
  }
  s.runs.clear();
  return code;
}

}  // namespace modelone::bench
