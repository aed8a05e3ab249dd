// Running the modelone command from the command-line tests: one process, under mpiexec, or as an
// MPMD launch, with a time limit, stdout and stderr captured.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace modelone::test {

struct Result {
  int code;  // exit status; 124: the time limit (a rank hung)
  std::string out, err;
};

// A directory of this test process's own for output files.
std::filesystem::path tmpdir();

// Runs `cmd > stdout 2> stderr` through the shell and collects both (files stdoutFILES and
// stderrFILES in tmpdir(): a name of its own for a run beside others).
Result shell(const std::string& cmd, const std::string& files = "");

// `modelone ARGS` (under mpiexec -n np when np > 0), at most 120 s.
Result run(const std::string& args, int np = 0);

// As run(), with `env` ("VAR=VALUE ...") added to the environment of the job, and output files of
// its own: several may run at once, each from its own thread.
Result run_with_env(const std::string& args, int np, const std::string& env);

// An MPMD launch: each part runs `modelone args` on np ranks, with mpiexec flags of its own
// (-x VAR=...).
struct Part {
  int np;
  std::string args, flags;
};
Result run_mpmd(const std::vector<Part>& parts);

// The lines of stderr that are ours ("modelone: error: ...").
std::vector<std::string> error_lines(const std::string& err);

// The command fails with exit 2, one error line matching pattern (a regex), nothing on stdout.
void expect_error(const std::string& args, const std::string& pattern, int np = 0);

}  // namespace modelone::test
