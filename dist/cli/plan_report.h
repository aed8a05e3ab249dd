// How `modelone plan` prints: text (a header, a table of layouts, the best one's breakdown), md,
// csv (one row per layout, the parts as columns) or json (one object: the best layout's figures
// at the top level, every layout under "layouts"); the node sweep likewise, one row per count.
#pragma once
#include <string>
#include <vector>

#include "dist/plan/plan_search.h"

namespace modelone {

struct PlanReport {
  const ModelConfig& cfg;
  const PlanQuery& q;
  const MachineProfile& prof;
  std::string format;  // text, md, csv, json
  int top = 8;
};

void print_plan(const PlanReport& r, const std::vector<PlanRow>& rows);
void print_plan_sweep(const PlanReport& r, const std::vector<PlanRow>& best_per_nodes);

}  // namespace modelone
