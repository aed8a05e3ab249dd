// The binding report run prints in its first lines (dist/binding.h): cpu lists both ways, the
// NUMA domains read from a node tree, and the warnings for a layout that wastes the node.
#include <gtest/gtest.h>

#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "dist/binding.h"
#include "model/base/check.h"

namespace modelone {
namespace {

bool has(const std::vector<std::string>& lines, const std::string& part) {
  for (const auto& l : lines)
    if (l.find(part) != std::string::npos) return true;
  return false;
}

TEST(Binding, CpuListsBothWays) {
  EXPECT_EQ(cpu_list_text({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(cpu_list_text({5}), "5");
  EXPECT_EQ(cpu_list_text({}), "");
  EXPECT_EQ(parse_cpu_list("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpu_list("7"), (std::vector<int>{7}));
  EXPECT_TRUE(parse_cpu_list("\n").empty());  // a memory-only NUMA node lists no cpus
  for (const char* bad : {"3-1", "a", "1-", "-2", "1,,2", "0-3x"})
    EXPECT_THROW(parse_cpu_list(bad), Error) << bad;
}

TEST(Binding, NumaDomainsFromTheNodeTree) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("binding_test_" + std::to_string(getpid()));
  // cpu 0 in node 0, every other cpu in node 1.
  fs::create_directories(root / "node0");
  fs::create_directories(root / "node1");
  std::ofstream(root / "node0" / "cpulist") << "0\n";
  std::ofstream(root / "node1" / "cpulist") << "1-4095\n";
  const RankPlace p = this_place(3, root.string());
  fs::remove_all(root);
  ASSERT_FALSE(p.cpus.empty());
  EXPECT_FALSE(p.host.empty());
  EXPECT_EQ(p.threads, 3);
  std::vector<int> want;
  if (p.cpus.front() == 0) want.push_back(0);
  if (p.cpus.back() > 0) want.push_back(1);
  EXPECT_EQ(p.numa, want);
  // No tree at all: no domains, no error.
  EXPECT_TRUE(this_place(1, (root / "absent").string()).numa.empty());
}

TEST(Binding, LinesAndWarnings) {
  // Two ranks a core each on one host: one line, no warning.
  auto lines = binding_lines({{"a", {0}, {0}, 1}, {"a", {1}, {0}, 1}});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "binding: host a: rank 0 cpus 0 (numa 0) x 1 thread; rank 1 cpus 1 (numa 0) x 1 thread");
  // Two hosts: a line each.
  lines = binding_lines({{"a", {0, 1}, {0}, 2}, {"b", {0, 1}, {0}, 2}});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "binding: host b: rank 1 cpus 0-1 (numa 0) x 2 threads");
  // Unbound ranks sharing the cores with two threads each: the host is oversubscribed.
  lines = binding_lines({{"a", {0, 1}, {0}, 2}, {"a", {0, 1}, {0}, 2}});
  EXPECT_TRUE(has(lines, "warning: host a runs 4 threads on 2 cpu(s)")) << lines.back();
  // More threads than bound cpus.
  lines = binding_lines({{"a", {3}, {}, 4}});
  EXPECT_EQ(lines[0], "binding: host a: rank 0 cpus 3 x 4 threads");
  EXPECT_TRUE(has(lines, "warning: rank 0 runs 4 threads on 1 bound cpu(s)"));
  // A rank over two NUMA domains.
  lines = binding_lines({{"a", {0, 1, 2, 3}, {0, 1}, 4}});
  EXPECT_TRUE(has(lines, "note: rank 0's cpus span numa 0-1"));
}

TEST(Binding, RoundRobinOnAnOversubscribedNode) {
  const std::vector<int> two = {0, 1}, four = {4, 5, 6, 7};
  // Four single-thread ranks on two cpus: alternate, so ranks 0 and 1 (one cp group) never share.
  EXPECT_EQ(round_robin_cpus(two, 0, 4, 1), (std::vector<int>{0}));
  EXPECT_EQ(round_robin_cpus(two, 1, 4, 1), (std::vector<int>{1}));
  EXPECT_EQ(round_robin_cpus(two, 2, 4, 1), (std::vector<int>{0}));
  EXPECT_EQ(round_robin_cpus(two, 3, 4, 1), (std::vector<int>{1}));
  // Four ranks of two threads on four cpus: consecutive cpus of the pool, wrapping.
  EXPECT_EQ(round_robin_cpus(four, 0, 4, 2), (std::vector<int>{4, 5}));
  EXPECT_EQ(round_robin_cpus(four, 1, 4, 2), (std::vector<int>{6, 7}));
  EXPECT_EQ(round_robin_cpus(four, 2, 4, 2), (std::vector<int>{4, 5}));
  EXPECT_EQ(round_robin_cpus(four, 3, 4, 3), (std::vector<int>{5, 6, 7}));  // 9, 10, 11 mod 4
  // Nothing to gain: no more threads than cpus, a rank with threads for the whole pool, no pool.
  EXPECT_TRUE(round_robin_cpus(two, 0, 2, 1).empty());
  EXPECT_TRUE(round_robin_cpus(four, 1, 4, 1).empty());
  EXPECT_TRUE(round_robin_cpus(two, 0, 4, 2).empty());
  EXPECT_TRUE(round_robin_cpus({}, 0, 4, 1).empty());
  // Threads that do not split evenly (3 on 2 cpus, 6 on 4): the scheduler balances them better.
  EXPECT_TRUE(round_robin_cpus(two, 0, 3, 1).empty());
  EXPECT_TRUE(round_robin_cpus(four, 2, 3, 2).empty());
}

// calibrate times its thread counts on every cpu the job holds, whatever core the launcher bound
// rank 0 to: the process's threads move, those already running too, and move back.
TEST(Binding, BindsTheWholeProcessAndBack) {
  const std::vector<int> was = bound_cpus();
  ASSERT_FALSE(was.empty());
  EXPECT_EQ(node_job_cpus(comm::Comm::world().split_shared()), was);  // one rank: its own cpus
  std::promise<void> bound;
  std::promise<std::vector<int>> seen;
  std::thread running([&] {  // started before the bind: moves with the process
    bound.get_future().wait();
    seen.set_value(bound_cpus());
  });
  bind_process({was.back()});
  EXPECT_EQ(bound_cpus(), (std::vector<int>{was.back()}));
  bound.set_value();
  EXPECT_EQ(seen.get_future().get(), (std::vector<int>{was.back()}));
  running.join();
  std::vector<int> started;
  std::thread([&] { started = bound_cpus(); }).join();  // started after it: inherits it
  EXPECT_EQ(started, (std::vector<int>{was.back()}));
  bind_process(was);
  EXPECT_EQ(bound_cpus(), was);
}

}  // namespace
}  // namespace modelone
