// StopStrings: see stop_strings.h.
#include "model/sample/stop_strings.h"

#include <algorithm>

#include "model/base/check.h"

namespace modelone {

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& s : stops_) {
    MO_REQUIRE(!s.empty(), "a stop string is empty");
    longest_ = std::max(longest_, s.size());
  }
}

std::string StopStrings::push(const std::string& piece) {
  if (stopped_) return {};
  const size_t before = text_.size();
  text_ += piece;
  if (stops_.empty()) {
    std::string out = text_.substr(shown_);
    shown_ = text_.size();
    return out;
  }
  // A stop completing now starts at most longest_ - 1 bytes before the piece.
  const size_t from = before >= longest_ ? before - (longest_ - 1) : 0;
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, text_.find(s, from));
  if (cut != std::string::npos) {
    text_.resize(cut);
    stopped_ = true;
    std::string out = text_.substr(std::min(shown_, text_.size()));
    shown_ = text_.size();
    return out;
  }
  // Hold back the longest tail that begins some stop string.
  size_t hold = 0;
  for (size_t k = std::min(longest_ - (longest_ > 0), text_.size()); k > 0 && !hold; --k)
    for (const std::string& s : stops_)
      if (s.size() > k && text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  const size_t safe = std::max(shown_, text_.size() - hold);
  std::string out = text_.substr(shown_, safe - shown_);
  shown_ = safe;
  return out;
}

std::string StopStrings::finish() {
  if (stopped_) return {};
  std::string out = text_.substr(shown_);
  shown_ = text_.size();
  return out;
}

}  // namespace modelone
