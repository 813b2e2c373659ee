#include "gateway/poller.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace gateway {

int Poller::Accept(int listen_fd, sockaddr* peer, socklen_t* peer_len) {
  return accept4(listen_fd, peer, peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

// Each is a tail call: on the request path the seam costs one indirect call
// (and, for reads, one pointer test for bytes carried over from a switch).
ssize_t Poller::Readv(int fd, const iovec* iov, int iov_count) {
  if (carried_ != nullptr) [[unlikely]] {
    ssize_t result;
    if (ReadCarried(fd, iov, iov_count, &result)) return result;
  }
  return readv(fd, iov, iov_count);
}

ssize_t Poller::Send(int fd, const char* data, size_t len) { return send(fd, data, len, MSG_NOSIGNAL); }

int Poller::ShutdownWrite(int fd) { return shutdown(fd, SHUT_WR); }

void Poller::Close(int fd) {
  if (carried_ != nullptr) [[unlikely]]
    DropCarried(fd);
  close(fd);
}

Poller::Leftovers Poller::Release(int fd) {
  Leftovers leftovers;
  if (carried_ == nullptr) return leftovers;
  // Bytes carried into this back-end and not read yet go on to the next.
  auto it = carried_->find(fd);
  if (it == carried_->end()) return leftovers;
  Carried& carried = it->second;
  leftovers.unread = carried.unread.substr(carried.offset);
  leftovers.eof = carried.eof;
  leftovers.error = carried.error;
  DropCarried(fd);
  return leftovers;
}

void Poller::Carry(int fd, std::string unread, bool eof, int error) {
  if (unread.empty() && !eof && error == 0) return;
  if (carried_ == nullptr) carried_ = std::make_unique<absl::flat_hash_map<int, Carried>>();
  Carried& carried = (*carried_)[fd];
  carried.unread.append(unread);
  carried.eof = carried.eof || eof;
  if (carried.error == 0) carried.error = error;
}

bool Poller::ReadCarried(int fd, const iovec* iov, int iov_count, ssize_t* result) {
  auto it = carried_->find(fd);
  if (it == carried_->end()) return false;
  Carried& carried = it->second;
  size_t copied = 0;
  for (int i = 0; i < iov_count && carried.offset < carried.unread.size(); ++i) {
    const size_t n = std::min(iov[i].iov_len, carried.unread.size() - carried.offset);
    std::memcpy(iov[i].iov_base, carried.unread.data() + carried.offset, n);
    carried.offset += n;
    copied += n;
  }
  if (copied > 0) {
    // A short count tells the connection the carried bytes are done; the
    // socket's own raise a fresh event in every back-end.
    if (carried.offset == carried.unread.size() && !carried.eof && carried.error == 0) DropCarried(fd);
    *result = static_cast<ssize_t>(copied);
    return true;
  }
  // Nothing left but how the stream ended, which the old back-end consumed.
  if (carried.error != 0) {
    errno = carried.error;
    *result = -1;
  } else {
    *result = 0;  // EOF, and it stays EOF: the kernel says so too from now on
  }
  DropCarried(fd);
  return true;
}

void Poller::DropCarried(int fd) {
  carried_->erase(fd);
  if (carried_->empty()) carried_.reset();
}

}  // namespace gateway
