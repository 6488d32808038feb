#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loadtest {

/// A small --name=value flag reader shared by loadgen and the stage benches.
/// Every flag has a default and a line of help; unknown flags are errors.
/// Flags only (no environment: a tool's flag must not be set by a variable
/// of the shell), but the values are parsed by the services' own settings
/// parser, so the two accept the same words.
class Flags {
 public:
  Flags(std::string program, std::string summary);

  /// Declares a flag. A boolean flag has the default "false" and may be
  /// given as a bare --name.
  void add(const std::string& name, const std::string& default_value, const std::string& help);

  /// Reads argv. Returns false after printing the help for --help. Throws
  /// std::invalid_argument for an unknown or malformed flag.
  bool parse(int argc, const char* const* argv);

  const std::string& str(const std::string& name) const;
  std::int64_t integer(const std::string& name, std::int64_t min, std::int64_t max) const;
  double number(const std::string& name, double min, double max) const;
  bool boolean(const std::string& name) const;
  /// "30s", "500ms", "2m", "1h", or a plain number of seconds.
  std::chrono::milliseconds duration(const std::string& name) const;
  /// True when the flag was given on the command line.
  bool given(const std::string& name) const;

  std::string help() const;

 private:
  struct Flag {
    std::string value;
    std::string default_value;
    std::string help;
    bool given = false;
  };
  const Flag& get(const std::string& name) const;
  template <typename Parse>
  auto parsed(const std::string& name, Parse read) const;

  std::string program_;
  std::string summary_;
  std::vector<std::string> order_;
  std::map<std::string, Flag> flags_;
};

}  // namespace loadtest
