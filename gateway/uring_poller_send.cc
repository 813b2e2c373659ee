// UringPoller's send side: Send queues, one send SQE per fd in flight, a
// short send resubmits the rest; ShutdownWrite waits for the queue.
#include "gateway/uring_poller.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace gateway {

ssize_t UringPoller::Send(int fd, const char* data, size_t len) {
  FdState* s = Find(fd);
  if (s == nullptr || s->role != FdRole::kStream) return Poller::Send(fd, data, len);
  if (s->send_error != 0) {
    errno = s->send_error;
    return -1;
  }
  if (len == 0) return 0;
  const size_t pending = s->sends != nullptr ? s->sends->pending() : 0;
  if (pending >= kSendCap) {
    s->want_writable = true;
    errno = EAGAIN;
    return -1;
  }
  // As send(2) does with its socket buffer: take what fits under the cap, so
  // the queue never holds more than kSendCap (the connection keeps the rest,
  // inside its own accounted, bounded output).
  const size_t taken = std::min(len, kSendCap - pending);
  if (s->sends == nullptr) s->sends = std::make_unique<Sends>();
  s->sends->queued.append(data, taken);
  if (!s->sends->in_flight && !s->on_send_list) {
    s->on_send_list = true;
    send_list_.push_back(fd);
  }
  return static_cast<ssize_t>(taken);
}

void UringPoller::FlushSendList() {
  // One send SQE per fd per turn, carrying everything Send took meanwhile.
  for (int fd : send_list_) {
    FdState* s = Find(fd);
    if (s == nullptr || !s->on_send_list) continue;
    s->on_send_list = false;
    Sends* q = s->sends.get();
    if (q == nullptr || q->in_flight) continue;
    if (q->sent == q->sending.size()) {
      if (q->queued.empty()) continue;
      q->sending.swap(q->queued);
      q->queued.clear();
      q->sent = 0;
    }
    StartSend(fd, *s);
  }
  send_list_.clear();
}

void UringPoller::StartSend(int fd, FdState& s) {
  Sends& q = *s.sends;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_send(sqe, fd, q.sending.data() + q.sent, q.sending.size() - q.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, UserData(Op::kSend, s.gen, fd));
  q.in_flight = true;
  ++in_flight_;
}

void UringPoller::OnSend(int fd, FdState& s, int res) {
  if (s.sends == nullptr) return;
  Sends& q = *s.sends;
  q.in_flight = false;
  if (res > 0) q.sent += static_cast<size_t>(res);
  if (res == 0 || (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN)) {
    SendFailed(fd, s, res == 0 ? EPIPE : -res);
    return;
  }
  if (quiescing_) return;  // the rest stays for Release (or FinishDeferred)
  if (q.sent == q.sending.size()) {
    q.sending.clear();
    q.sent = 0;
    q.sending.swap(q.queued);
  }
  if (q.sending.empty()) {
    SendsDone(fd, s);
    return;
  }
  StartSend(fd, s);  // the rest of a short send, or what was queued meanwhile
  if (s.want_writable && q.pending() < kSendCap && s.handler != nullptr) {
    s.want_writable = false;
    Ready(fd, s, kWritable);
  }
}

void UringPoller::SendsDone(int fd, FdState& s) {
  s.sends.reset();
  if (s.close_pending) {
    CloseNow(fd);
    return;
  }
  if (s.shutdown_pending) {
    s.shutdown_pending = false;
    if (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN) s.send_error = errno;
  }
  if (s.want_writable && s.handler != nullptr) {
    s.want_writable = false;
    Ready(fd, s, kWritable);
  }
}

void UringPoller::SendFailed(int fd, FdState& s, int err) {
  s.send_error = err;
  s.sends.reset();
  s.shutdown_pending = false;
  if (s.close_pending) {
    CloseNow(fd);
    return;
  }
  if (s.handler != nullptr) Ready(fd, s, kReadable | kWritable | kHangup);
}

int UringPoller::ShutdownWrite(int fd) {
  FdState* s = Find(fd);
  if (s != nullptr && s->sends != nullptr) {
    s->shutdown_pending = true;  // after the queued bytes, as the FIN would be
    return 0;
  }
  return shutdown(fd, SHUT_WR);
}

}  // namespace gateway
