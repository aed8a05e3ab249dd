#include "model/config/config_io.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/base/check.h"
#include "model/config/presets.h"

namespace modelone {

namespace gp = google::protobuf;

namespace {

class FirstError : public gp::io::ErrorCollector {
 public:
  explicit FirstError(std::string file) : file_(std::move(file)) {}
  void AddError(int line, gp::io::ColumnNumber col, const std::string& msg) override {
    if (msg_.empty()) msg_ = str_cat(file_, ":", line + 1, ":", col + 1, ": ", msg);
  }
  void AddWarning(int, gp::io::ColumnNumber, const std::string&) override {}
  const std::string& message() const { return msg_; }

 private:
  std::string file_, msg_;
};

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  MO_REQUIRE(f.good(), "cannot open ", what, " '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

pb::ModelConfig parse_pbtxt(const std::string& text, const std::string& filename) {
  pb::ModelConfig cfg;
  gp::TextFormat::Parser parser;
  FirstError errors(filename);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &cfg))
    fail(errors.message().empty() ? filename + ": malformed config" : errors.message());
  return cfg;
}

pb::ModelConfig read_pbtxt_file(const std::string& path) {
  return parse_pbtxt(read_file(path, "config file"), path);
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (auto& p : embedded_presets()) names.push_back(p.name);
  return names;
}

bool find_preset(const std::string& name, pb::ModelConfig* out) {
  for (auto& p : embedded_presets())
    if (p.name == name) {
      *out = parse_pbtxt(p.text, "preset " + name + ".pbtxt");
      return true;
    }
  return false;
}

namespace {

using nlohmann::json;

// Set one scalar field of msg from a JSON value, by the field's protobuf type.
void set_from_json(gp::Message* msg, const gp::FieldDescriptor* f, const json& v,
                   const std::string& where) {
  const gp::Reflection* r = msg->GetReflection();
  auto bad = [&] { fail(where, ": '", f->name(), "' has an unexpected value ", v.dump()); };
  auto add_or_set = [&](auto setter, auto adder, auto value) {
    if (f->is_repeated()) (r->*adder)(msg, f, value);
    else (r->*setter)(msg, f, value);
  };
  switch (f->cpp_type()) {
    case gp::FieldDescriptor::CPPTYPE_INT64:
      if (!v.is_number_integer()) bad();
      add_or_set(&gp::Reflection::SetInt64, &gp::Reflection::AddInt64, v.get<int64_t>());
      break;
    case gp::FieldDescriptor::CPPTYPE_UINT64:
      if (!v.is_number_integer()) bad();
      add_or_set(&gp::Reflection::SetUInt64, &gp::Reflection::AddUInt64, v.get<uint64_t>());
      break;
    case gp::FieldDescriptor::CPPTYPE_DOUBLE:
      if (!v.is_number()) bad();
      add_or_set(&gp::Reflection::SetDouble, &gp::Reflection::AddDouble, v.get<double>());
      break;
    case gp::FieldDescriptor::CPPTYPE_BOOL:
      if (!v.is_boolean()) bad();
      add_or_set(&gp::Reflection::SetBool, &gp::Reflection::AddBool, v.get<bool>());
      break;
    case gp::FieldDescriptor::CPPTYPE_STRING:
      if (!v.is_string()) bad();
      add_or_set(&gp::Reflection::SetString, &gp::Reflection::AddString, v.get<std::string>());
      break;
    default: bad();
  }
}

// Keys of config.json that carry no model math, or belong to parts modelone does not run (the
// vision tower, DSpark's draft layers), or that the reader takes apart itself: skipped quietly.
bool ignored_key(const std::string& k) {
  static const char* const kKeys[] = {
      "architectures", "auto_map", "dtype", "torch_dtype", "transformers_version", "use_cache",
      "pad_token_id", "initializer_range", "attention_dropout", "attention_bias", "text_config",
      "vision_config", "image_token_id", "quantization_config", "rope_parameters",
      "compress_rates", "rope_scaling", "topk_method", "norm_topk_prob", "model_type"};
  for (const char* x : kKeys)
    if (k == x) return true;
  for (const char* prefix : {"dspark_", "vision_", "image_"})
    if (k.rfind(prefix, 0) == 0) return true;
  return false;
}

void fill_message(gp::Message* msg, const json& obj, const std::string& where,
                  std::vector<std::string>* unread = nullptr) {
  const gp::Descriptor* d = msg->GetDescriptor();
  for (auto& [key, v] : obj.items()) {
    const std::string k = key == "type" ? "rope_type" : key;  // legacy rope dicts say "type"
    const gp::FieldDescriptor* f = d->FindFieldByName(k);
    if (unread && !f && !ignored_key(key)) unread->push_back(key);
    if (!f || f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE || v.is_null()) continue;
    if (f->is_repeated()) {
      if (!v.is_array()) fail(where, ": '", key, "' must be a list");
      for (auto& e : v) set_from_json(msg, f, e, where);
    } else {
      set_from_json(msg, f, v, where);
    }
  }
}

}  // namespace

static pb::ModelConfig read_config_json_fields(const std::string& path,
                                               std::vector<std::string>* unread);

pb::ModelConfig read_config_json(const std::string& path, std::vector<std::string>* unread) {
  // Any JSON-library error left (a value of the wrong kind somewhere) still names the file.
  try {
    return read_config_json_fields(path, unread);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": ", e.what());
  }
}

