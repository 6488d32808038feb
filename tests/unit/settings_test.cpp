#include "pipeline/settings.hpp"

#include <gtest/gtest.h>

#include <map>

namespace pipeline {
namespace {

struct Fixture {
  std::map<std::string, std::string> env;
  std::string name = "default";
  std::int64_t port = 8080;
  std::size_t batch = 100;
  std::chrono::milliseconds window{120000};
  bool verbose = false;

  SettingsReader reader() {
    SettingsReader r("svc", "test service",
                     [this](const std::string& key) -> std::optional<std::string> {
                       auto it = env.find(key);
                       if (it == env.end()) return std::nullopt;
                       return it->second;
                     });
    r.text("SVC_NAME", &name, "a name");
    r.integer("SVC_PORT", &port, 0, 65535, "a port");
    r.size("SVC_BATCH", &batch, 1, 1000, "a batch");
    r.duration("SVC_WINDOW", &window, std::chrono::milliseconds(100), "a window");
    r.flag("SVC_VERBOSE", &verbose, "a flag");
    return r;
  }
};

TEST(Settings, DefaultsStandWithoutEnvironment) {
  Fixture f;
  auto r = f.reader();
  const char* argv[] = {"svc"};
  EXPECT_TRUE(r.read(1, argv));
  EXPECT_EQ(f.name, "default");
  EXPECT_EQ(f.port, 8080);
  EXPECT_EQ(f.window, std::chrono::minutes(2));
}

TEST(Settings, EnvironmentThenFlagsApply) {
  Fixture f;
  f.env = {
      {"SVC_NAME", "env"}, {"SVC_PORT", "9000"}, {"SVC_WINDOW", "250ms"}, {"SVC_VERBOSE", "yes"}};
  auto r = f.reader();
  const char* argv[] = {"svc", "--svc-port=9100", "--svc-batch=7"};
  EXPECT_TRUE(r.read(3, argv));
  EXPECT_EQ(f.name, "env");
  EXPECT_EQ(f.port, 9100);
  EXPECT_EQ(f.batch, 7u);
  EXPECT_EQ(f.window, std::chrono::milliseconds(250));
  EXPECT_TRUE(f.verbose);
}

TEST(Settings, EveryBadValueIsReportedByName) {
  Fixture f;
  f.env = {{"SVC_PORT", "80x"},
           {"SVC_BATCH", "0"},
           {"SVC_WINDOW", "5 parsecs"},
           {"SVC_VERBOSE", "maybe"}};
  auto r = f.reader();
  const char* argv[] = {"svc", "--nope=1"};
  try {
    r.read(2, argv);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    for (const char* part : {"SVC_PORT", "SVC_BATCH: must be between 1 and 1000", "SVC_WINDOW",
                             "SVC_VERBOSE", "unknown flag --nope"}) {
      EXPECT_NE(message.find(part), std::string::npos) << part << " in " << message;
    }
  }
}

TEST(Settings, HelpListsEverySettingWithItsDefault) {
  Fixture f;
  auto r = f.reader();
  const char* argv[] = {"svc", "--help"};
  EXPECT_FALSE(r.read(2, argv));
  const std::string help = r.help();
  EXPECT_NE(help.find("SVC_PORT / --svc-port  [8080]"), std::string::npos) << help;
  EXPECT_NE(help.find("SVC_WINDOW / --svc-window  [2m]"), std::string::npos) << help;
}

TEST(Durations, ParseUnits) {
  EXPECT_EQ(parse_duration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(parse_duration("30s"), std::chrono::seconds(30));
  EXPECT_EQ(parse_duration("30"), std::chrono::seconds(30));
  EXPECT_EQ(parse_duration("1.5m"), std::chrono::seconds(90));
  EXPECT_EQ(parse_duration("7d"), std::chrono::hours(168));
  EXPECT_THROW(parse_duration("-1s"), ConfigError);
  EXPECT_THROW(parse_duration("1w"), ConfigError);
  EXPECT_THROW(parse_duration(""), ConfigError);
  EXPECT_THROW(parse_duration("inf"), ConfigError);
  EXPECT_THROW(parse_duration("nan"), ConfigError);
  EXPECT_THROW(parse_duration("1e300s"), ConfigError);
}

}  // namespace
}  // namespace pipeline

namespace pipeline {
namespace {

// The one value parser the services and the load tools share
// (loadtest::Flags reads its values with it too).
TEST(SettingValues, OneParserForServicesAndTools) {
  EXPECT_THROW(parse_duration("inf"), ConfigError);
  EXPECT_THROW(parse_duration("-1s"), ConfigError);
  EXPECT_EQ(parse_duration("1.5s").count(), 1500);
  EXPECT_THROW(parse_number("inf"), ConfigError);
  EXPECT_THROW(parse_number("nan"), ConfigError);
  EXPECT_DOUBLE_EQ(parse_number("2.5"), 2.5);
  EXPECT_THROW(parse_integer("12x"), ConfigError);
  EXPECT_THROW(parse_integer("99999999999999999999"), ConfigError);
  EXPECT_EQ(parse_integer("-7"), -7);
  for (const char* yes : {"1", "true", "yes", "on"}) EXPECT_TRUE(parse_boolean(yes)) << yes;
  for (const char* no : {"0", "false", "no", "off"}) EXPECT_FALSE(parse_boolean(no)) << no;
  EXPECT_THROW(parse_boolean("maybe"), ConfigError);
}

}  // namespace
}  // namespace pipeline
