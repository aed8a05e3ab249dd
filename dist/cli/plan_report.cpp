// `modelone plan`'s output formats (see plan_report.h).
#include "dist/cli/plan_report.h"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace modelone {

using ojson = nlohmann::ordered_json;  // keys in the order written

namespace {

double gib(double b) { return b / double(1ll << 30); }

ojson parts_json(const StepCost& s) {
  ojson j = ojson::object();
  for (const std::string& p : kPlanParts) {
    const PartTime& t = s.parts.at(p);
    j[p] = {{"compute_s", t.compute}, {"exchange_s", t.exchange}, {"wait_s", t.wait}};
  }
  return j;
}

// One layout's figures (flat: the csv and md columns), the parts as seconds of one decode step
// and of the whole prefill.
ojson row_json(const PlanRow& r) {
  const PlanLayout& l = r.layout;
  ojson j = {{"nodes", l.nodes}, {"ranks_per_node", l.ranks_per_node}, {"threads", l.threads},
            {"world", l.world()}, {"cp", l.cp}, {"ep", l.ep}, {"dp", l.dp()},
            {"memory_gib_per_rank", gib(double(r.memory_total))}, {"fits", r.fits},
            {"prefill_tokens_per_second", r.p.prefill_tokens_per_second},
            {"ttft_seconds", r.p.ttft_seconds}, {"decode_ms_per_token", r.p.decode_ms_per_token},
            {"decode_tokens_per_second", r.p.decode_tokens_per_second}};
  double dec_exch = 0;
  for (const std::string& p : kPlanParts) {
    const PartTime& t = r.p.decode.parts.at(p);
    j["decode_" + p + "_ms"] = t.total() * 1e3;
    dec_exch += t.exchange + t.wait;
  }
  j["decode_exchange_and_wait_fraction"] = dec_exch / r.p.decode.total();
  return j;
}

ojson header_json(const PlanReport& r) {
  return {{"model", r.cfg.name}, {"context", r.q.work.context}, {"batch", r.q.work.batch},
          {"compute", r.q.work.compute}, {"weights", r.q.work.dense_dtype + " dense, " + r.q.work.expert_dtype + " experts"},
          {"network", r.q.net.describe()}, {"goal", r.q.goal},
          {"node_memory_gib", gib(r.q.node_memory_bytes)}, {"cores_per_node", r.q.work.cores_per_node},
          {"machine", r.prof.machine}};
}

void print_table(const std::vector<ojson>& rows, const std::string& format) {
  if (rows.empty()) return;
  const char* sep = format == "csv" ? "," : " | ";
  std::string line = format == "md" ? "| " : "";
  for (auto& [k, v] : rows[0].items()) line += k + sep;
  line.resize(line.size() - (format == "csv" ? 1 : 1));
  std::printf("%s\n", line.c_str());
  if (format == "md") {
    std::string rule = "|";
    for (size_t i = 0; i < rows[0].size(); ++i) rule += "---|";
    std::printf("%s\n", rule.c_str());
  }
  for (const ojson& r : rows) {
    line = format == "md" ? "| " : "";
    for (auto& [k, v] : r.items()) {
      char b[64];
      if (v.is_number_float()) std::snprintf(b, sizeof b, "%.4g", v.get<double>());
      else std::snprintf(b, sizeof b, "%s", v.dump().c_str());
      line += std::string(b) + sep;
    }
    line.resize(line.size() - 1);
    std::printf("%s\n", line.c_str());
  }
}

void print_text(const PlanReport& r, const std::vector<PlanRow>& rows) {
  const PlanWork& w = r.q.work;
  std::printf("plan        %s, %lld-token context, batch %lld, %s compute, %s dense / %s experts, "
              "%s cache\n", r.cfg.name.c_str(), (long long)w.context, (long long)w.batch,
              w.compute.c_str(), w.dense_dtype.c_str(), w.expert_dtype.c_str(),
              std::string(dtype_name(r.q.kv_dtype)).c_str());
  std::printf("machine     %s (profile); %d cores and %.1f GiB per node; %s\n",
              r.prof.machine.value("cpu", std::string("?")).c_str(), w.cores_per_node,
              gib(r.q.node_memory_bytes), r.q.net.describe().c_str());
  const std::string head = "layout (best first by " + r.q.goal + ")";
  std::printf("%-44s %9s %4s %12s %10s %11s %11s\n", head.c_str(),
              "GiB/rank", "fits", "prefill t/s", "TTFT s", "decode ms", "decode t/s");
  for (size_t i = 0; i < rows.size() && int(i) < r.top; ++i) {
    const PlanRow& x = rows[i];
    std::printf("%-44s %9.2f %4s %12.1f %10.3f %11.3f %11.2f\n", x.layout.describe().c_str(),
                gib(double(x.memory_total)), x.fits ? "yes" : "no", x.p.prefill_tokens_per_second,
                x.p.ttft_seconds, x.p.decode_ms_per_token, x.p.decode_tokens_per_second);
  }
  const PlanRow& b = rows.front();
  std::printf("best        %s%s\n", b.layout.describe().c_str(), b.fits ? "" : " (does NOT fit the memory)");
  std::printf("%-13s %14s %14s %14s %16s %16s %14s\n", "part", "prefill comp", "prefill exch",
              "prefill wait", "decode comp ms", "decode exch ms", "decode wait ms");
  for (const std::string& p : kPlanParts) {
    const PartTime &a = b.p.prefill.parts.at(p), &d = b.p.decode.parts.at(p);
    std::printf("%-13s %12.3f s %12.3f s %12.3f s %16.3f %16.3f %14.3f\n", p.c_str(), a.compute,
                a.exchange, a.wait, d.compute * 1e3, d.exchange * 1e3, d.wait * 1e3);
  }
  if (b.p.extrapolated_threads)
    std::printf("note        more threads than the profile calibrated (%d): scaled linearly\n",
                r.prof.threads.back());
}

}  // namespace

void print_plan(const PlanReport& r, const std::vector<PlanRow>& rows) {
  if (r.format == "text") return print_text(r, rows);
  if (r.format == "json") {
    const PlanRow& b = rows.front();
    ojson j = header_json(r);
    const ojson best = row_json(b);  // items() of a temporary would dangle
    for (auto& [k, v] : best.items()) j[k] = v;
    j["prefill_parts"] = parts_json(b.p.prefill);
    j["decode_parts"] = parts_json(b.p.decode);
    j["layouts"] = ojson::array();
    for (const PlanRow& x : rows) j["layouts"].push_back(row_json(x));
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::vector<ojson> t;
  for (size_t i = 0; i < rows.size() && int(i) < r.top; ++i) t.push_back(row_json(rows[i]));
  print_table(t, r.format);
}

void print_plan_sweep(const PlanReport& r, const std::vector<PlanRow>& best) {
  std::vector<ojson> t;
  for (const PlanRow& x : best) t.push_back(row_json(x));
  if (r.format == "json") {
    ojson j = header_json(r);
    j["sweep"] = t;
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  if (r.format == "text")
    std::printf("sweep       %s, best layout by %s at each node count; %s\n", r.cfg.name.c_str(),
                r.q.goal.c_str(), r.q.net.describe().c_str());
  print_table(t, r.format == "text" ? "md" : r.format);
}

}  // namespace modelone
