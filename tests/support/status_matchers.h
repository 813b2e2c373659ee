// Status assertions for tests: ASSERT_OK / EXPECT_OK on an absl::Status or
// absl::StatusOr, and ASSERT_OK_AND_ASSIGN(lhs, expr), which evaluates a
// StatusOr expression, fails the test (printing the status) unless it is OK,
// and otherwise moves its value into `lhs` (a declaration or an lvalue).
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace gateway::testing::internal {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

}  // namespace gateway::testing::internal

// Each evaluates `expr` once.
#define ASSERT_OK(expr) GATEWAY_CHECK_OK_IMPL(expr, GTEST_FAIL())
#define EXPECT_OK(expr) GATEWAY_CHECK_OK_IMPL(expr, ADD_FAILURE())
#define GATEWAY_CHECK_OK_IMPL(expr, fail)                                                                           \
  GTEST_AMBIGUOUS_ELSE_BLOCKER_                                                                                     \
  if (const ::absl::Status gateway_status_ = ::gateway::testing::internal::GetStatus(expr); gateway_status_.ok()) { \
  } else                                                                                                            \
    fail << #expr << " is " << gateway_status_

#define GATEWAY_STATUS_CONCAT_INNER(a, b) a##b
#define GATEWAY_STATUS_CONCAT(a, b) GATEWAY_STATUS_CONCAT_INNER(a, b)

#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(GATEWAY_STATUS_CONCAT(status_or_value_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, expr)                \
  auto statusor = (expr);                                             \
  ASSERT_TRUE(statusor.ok()) << #expr << " is " << statusor.status(); \
  lhs = std::move(statusor).value()
