// GoogleTest main for every test binary: MPI is initialised once for the process (tests run
// single-rank here, or as one of N ranks under mpiexec).
#include <gtest/gtest.h>

#include "comm/comm.h"

int main(int argc, char** argv) {
  modelone::comm::Runtime runtime(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  // Under mpiexec an exception on one rank must end the job: caught by gtest, it would leave
  // the other ranks waiting in a collective until the ctest timeout.
  if (modelone::comm::Comm::world().size() > 1) ::testing::GTEST_FLAG(catch_exceptions) = false;
  // Only rank 0 prints results, so N ranks do not interleave N copies of the report.
  if (modelone::comm::Comm::world().rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  return RUN_ALL_TESTS();
}
