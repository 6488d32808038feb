#include <gtest/gtest.h>

#include "processor/batch_writer.hpp"

namespace processor {
namespace {

TEST(PgArray, QuotesAndEscapesEveryElement) {
  EXPECT_EQ(to_pg_array({}), "{}");
  EXPECT_EQ(to_pg_array({"a", "b c"}), R"({"a","b c"})");
  EXPECT_EQ(to_pg_array({R"(say "hi")", R"(back\slash)", "{x,y}", "NULL"}),
            R"({"say \"hi\"","back\\slash","{x,y}","NULL"})");
}

}  // namespace
}  // namespace processor
