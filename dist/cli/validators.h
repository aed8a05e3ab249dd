// Checks for numeric flags with messages a user can read. CLI11's PositiveNumber and
// NonNegativeNumber print the whole range of a double ("Value -1 not in range 0.000000 to
// 17976931348623157...") and take "abc" for out of range.
#pragma once
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <string>

namespace modelone {

// A number above lo (strict) or at least lo; CLI11 prefixes the flag: "--generate: must be at
// least 0, got -3", "--engram-budget: 'abc' is not a number".
inline CLI::Validator number_from(double lo, bool strict) {
  const std::string rule = (strict ? "above " : "at least ") + CLI::detail::to_string(lo);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || errno == ERANGE) return "'" + s + "' is not a number";
        if (strict ? !(v > lo) : !(v >= lo)) return "must be " + rule + ", got " + s;
        return std::string();
      },
      "NUMBER " + rule, "number_from");
}
inline CLI::Validator positive() { return number_from(0, true); }
inline CLI::Validator non_negative() { return number_from(0, false); }

// Seconds in [lo, hi]: "--watchdog: must be seconds in [1, 86400], got '1e-9'".
inline CLI::Validator seconds_in(double lo, double hi) {
  const std::string rule = "[" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || errno == ERANGE || !(v >= lo && v <= hi))
          return "must be seconds in " + rule + ", got '" + s + "'";
        return std::string();
      },
      "SECONDS in " + rule, "seconds_in");
}

// A whole number in [lo, hi]: "--iters: must be a whole number in [1, 1000000], got 0".
inline CLI::Validator count_in(long long lo, long long hi) {
  const std::string rule = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
          return "must be a whole number in " + rule + ", got '" + s + "'";
        return std::string();
      },
      "INT in " + rule, "count_in");
}

}  // namespace modelone
