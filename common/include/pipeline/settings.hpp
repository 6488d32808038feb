#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pipeline {

/// A bad setting: the message names the variable and says what it expects.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads settings from environment variables and `--flag=value` arguments
/// (a flag is the variable's name in lower case with '-' for '_', and wins
/// over the variable). Each setting is bound to a field whose current value
/// is its default. `--help` lists them all.
class SettingsReader {
 public:
  using Lookup = std::function<std::optional<std::string>(const std::string&)>;

  /// `lookup` defaults to getenv.
  SettingsReader(std::string program, std::string summary, Lookup lookup = {});

  void text(const std::string& name, std::string* target, std::string help);
  /// Hides the value in --help (for secrets such as tokens).
  void secret(const std::string& name, std::string* target, std::string help);
  void integer(const std::string& name, std::int64_t* target, std::int64_t min, std::int64_t max,
               std::string help);
  void size(const std::string& name, std::size_t* target, std::size_t min, std::size_t max,
            std::string help);
  void number(const std::string& name, double* target, double min, double max, std::string help);
  /// Accepts 250ms, 30s, 2m, 1h, 7d (a bare number means seconds).
  void duration(const std::string& name, std::chrono::milliseconds* target,
                std::chrono::milliseconds min, std::string help);
  void flag(const std::string& name, bool* target, std::string help);
  /// One of the named `choices`; the field gets the value of the one chosen.
  template <typename T>
  void choice(const std::string& name, T* target, std::vector<std::pair<std::string, T>> choices,
              std::string help) {
    std::string names;
    std::string current;
    for (const auto& [label, value] : choices) {
      names += (names.empty() ? "" : ", ") + label;
      if (value == *target) current = label;
    }
    add(name, current, std::move(help) + " (" + names + ")",
        [name, target, choices, names](const std::string& text) {
          for (const auto& [label, value] : choices) {
            if (label == text) {
              *target = value;
              return;
            }
          }
          throw ConfigError(name + ": expected one of " + names + ", got '" + text + "'");
        });
  }

  /// Applies environment and arguments to the bound fields. Returns false when
  /// `--help` was asked for (the caller prints help() and exits 0).
  /// Throws ConfigError listing every bad value or unknown flag.
  bool read(int argc, const char* const* argv);

  std::string help() const;

 private:
  struct Setting {
    std::string name;
    std::string default_value;
    std::string help;
    std::function<void(const std::string&)> apply;  // throws ConfigError
  };
  void add(const std::string& name, std::string default_value, std::string help,
           std::function<void(const std::string&)> apply);

  std::string program_;
  std::string summary_;
  Lookup lookup_;
  std::vector<Setting> settings_;
};

/// Splits a comma-separated setting ("a, b,,c") into its trimmed, non-empty parts.
std::vector<std::string> split_list(const std::string& text);

/// The one parser of setting values, for the services (SettingsReader) and
/// the load tools (loadtest::Flags) alike. Each throws ConfigError saying
/// what it expected.
/// A duration: 250ms, 30s, 2m, 1h, 7d (a bare number means seconds); never
/// negative, infinite or over 100 years.
std::chrono::milliseconds parse_duration(const std::string& text);
/// A whole number in base 10, nothing after it.
std::int64_t parse_integer(const std::string& text);
/// A finite number.
double parse_number(const std::string& text);
/// true/1/yes/on or false/0/no/off.
bool parse_boolean(const std::string& text);
std::string format_duration(std::chrono::milliseconds value);

}  // namespace pipeline
