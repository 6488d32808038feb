#include "pipeline/settings.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace pipeline {
namespace {

std::string flag_name(const std::string& name) {
  std::string flag = "--";
  for (const char c : name) {
    flag += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return flag;
}

// parse_integer with the setting's name in the error.
std::int64_t parse_integer(const std::string& name, const std::string& text) {
  try {
    return pipeline::parse_integer(text);
  } catch (const ConfigError& e) {
    throw ConfigError(name + ": " + e.what());
  }
}

}  // namespace

std::int64_t parse_integer(const std::string& text) {
  std::size_t used = 0;
  std::int64_t value = 0;
  try {
    value = std::stoll(text, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) {
    throw ConfigError("expected a whole number, got '" + text + "'");
  }
  return value;
}

double parse_number(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(value)) {
    throw ConfigError("expected a finite number, got '" + text + "'");
  }
  return value;
}

bool parse_boolean(const std::string& text) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  throw ConfigError("expected true or false, got '" + text + "'");
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> parts;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::string part = text.substr(start, comma - start);
    part.erase(0, part.find_first_not_of(" \t"));
    part.erase(part.find_last_not_of(" \t") + 1);
    if (!part.empty()) parts.push_back(std::move(part));
    start = comma + 1;
  }
  return parts;
}

std::chrono::milliseconds parse_duration(const std::string& text) {
  std::size_t used = 0;
  double number = 0;
  try {
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    throw ConfigError("expected a duration like 250ms, 30s, 2m, 1h or 7d, got '" + text + "'");
  }
  const std::string unit = text.substr(used);
  double factor = 0;
  if (unit.empty() || unit == "s") {
    factor = 1000;
  } else if (unit == "ms") {
    factor = 1;
  } else if (unit == "m") {
    factor = 60'000;
  } else if (unit == "h") {
    factor = 3'600'000;
  } else if (unit == "d") {
    factor = 86'400'000;
  } else {
    throw ConfigError("expected a duration like 250ms, 30s, 2m, 1h or 7d, got '" + text + "'");
  }
  if (number < 0) throw ConfigError("a duration cannot be negative, got '" + text + "'");
  // "inf", "nan" or a hundred years and more: no setting means that, and the
  // conversion to an integer would overflow.
  const double millis = number * factor;
  if (!(millis < 100.0 * 365 * 86'400'000)) {
    throw ConfigError("a duration must be finite and under 100 years, got '" + text + "'");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(millis));
}

