// Where configs come from: built-in presets and .pbtxt files (strict protobuf text format),
// checkpoint config.json files (transformers' DeepseekV4Config keys, legacy ones included), and
// `--set key=value` overrides. All of them fill one pb::ModelConfig, resolved by
// config_from_proto().
#pragma once
#include <string>
#include <vector>

#include "model/config/config.h"
#include "model/config.pb.h"

namespace modelone {

// Parse protobuf text; an unknown field or a syntax error throws naming file, line and field.
pb::ModelConfig parse_pbtxt(const std::string& text, const std::string& filename);
pb::ModelConfig read_pbtxt_file(const std::string& path);

// A checkpoint's config.json. Keys that carry no model math (kConfigKeysIgnored) are skipped;
// any other key the loader does not read is added to `unread` (the caller reports them), never
// dropped silently.
pb::ModelConfig read_config_json(const std::string& path, std::vector<std::string>* unread = nullptr);

// Built-in presets (model/config/presets/*.pbtxt, compiled in).
std::vector<std::string> preset_names();
bool find_preset(const std::string& name, pb::ModelConfig* out);

// "key=value": key is a ModelConfig field (or rope_main.x / rope_compress.x); repeated fields
// take comma-separated values. Throws naming the key on an unknown field or a bad value.
void apply_override(pb::ModelConfig* cfg, const std::string& assignment);

}  // namespace modelone
