// Target lists: --targets parsing (IPv6, spaces, duplicates, every refusal)
// and --dns resolution on this machine's resolver (localhost, literals).
#include "ctl/targets.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gateway::ctl {
namespace {

std::vector<std::string> Addresses(const std::vector<Target>& targets) {
  std::vector<std::string> out;
  for (const Target& t : targets) out.push_back(t.address);
  return out;
}

TEST(ParseTargetsTest, KeepsOrderAndDropsDuplicates) {
  absl::StatusOr<std::vector<Target>> targets =
      ParseTargets(" 10.0.0.1:50051, gw-1.example:50051,[::1]:7,10.0.0.1:50051 ,[fe80::1]:65535");
  ASSERT_TRUE(targets.ok()) << targets.status();
  EXPECT_EQ(Addresses(*targets),
            (std::vector<std::string>{"10.0.0.1:50051", "gw-1.example:50051", "[::1]:7", "[fe80::1]:65535"}));
}

TEST(ParseTargetsTest, RefusesBadEntriesNamingThem) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "--targets '' has an empty entry"},
      {"a:1,,b:2", "--targets 'a:1,,b:2' has an empty entry"},
      {"host", "target 'host' is not host:port"},
      {":50051", "target ':50051' has no host"},
      {"[]:50051", "target '[]:50051' has no host"},
      {"h:0", "target 'h:0': port must be 1..65535"},
      {"h:65536", "target 'h:65536': port must be 1..65535"},
      {"h:+5", "target 'h:+5': port must be 1..65535"},
      {"h:http", "target 'h:http': port must be 1..65535"},
      {"::1:50051", "target '::1:50051': write an IPv6 address as [addr]:port"},
  };
  for (const auto& [list, message] : cases) {
    absl::StatusOr<std::vector<Target>> targets = ParseTargets(list);
    ASSERT_FALSE(targets.ok()) << list;
    EXPECT_EQ(targets.status().code(), absl::StatusCode::kInvalidArgument) << list;
    EXPECT_EQ(targets.status().message(), message) << list;
  }
}

TEST(ResolveTargetsTest, LocalhostResolvesToLoopbackAddresses) {
  absl::StatusOr<std::vector<Target>> targets = ResolveTargets("localhost:50051");
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_FALSE(targets->empty());
  for (const Target& t : *targets) {
    EXPECT_TRUE(t.address == "127.0.0.1:50051" || t.address == "[::1]:50051") << t.address;
  }
  std::vector<std::string> addresses = Addresses(*targets);
  std::sort(addresses.begin(), addresses.end());
  EXPECT_EQ(std::unique(addresses.begin(), addresses.end()), addresses.end()) << "duplicates";
}

TEST(ResolveTargetsTest, LiteralsResolveToThemselves) {
  absl::StatusOr<std::vector<Target>> v4 = ResolveTargets("127.0.0.1:9");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(Addresses(*v4), std::vector<std::string>{"127.0.0.1:9"});
  absl::StatusOr<std::vector<Target>> v6 = ResolveTargets("[::1]:9");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(Addresses(*v6), std::vector<std::string>{"[::1]:9"});
}

TEST(ResolveTargetsTest, RefusesWithoutPort) {
  EXPECT_EQ(ResolveTargets("localhost").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveTargets("localhost:0").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gateway::ctl
