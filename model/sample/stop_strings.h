// Stop strings over text that arrives a piece at a time (a token's characters): the sequence
// ends where a stop string first completes, and the text is cut just before it (OpenAI's `stop`:
// the stop string itself is not returned). While text streams, a tail that could still grow into
// a stop string is held back, so no shown text is ever taken back.
#pragma once
#include <string>
#include <vector>

namespace modelone {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);  // empty strings are refused (Error)
  // Appends piece; returns the text that is now safe to show. After a stop, appends nothing.
  std::string push(const std::string& piece);
  // The text held back at the end of the sequence (nothing once stopped).
  std::string finish();
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }  // all text so far, cut at a stop

 private:
  std::vector<std::string> stops_;
  std::string text_;
  size_t shown_ = 0, longest_ = 0;
  bool stopped_ = false;
};

}  // namespace modelone