std::string format_duration(std::chrono::milliseconds value) {
  const auto ms = value.count();
  if (ms != 0 && ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

SettingsReader::SettingsReader(std::string program, std::string summary, Lookup lookup)
    : program_(std::move(program)), summary_(std::move(summary)), lookup_(std::move(lookup)) {
  if (!lookup_) {
    lookup_ = [](const std::string& name) -> std::optional<std::string> {
      // Read once at start-up, before any thread exists.
      const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
      if (value == nullptr) return std::nullopt;
      return std::string(value);
    };
  }
}

void SettingsReader::add(const std::string& name, std::string default_value, std::string help,
                         std::function<void(const std::string&)> apply) {
  settings_.push_back({name, std::move(default_value), std::move(help), std::move(apply)});
}

void SettingsReader::text(const std::string& name, std::string* target, std::string help) {
  add(name, *target, std::move(help), [name, target](const std::string& value) {
    if (value.empty()) throw ConfigError(name + ": must not be empty");
    *target = value;
  });
}

void SettingsReader::secret(const std::string& name, std::string* target, std::string help) {
  add(name, target->empty() ? "" : "(set)", std::move(help),
      [target](const std::string& value) { *target = value; });
}

void SettingsReader::integer(const std::string& name, std::int64_t* target, std::int64_t min,
                             std::int64_t max, std::string help) {
  add(name, std::to_string(*target), std::move(help),
      [name, target, min, max](const std::string& value) {
        const std::int64_t parsed = parse_integer(name, value);
        if (parsed < min || parsed > max) {
          throw ConfigError(name + ": must be between " + std::to_string(min) + " and " +
                            std::to_string(max) + ", got " + value);
        }
        *target = parsed;
      });
}

void SettingsReader::size(const std::string& name, std::size_t* target, std::size_t min,
                          std::size_t max, std::string help) {
  add(name, std::to_string(*target), std::move(help),
      [name, target, min, max](const std::string& value) {
        const std::int64_t parsed = parse_integer(name, value);
        if (parsed < 0 || static_cast<std::size_t>(parsed) < min ||
            static_cast<std::size_t>(parsed) > max) {
          throw ConfigError(name + ": must be between " + std::to_string(min) + " and " +
                            std::to_string(max) + ", got " + value);
        }
        *target = static_cast<std::size_t>(parsed);
      });
}

void SettingsReader::number(const std::string& name, double* target, double min, double max,
                            std::string help) {
  std::ostringstream shown;
  shown << *target;
  add(name, shown.str(), std::move(help), [name, target, min, max](const std::string& value) {
    double parsed = 0;
    try {
      parsed = parse_number(value);
    } catch (const ConfigError& e) {
      throw ConfigError(name + ": " + e.what());
    }
    if (parsed < min || parsed > max) {
      std::ostringstream range;
      range << name << ": must be between " << min << " and " << max << ", got " << value;
      throw ConfigError(range.str());
    }
    *target = parsed;
  });
}

void SettingsReader::duration(const std::string& name, std::chrono::milliseconds* target,
                              std::chrono::milliseconds min, std::string help) {
  add(name, format_duration(*target), std::move(help),
      [name, target, min](const std::string& value) {
        std::chrono::milliseconds parsed{};
        try {
          parsed = parse_duration(value);
        } catch (const ConfigError& e) {
          throw ConfigError(name + ": " + e.what());
        }
        if (parsed < min) {
          throw ConfigError(name + ": must be at least " + format_duration(min) + ", got " + value);
        }
        *target = parsed;
      });
}

void SettingsReader::flag(const std::string& name, bool* target, std::string help) {
  add(name, *target ? "true" : "false", std::move(help), [name, target](const std::string& value) {
    try {
      *target = parse_boolean(value);
    } catch (const ConfigError& e) {
      throw ConfigError(name + ": " + e.what());
    }
  });
}

bool SettingsReader::read(int argc, const char* const* argv) {
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<std::string> errors;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return false;
    const auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      errors.push_back("unknown argument '" + arg + "' (flags are --name=value; see --help)");
      continue;
    }
    flags.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
  }
  for (const auto& given : flags) {
    const bool known = std::any_of(settings_.begin(), settings_.end(), [&](const Setting& s) {
      return flag_name(s.name) == given.first;
    });
    if (!known) errors.push_back("unknown flag " + given.first + " (see --help)");
  }
  for (const auto& setting : settings_) {
    std::optional<std::string> value = lookup_(setting.name);
    for (const auto& [flag, flag_value] : flags) {
      if (flag == flag_name(setting.name)) value = flag_value;
    }
    if (!value) continue;
    try {
      setting.apply(*value);
    } catch (const ConfigError& e) {
      errors.emplace_back(e.what());
    }
  }
  if (!errors.empty()) {
    std::string message = "invalid configuration:";
    for (const auto& error : errors) message += "\n  " + error;
    throw ConfigError(message);
  }
  return true;
}

std::string SettingsReader::help() const {
  std::ostringstream out;
  out << program_ << ": " << summary_ << "\n\n"
      << "Settings (environment variable, or --flag=value; default in brackets):\n";
  for (const auto& setting : settings_) {
    out << "  " << setting.name << " / " << flag_name(setting.name) << "  ["
        << setting.default_value << "]\n      " << setting.help << "\n";
  }
  return out.str();
}

}  // namespace pipeline
