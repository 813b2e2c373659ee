// The garbage server's loop: poll() over the listener and its connections,
// one wrong answer per complete request frame.
#include "tests/upstream/garbage_backend.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

// Sends all of `data` on a non-blocking socket (small answers: a short wait
// for room is enough); false if the peer is gone.
bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  for (int tries = 0; off < data.size() && tries < 2000; ++tries) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      return false;
    }
  }
  return off == data.size();
}

}  // namespace

std::string GarbageName(Garbage garbage) {
  switch (garbage) {
    case Garbage::kNotDigits: return "not_digits";
    case Garbage::kEmptyFrame: return "empty_frame";
    case Garbage::kTruncated: return "truncated";
    case Garbage::kDuplicate: return "duplicate";
    case Garbage::kReset: return "reset";
    case Garbage::kDribble: return "dribble";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<GarbageBackend>> GarbageBackend::Start(Garbage garbage) {
  absl::StatusOr<LoopbackSocket> listener = ListenOnLoopback(64);
  if (!listener.ok()) return listener.status();
  fcntl(listener->fd(), F_SETFL, fcntl(listener->fd(), F_GETFL) | O_NONBLOCK);
  std::unique_ptr<GarbageBackend> backend(new GarbageBackend(garbage, *std::move(listener)));
  backend->thread_ = std::thread([raw = backend.get()] { raw->Run(); });
  return backend;
}

GarbageBackend::~GarbageBackend() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::string GarbageBackend::address() const { return absl::StrCat("127.0.0.1:", port()); }

void GarbageBackend::Run() {
  std::map<int, std::string> conns;  // fd -> unparsed request bytes
  auto drop = [&](int fd, bool reset) {
    if (reset) {
      const linger lg{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    conns.erase(fd);
  };
  while (!stop_.load()) {
    std::vector<pollfd> fds = {{listener_.fd(), POLLIN, 0}};
    for (const auto& [fd, unused] : conns) fds.push_back({fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 10) <= 0) continue;
    if (fds[0].revents & POLLIN) {
      for (int fd; (fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // a dribble is many segments
        conns[fd];
        ++accepted_;
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      char buf[65536];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        drop(fd, false);
        continue;
      }
      std::string& in = conns[fd];
      in.append(buf, static_cast<size_t>(n));
      bool gone = false;
      while (!gone) {
        const FrameScan scan = ScanFrame(in);
        if (scan.status == FrameScan::Status::kError) {
          drop(fd, false);
          gone = true;
          break;
        }
        if (scan.status != FrameScan::Status::kFrame) break;
        const std::string payload = in.substr(scan.skip + kHeaderSize, scan.frame_size - kHeaderSize);
        in.erase(0, scan.skip + scan.frame_size);
        switch (garbage_) {
          case Garbage::kNotDigits: gone = !SendAll(fd, "zzzzz"); break;
          case Garbage::kEmptyFrame: gone = !SendAll(fd, "00000"); break;
          case Garbage::kTruncated:
            SendAll(fd, "00050abcdefghij");
            drop(fd, false);
            gone = true;
            break;
          case Garbage::kDuplicate: gone = !SendAll(fd, ReversedFrame(payload) + ReversedFrame(payload)); break;
          case Garbage::kDribble:
            for (const char ch : ReversedFrame(payload)) {
              if (gone) break;
              gone = !SendAll(fd, std::string(1, ch));
            }
            break;
          case Garbage::kReset:
            SendAll(fd, ReversedFrame(payload));
            drop(fd, true);
            gone = true;
            break;
        }
      }
    }
  }
  for (const auto& [fd, unused] : conns) close(fd);
}

}  // namespace gateway::testing
