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

}  // namespace modelone
