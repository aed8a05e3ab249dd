#include "tests/cli_support.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <sstream>

namespace modelone::test {

namespace fs = std::filesystem;

fs::path tmpdir() {
  static const fs::path d = [] {
    auto p = fs::temp_directory_path() / ("modelone_cli_" + std::to_string(::getpid()));
    // Pids come round again on a long-lived machine (pid_max 32768 here): an earlier process's
    // leftovers (a served job's rc file) would read as this one's server having ended.
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
  }();
  return d;
}

Result shell(const std::string& cmd, const std::string& files) {
  const fs::path out = tmpdir() / ("stdout" + files), err = tmpdir() / ("stderr" + files);
  const int st = std::system((cmd + " >" + out.string() + " 2>" + err.string()).c_str());
  auto slurp = [](const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, slurp(out), slurp(err)};
}

namespace {
std::string command_line(const std::string& args, int np) {
  std::string cmd = "timeout 120 ";
  if (np > 0) cmd += std::string(MODELONE_MPIEXEC) + " -n " + std::to_string(np) + " --oversubscribe ";
  return cmd + MODELONE_BIN + " " + args;
}
}  // namespace

Result run(const std::string& args, int np) { return shell(command_line(args, np)); }

Result run_with_env(const std::string& args, int np, const std::string& env) {
  static std::atomic<int> runs{0};
  std::string files = ".";  // (not "." + to_string(): g++ 12 warns of a -Wrestrict it imagines)
  files += std::to_string(++runs);
  return shell("env " + env + " " + command_line(args, np), files);
}

Result run_mpmd(const std::vector<Part>& parts) {
  std::string cmd = "timeout 120 " + std::string(MODELONE_MPIEXEC) + " --oversubscribe";
  for (size_t i = 0; i < parts.size(); ++i)
    cmd += std::string(i ? " :" : "") + " -n " + std::to_string(parts[i].np) + " " +
           parts[i].flags + " " + MODELONE_BIN + " " + parts[i].args;
  return shell(cmd);
}

std::vector<std::string> error_lines(const std::string& err) {
  std::vector<std::string> lines;
  std::stringstream ss(err);
  for (std::string l; std::getline(ss, l);)
    if (l.rfind("modelone: error:", 0) == 0) lines.push_back(l);
  return lines;
}

void expect_error(const std::string& args, const std::string& pattern, int np) {
  SCOPED_TRACE("modelone " + args + (np ? " (np " + std::to_string(np) + ")" : ""));
  const Result r = run(args, np);
  EXPECT_EQ(r.code, 2) << (r.code == 124 ? "timed out: a rank hung" : r.err);
  const auto lines = error_lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_TRUE(std::regex_search(lines[0], std::regex(pattern))) << lines[0];
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace modelone::test
