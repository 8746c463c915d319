#include "runtime/status.h"

#include <gtest/gtest.h>

namespace deepnet {
namespace {

Status FailsWith(StatusCode code) { return Status(code, "boom"); }

StatusOr<int> Half(int x) {
  if (x % 2) return InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status Chain(StatusCode code) {
  RETURN_IF_ERROR(FailsWith(code));
  return OkStatus();
}

TEST(StatusTest, OkIsCheapAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s.message(), "");
}

TEST(StatusTest, ErrorCarriesCodeMessageAndContext) {
  Status s = DeadlineExceeded("recv from rank 3 timed out");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(s.WithContext("stage 1").message(), "stage 1: recv from rank 3 timed out");
  EXPECT_EQ(s.ToString(), "DEADLINE_EXCEEDED: recv from rank 3 timed out");
}

TEST(StatusTest, MacrosPropagate) {
  EXPECT_EQ(Chain(StatusCode::kDataLoss).code(), StatusCode::kDataLoss);
  EXPECT_EQ(*Quarter(12), 3);
  StatusOr<int> odd = Quarter(6);
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().message(), "3 is odd");
}

}  // namespace
}  // namespace deepnet
