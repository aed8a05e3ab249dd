// GoogleTest main for every test binary: MPI is initialised once for the process (tests run
// single-rank here, or as one of N ranks under mpiexec).
#include <gtest/gtest.h>

#include <cstdio>

#include "comm/comm.h"

namespace {
// Ranks other than 0 print only their failures, each line prefixed with the rank, so a check that
// fails on rank 2 alone is seen (not just a bare non-zero exit) without N copies of the report.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n[rank %d] %s\n", rank_,
                 r.file_name() ? r.file_name() : "?", r.line_number(), rank_, r.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& t) override {
    if (t.result()->Failed())
      std::fprintf(stderr, "[rank %d] [  FAILED  ] %s.%s\n", rank_, t.test_suite_name(), t.name());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  modelone::comm::Runtime runtime(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  // Under mpiexec an exception on one rank must end the job: caught by gtest, it would leave
  // the other ranks waiting in a collective until the ctest timeout.
  const modelone::comm::Comm world = modelone::comm::Comm::world();
  if (world.size() > 1) ::testing::GTEST_FLAG(catch_exceptions) = false;
  if (world.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(world.rank()));
  }
  return RUN_ALL_TESTS();
}
