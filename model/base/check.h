// Errors for the whole project: a failed check throws modelone::Error carrying one line that
// names what is wrong (and, for internal invariants, file:line). The command layer turns it into
// "modelone: error: ..." and a non-zero exit on every rank.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace modelone {

// A user-facing error: bad flag, config, checkpoint, token id. The message is the whole story.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... R>
void append(std::ostringstream& os, const T& v, const R&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Text from a user's file as it can go into a one-line message: control and non-ASCII bytes as
// \xNN (a binary file must not put escape sequences on the terminal), cut after 40 bytes.
inline std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      const char* hex = "0123456789abcdef";
      out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
    }
  }
  return s.size() > 40 ? out + "..." : out;
}

template <class... A>
std::string str_cat(const A&... a) {
  std::ostringstream os;
  detail::append(os, a...);
  return os.str();
}

template <class... A>
[[noreturn]] void fail(const A&... a) {
  throw Error(str_cat(a...));
}

}  // namespace modelone

// User-facing check: the message must name the flag, file or tensor.
#define MO_REQUIRE(cond, ...)                 \
  do {                                        \
    if (!(cond)) ::modelone::fail(__VA_ARGS__); \
  } while (0)

// Internal invariant: reaching it is a bug, so say where.
#define MO_CHECK(cond, ...)                                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      ::modelone::fail("internal check failed at ", __FILE__, ":", __LINE__, ": " #cond, \
                       " " __VA_OPT__(, ::modelone::str_cat(__VA_ARGS__)));              \
  } while (0)
