// A made-up machine profile for the planner's tests (plan_test, cli_plan_test): round numbers,
// two thread counts, every dtype and collective, so tests need no calibration run.
#pragma once
#include <string>

#include "dist/plan/machine_profile.h"

namespace modelone::test {

MachineProfile made_up_profile(const std::string& build = "test-build");

}  // namespace modelone::test
