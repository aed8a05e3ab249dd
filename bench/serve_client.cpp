#include "bench/serve_client.h"

#include <httplib.h>

#include <regex>

#include <nlohmann/json.hpp>

#include "comm/clock.h"
#include "model/base/check.h"

namespace modelone::bench {

namespace {

using nlohmann::json;

// Seconds a request may go without a byte: a request queued behind a full batch (or behind the
// server's HTTP threads) waits for its first token far longer than httplib's 5 s default.
constexpr int kReadTimeoutS = 600;

httplib::Client client(const ServeTarget& t) {
  httplib::Client c(t.url);
  c.set_connection_timeout(10);
  c.set_read_timeout(kReadTimeoutS);
  // A new connection per request (Connection: close): a kept-alive idle connection would hold
  // one of the server's HTTP threads between requests.
  c.set_keep_alive(false);
  c.set_tcp_nodelay(true);
  if (!t.api_key.empty()) c.set_bearer_token_auth(t.api_key.c_str());
  return c;
}

// The server's own words for an error answer: OpenAI's error.message, else the body's start;
// on one line (control bytes as '?'), cut at 200 bytes: it ends up in a one-line error.
std::string server_message(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  std::string what = body;
  if (j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("message"))
    what = j["error"]["message"].is_string() ? j["error"]["message"].get<std::string>() : j["error"].dump();
  if (what.size() > 200) what = what.substr(0, 200) + "...";
  for (char& ch : what) ch = (unsigned char)ch < 0x20 ? '?' : ch;
  return what;
}
std::string error_text(int status, const std::string& body) {
  const std::string what = server_message(body);
  return "HTTP " + std::to_string(status) + (what.empty() ? "" : ": " + what);
}

// What the stream said so far: fed line by line as bytes arrive.
struct StreamReader {
  double t0 = 0, last = -1;
  RequestOutcome out;
  int64_t usage_tokens = -1;
  bool done = false;
  std::string pending, server_error;

  void feed(const char* data, size_t n) {
    pending.append(data, n);
    for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, eol);
      pending.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data:", 0) == 0) event(line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5));
    }
  }

  void event(const std::string& d) {
    if (d == "[DONE]") {
      done = true;
      return;
    }
    const json c = json::parse(d, nullptr, false);
    if (!c.is_object()) return;
    if (c.contains("error")) server_error = server_message(d);
    if (c.contains("usage") && c["usage"].is_object()) {
      usage_tokens = c["usage"].value("completion_tokens", int64_t(-1));
      out.prompt_tokens = c["usage"].value("prompt_tokens", out.prompt_tokens);
    }
    if (c.contains("choices") && c["choices"].is_array() && !c["choices"].empty() &&
        c["choices"][0].contains("token_ids") && c["choices"][0]["token_ids"].is_array())
      tokens(int64_t(c["choices"][0]["token_ids"].size()));
  }

  void tokens(int64_t k) {
    if (k == 0) return;
    const double now = comm::now();
    if (last < 0) out.ttft = now - t0;
    else out.itl.insert(out.itl.end(), size_t(k), (now - last) / double(k));
    last = now;
    out.output_tokens += k;
  }

  // Whether the stream was whole: an error, a missing [DONE] or tokens that disagree with the
  // usage chunk make the request a failure.
  std::string verdict() const {
    if (!server_error.empty()) return "the stream carried an error: " + server_error;
    if (!done) return "the stream ended without data: [DONE]";
    if (out.output_tokens == 0) return "the stream carried no token_ids";
    if (usage_tokens >= 0 && usage_tokens != out.output_tokens)
      return str_cat("usage.completion_tokens is ", usage_tokens, " but the stream carried ",
                     out.output_tokens, " token ids");
    return "";
  }
};

}  // namespace

ServeTarget parse_serve_url(const std::string& url, const std::string& api_key) {
  static const std::regex re(R"((https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:([0-9]{1,5}))?/?)");
  std::smatch m;
  MO_REQUIRE(std::regex_match(url, m, re), "bench serve: --url '", printable(url),
             "' is not http://HOST[:PORT] (e.g. http://127.0.0.1:8080)");
  MO_REQUIRE(!m[4].matched || (std::stoi(m[4]) > 0 && std::stoi(m[4]) < 65536),
             "bench serve: --url '", url, "': the port must be in [1, 65535]");
  return {m[1].str() + "://" + m[2].str() + m[3].str(), api_key};
}

std::vector<ServedModel> list_models(const ServeTarget& t) {
  httplib::Client c = client(t);
  c.set_read_timeout(30);
  const httplib::Result r = c.Get("/v1/models");
  MO_REQUIRE(r, "bench serve: no server answers at ", t.url, " (", httplib::to_string(r.error()),
             "): start one with `modelone serve --port N` and pass its --url");
  MO_REQUIRE(r->status == 200, "bench serve: GET ", t.url, "/v1/models answered ",
             error_text(r->status, r->body));
  const json j = json::parse(r->body, nullptr, false);
  std::vector<ServedModel> models;
  if (j.is_object() && j.contains("data") && j["data"].is_array())
    for (const json& m : j["data"])
      if (m.is_object() && m.contains("id") && m["id"].is_string())
        models.push_back({m["id"].get<std::string>(), m.value("max_model_len", int64_t(0))});
  MO_REQUIRE(!models.empty(), "bench serve: GET ", t.url, "/v1/models lists no model: '",
             printable(r->body), "'");
  return models;
}

RequestOutcome stream_completion(const ServeTarget& t, const std::string& model,
                                 const std::vector<int32_t>& prompt, int64_t output_len) {
  const json body = {{"model", model}, {"prompt", prompt}, {"max_tokens", output_len},
                     {"ignore_eos", true}, {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  StreamReader s;
  s.out.prompt_tokens = int64_t(prompt.size());
  int status = 0;
  std::string error_body;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    if (status == 200) s.feed(d, n);
    else error_body.append(d, n);
    return true;
  };
  httplib::Client c = client(t);
  s.t0 = comm::now();
  const httplib::Result r = c.send(req);
  s.out.e2e = comm::now() - s.t0;
  if (!r) s.out.error = "no answer from " + t.url + " (" + httplib::to_string(r.error()) + ")";
  else if (status != 200) s.out.error = error_text(status, error_body);
  else s.out.error = s.verdict();
  s.out.ok = s.out.error.empty();
  return s.out;
}

}  // namespace modelone::bench
