#include "flags.hpp"

#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "pipeline/settings.hpp"

namespace loadtest {

Flags::Flags(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void Flags::add(const std::string& name, const std::string& default_value,
                const std::string& help) {
  order_.push_back(name);
  flags_[name] = Flag{default_value, default_value, help, false};
}

bool Flags::parse(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << help();
      return false;
    }
    if (arg.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + arg + "'");
    const auto eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const auto it = flags_.find(name);
    if (it == flags_.end()) throw std::invalid_argument("unknown flag --" + name);
    if (eq == std::string::npos) {
      if (it->second.default_value != "false") {
        std::string message = "--" + name;
        message += " needs a value (--" + name + "=...)";
        throw std::invalid_argument(message);
      }
      it->second.value = "true";
    } else {
      it->second.value = arg.substr(eq + 1);
    }
    it->second.given = true;
  }
  return true;
}

const Flags::Flag& Flags::get(const std::string& name) const {
  const auto it = flags_.find(name);
  if (it == flags_.end()) throw std::logic_error("flag --" + name + " was never declared");
  return it->second;
}

const std::string& Flags::str(const std::string& name) const { return get(name).value; }

bool Flags::given(const std::string& name) const { return get(name).given; }

// The values are read by the services' own parser (pipeline/settings.hpp),
// so that a flag and a setting accept the same words; its errors get the
// flag's name.
template <typename Parse>
auto Flags::parsed(const std::string& name, Parse read) const {
  const std::string& text = str(name);
  try {
    return read(text);
  } catch (const pipeline::ConfigError& e) {
    throw std::invalid_argument("--" + name + "=" + text + ": " + e.what());
  }
}

std::int64_t Flags::integer(const std::string& name, std::int64_t min, std::int64_t max) const {
  const std::int64_t value = parsed(name, pipeline::parse_integer);
  if (value < min || value > max) {
    throw std::invalid_argument("--" + name + "=" + str(name) + ": expected an integer in [" +
                                std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return value;
}

double Flags::number(const std::string& name, double min, double max) const {
  const double value = parsed(name, pipeline::parse_number);
  if (!(value >= min && value <= max)) {
    throw std::invalid_argument("--" + name + "=" + str(name) + ": expected a number in [" +
                                std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return value;
}

bool Flags::boolean(const std::string& name) const { return parsed(name, pipeline::parse_boolean); }

std::chrono::milliseconds Flags::duration(const std::string& name) const {
  return parsed(name, pipeline::parse_duration);
}

std::string Flags::help() const {
  std::string out = "usage: " + program_ + " [--flag=value ...]\n" + summary_ + "\n\n";
  for (const auto& name : order_) {
    const Flag& f = flags_.at(name);
    std::string left = "  --" + name + (f.default_value == "false" ? "" : "=" + f.default_value);
    if (left.size() < 34) left.resize(34, ' ');
    out += left + " " + f.help + "\n";
  }
  return out;
}

}  // namespace loadtest
