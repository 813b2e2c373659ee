// SplitHostPort and ParsePort, the one host:port reader of every listener.
#include "gateway/host_port.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace gateway {
namespace {

struct SplitCase {
  std::string address;
  std::string host;
  std::string port;
  bool bracketed;
};

TEST(SplitHostPortTest, SplitsAtTheLastColon) {
  for (const SplitCase& c : std::vector<SplitCase>{
           {"127.0.0.1:6789", "127.0.0.1", "6789", false},
           {"0.0.0.0:0", "0.0.0.0", "0", false},
           {"localhost:50051", "localhost", "50051", false},
           {":6789", "", "6789", false},
           {"*:6789", "*", "6789", false},
           {"[::1]:6789", "::1", "6789", true},
           {"[::]:0", "::", "0", true},
           {"[]:1", "", "1", true},
           {"::1:80", "::1", "80", false},
           {"[::1:80", "[::1", "80", false},
           {"host:", "host", "", false},
           {"host:abc", "host", "abc", false},
           {"[::1]", "[:", "1]", false},  // no port: ParsePort rejects "1]"
       }) {
    SCOPED_TRACE(c.address);
    const absl::StatusOr<HostPort> split = SplitHostPort(c.address);
    ASSERT_TRUE(split.ok()) << split.status();
    EXPECT_EQ(split->host, c.host);
    EXPECT_EQ(split->port, c.port);
    EXPECT_EQ(split->bracketed, c.bracketed);
  }
}

TEST(SplitHostPortTest, NoColonIsNotHostPort) {
  for (const std::string address : {"", "nonsense", "6789"}) {
    const absl::StatusOr<HostPort> split = SplitHostPort(address);
    ASSERT_FALSE(split.ok()) << address;
    EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(split.status().message(), "address '" + address + "' is not host:port");
  }
}

TEST(ParsePortTest, AcceptsDecimalZeroTo65535) {
  struct Case {
    std::string text;
    std::optional<int> port;
  };
  for (const Case& c : std::vector<Case>{
           {"0", 0},
           {"80", 80},
           {"65535", 65535},
           {"65536", std::nullopt},
           {"70000", std::nullopt},
           {"-1", std::nullopt},
           {"", std::nullopt},
           {"http", std::nullopt},
           {"80x", std::nullopt},
           {"99999999999999999999", std::nullopt},
       }) {
    EXPECT_EQ(ParsePort(c.text), c.port) << "'" << c.text << "'";
  }
}

}  // namespace
}  // namespace gateway
