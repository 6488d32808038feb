#include "pipeline/base64.hpp"

#include <array>
#include <cstdint>

namespace pipeline {
namespace {

using Table = std::array<std::int8_t, 256>;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr Table decode_table(const char* alphabet) {
  Table table{};
  for (auto& value : table) value = -1;
  for (int i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}

constexpr Table kDecode = decode_table(kAlphabet);
constexpr Table kUrlDecode = decode_table(kUrlAlphabet);

std::uint32_t byte_at(std::string_view bytes, std::size_t i) {
  return static_cast<unsigned char>(bytes[i]);
}

std::string encode(std::string_view bytes, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v =
        byte_at(bytes, i) << 16U | byte_at(bytes, i + 1) << 8U | byte_at(bytes, i + 2);
    out += alphabet[v >> 18U & 63U];
    out += alphabet[v >> 12U & 63U];
    out += alphabet[v >> 6U & 63U];
    out += alphabet[v & 63U];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = byte_at(bytes, i) << 16U;
    if (rest == 2) v |= byte_at(bytes, i + 1) << 8U;
    out += alphabet[v >> 18U & 63U];
    out += alphabet[v >> 12U & 63U];
    if (rest == 2) out += alphabet[v >> 6U & 63U];
    if (pad) out.append(3 - rest, '=');
  }
  return out;
}

std::optional<std::string> decode(std::string_view text, const Table& table, bool padded) {
  // Padding: at most two '=', only at the end, and only where it belongs.
  std::size_t padding = 0;
  while (padded && !text.empty() && text.back() == '=' && padding < 2) {
    text.remove_suffix(1);
    ++padding;
  }
  if (padding > 0 && (text.size() + padding) % 4 != 0) return std::nullopt;
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const std::int8_t value = table[static_cast<unsigned char>(c)];
    if (value < 0) return std::nullopt;
    buffer = (buffer << 6U) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> static_cast<unsigned>(bits)) & 0xFFU);
    }
  }
  // The bits left over must be zero (one encoding per byte string).
  if (bits > 0 && (buffer & ((1U << static_cast<unsigned>(bits)) - 1U)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes) { return encode(bytes, kAlphabet, true); }

std::optional<std::string> base64_decode(std::string_view text) {
  return decode(text, kDecode, true);
}

std::string base64url_encode(std::string_view bytes) { return encode(bytes, kUrlAlphabet, false); }

std::optional<std::string> base64url_decode(std::string_view text) {
  return decode(text, kUrlDecode, false);
}

}  // namespace pipeline