static pb::ModelConfig read_config_json_fields(const std::string& path,
                                               std::vector<std::string>* unread) {
  const std::string text = read_file(path, "checkpoint config");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  MO_REQUIRE(j.is_object(), path, ": expected a JSON object");
  if (j.contains("model_type") && j["model_type"].is_string())
    MO_REQUIRE(j["model_type"] == "deepseek_v4" || j["model_type"] == "deepseek_v41", path,
               ": model_type is '", j["model_type"].get<std::string>(),
               "', expected deepseek_v4 or deepseek_v41");
  // Nested text_config (multimodal wrappers) holds the language model.
  const json& c = j.contains("text_config") && j["text_config"].is_object() ? j["text_config"] : j;
  pb::ModelConfig cfg;
  json flat = c;
  // eos_token_id may be a list: the first id is the one generation stops on.
  if (flat.contains("eos_token_id") && flat["eos_token_id"].is_array())
    flat["eos_token_id"] = flat["eos_token_id"].empty() ? json() : flat["eos_token_id"][0];
  fill_message(&cfg, flat, path, unread);
  // The architecture is the top level's model_type (text_config says deepseek_v41_text).
  if (j.contains("model_type") && j["model_type"].is_string())
    cfg.set_model_type(j["model_type"].get<std::string>());
  else if (cfg.model_type() == "deepseek_v41_text")
    cfg.set_model_type("deepseek_v41");
  if (c.contains("compress_rates") && c["compress_rates"].is_object()) {
    auto& r = c["compress_rates"];
    auto rate = [&](const char* key) {
      MO_REQUIRE(r[key].is_number_integer(), path, ": compress_rates.", key,
                 " must be an integer, got ", r[key].dump());
      return r[key].get<int64_t>();
    };
    if (r.contains("compressed_sparse_attention")) cfg.set_compress_rate_csa(rate("compressed_sparse_attention"));
    if (r.contains("heavily_compressed_attention")) cfg.set_compress_rate_hca(rate("heavily_compressed_attention"));
  }
  // rope_parameters: nested {main, compress}, or (legacy) one flat dict like rope_scaling.
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) {
    auto& rp = c["rope_parameters"];
    if (rp.contains("main") && rp["main"].is_object() && rp.contains("compress") &&
        rp["compress"].is_object()) {
      fill_message(cfg.mutable_rope_main(), rp["main"], path + ": rope_parameters.main");
      fill_message(cfg.mutable_rope_compress(), rp["compress"], path + ": rope_parameters.compress");
    } else {
      fill_message(cfg.mutable_rope_scaling(), rp, path + ": rope_parameters");
    }
  }
  // The FP8 block size lives in quantization_config (beside the text model or at the top).
  for (const json* q : std::initializer_list<const json*>{&c, &j})
    if (q->contains("quantization_config") && (*q)["quantization_config"].is_object() &&
        (*q)["quantization_config"].contains("weight_block_size") && cfg.weight_block_size_size() == 0)
      fill_message(&cfg, json{{"weight_block_size", (*q)["quantization_config"]["weight_block_size"]}},
                   path + ": quantization_config");
  if (c.contains("rope_scaling") && c["rope_scaling"].is_object())
    fill_message(cfg.mutable_rope_scaling(), c["rope_scaling"], path + ": rope_scaling");
  return cfg;
}

void apply_override(pb::ModelConfig* cfg, const std::string& assignment) {
  const auto eq = assignment.find('=');
  MO_REQUIRE(eq != std::string::npos && eq > 0, "--set expects key=value, got '", assignment, "'");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  gp::Message* msg = cfg;
  if (auto dot = key.find('.'); dot != std::string::npos) {
    const gp::FieldDescriptor* sub = cfg->GetDescriptor()->FindFieldByName(key.substr(0, dot));
    MO_REQUIRE(sub && sub->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE,
               "--set: unknown config field '", key, "'");
    msg = cfg->GetReflection()->MutableMessage(cfg, sub);
    key = key.substr(dot + 1);
  }
  const gp::FieldDescriptor* f = msg->GetDescriptor()->FindFieldByName(key);
  MO_REQUIRE(f && f->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE,
             "--set: unknown config field '", key, "'");
  // Reuse the strict text parser for the value: "key: value" or "key: [a, b]".
  std::string text = key + ": ";
  if (f->is_repeated()) {
    msg->GetReflection()->ClearField(msg, f);
    text += "[";
  }
  std::stringstream ss(value);
  std::string item;
  bool first = true;
  while (std::getline(ss, item, f->is_repeated() ? ',' : '\0')) {
    if (!first) text += ", ";
    first = false;
    text += f->cpp_type() == gp::FieldDescriptor::CPPTYPE_STRING ? "\"" + item + "\"" : item;
  }
  if (f->is_repeated()) text += "]";
  gp::TextFormat::Parser parser;
  FirstError errors("--set " + assignment);
  parser.RecordErrorsTo(&errors);
  parser.AllowPartialMessage(true);
  std::unique_ptr<gp::Message> tmp(msg->New());
  MO_REQUIRE(parser.ParseFromString(text, tmp.get()), "--set: bad value for '", key, "': '", value,
             "'");
  msg->MergeFrom(*tmp);
}

}  // namespace modelone
