// The built-in presets: model/config/presets/*.pbtxt compiled into the binary (see model/CMakeLists.txt).
#pragma once
#include <string>
#include <vector>

namespace modelone {

struct EmbeddedPreset {
  std::string name;  // file name without .pbtxt
  std::string text;
};
const std::vector<EmbeddedPreset>& embedded_presets();

}  // namespace modelone
