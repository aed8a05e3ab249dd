// DeepSeek-V4's chat prompt: OpenAI-style messages to the text the model was trained on, as the
// release's encoding_dsv4.py writes it. The subset a plain chat needs: system, user and
// assistant roles, chat and thinking modes, no tools, tasks or context.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace modelone {

// The special tokens' text. The bars are fullwidth (U+FF5C) and the spaces U+2581, as in the
// tokenizer's vocabulary: ASCII look-alikes would tokenize as ordinary text.
constexpr const char* kBos = "<｜begin▁of▁sentence｜>";
constexpr const char* kEos = "<｜end▁of▁sentence｜>";
constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";
constexpr const char* kThinkStart = "<think>";
constexpr const char* kThinkEnd = "</think>";

// Chat answers at once (the prompt closes the thinking block); Thinking opens it.
enum class ChatMode { Chat, Thinking };

// DeepSeek-V4's prompt text for messages (encoding_dsv4.py's encode_messages with
// drop_thinking and the default BOS): BOS, the messages in order, and the assistant prefix the
// reply continues. messages: a non-empty array of {"role", "content"} objects ending with a user
// message; content a string or an array of {"type": "text", "text"} parts (null for an
// assistant). Anything else is an Error naming the message.
std::string encode_chat(const nlohmann::json& messages, ChatMode mode);

}  // namespace modelone
