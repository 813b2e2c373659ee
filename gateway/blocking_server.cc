#include "gateway/blocking_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/event_loop.h"
#include "gateway/log.h"

namespace gateway {
namespace {

// How long accepting pauses when the process is out of fds.
constexpr absl::Duration kAcceptBackoff = absl::Milliseconds(100);
// After the drain deadline's shutdown(SHUT_RDWR), every thread is woken and
// exits at once; this only bounds a bug.
constexpr absl::Duration kForceGrace = absl::Seconds(10);

void* ConnectionThread(void* arg) {
  static_cast<BlockingConnection*>(arg)->Run();
  return nullptr;
}

// Starts `connection`'s thread with a small stack.
int StartThread(BlockingConnection* connection) {
  pthread_attr_t attr;
  if (int err = pthread_attr_init(&attr); err != 0) return err;
  int err = pthread_attr_setstacksize(&attr, kThreadStackBytes);
  if (err == 0) err = pthread_create(&connection->thread, &attr, ConnectionThread, connection);
  pthread_attr_destroy(&attr);
  return err;
}

}  // namespace

BlockingServer::BlockingServer(int listen_fd, const ReactorOptions& options, SharedCounters* shared,
                               std::shared_ptr<FrameHandlerFactory> handler_factory)
    : listen_fd_(listen_fd), options_(options), shared_(shared), handler_factory_(std::move(handler_factory)) {}

BlockingServer::~BlockingServer() {
  Shutdown(absl::ZeroDuration());
  close(listen_fd_);
}

absl::Status BlockingServer::Start() {
  std::lock_guard<std::mutex> lock(table_mu_);
  if (started_ || stopping_) return absl::OkStatus();
  const int flags = fcntl(listen_fd_, F_GETFL);
  if (flags < 0 || fcntl(listen_fd_, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("cannot make the listener blocking: ", std::strerror(errno)));
  }
  started_ = true;
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void BlockingServer::AcceptLoop() {
  while (!stop_accepting_.load(std::memory_order_acquire)) {
    SocketAddress peer{};
    socklen_t len = sizeof peer;
    const int fd = accept4(listen_fd_, &peer.sa, &len, SOCK_CLOEXEC);
    if (fd >= 0) {
      Admit(fd, peer);
      continue;
    }
    const int err = errno;
    if (stop_accepting_.load(std::memory_order_acquire)) break;  // woken by shutdown(SHUT_RD): EINVAL
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    {
      std::lock_guard<std::mutex> lock(report_mu_);
      stats_.accept_errors.Add();
      stats_.accept_backoffs.Add();
    }
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
      LogError(absl::StrCat("blocking acceptor: accept4: ", std::strerror(err)));
    }
    BackOff();  // no spinning on an error that persists
  }
}

void BlockingServer::BackOff() {
  std::unique_lock<std::mutex> lock(table_mu_);
  table_changed_.wait_for(lock, absl::ToChronoNanoseconds(kAcceptBackoff),
                          [this] { return stop_accepting_.load(std::memory_order_acquire); });
}

void BlockingServer::Admit(int fd, const SocketAddress& peer) {
  Reap();
  std::lock_guard<std::mutex> lock(table_mu_);
  {
    std::lock_guard<std::mutex> report(report_mu_);
    stats_.accepted.Add();
  }
  const int64_t active = shared_->active.fetch_add(1, std::memory_order_relaxed);
  if (stopping_) return Reject(fd, CloseReason::kShutdown);
  if (options_.max_connections > 0 && active >= options_.max_connections) {
    return Reject(fd, CloseReason::kMaxConnections);
  }
  const int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails on a Unix socket: harmless
  const uint64_t id = shared_->next_id.fetch_add(1, std::memory_order_relaxed);
  auto owned = std::make_unique<BlockingConnection>(fd, id, peer, &options_, static_cast<BlockingHost*>(this),
                                                    handler_factory_->Create());
  BlockingConnection* connection = owned.get();
  {
    std::lock_guard<std::mutex> report(report_mu_);
    stats_.active.Add(1);
    stats_.by_state[static_cast<int>(ConnectionState::kAccept)].Add(1);
    if (!observers_.empty()) Publish(ConnectionEvent::Type::kOpened, *connection, ConnectionState::kAccept, {});
  }
  // The thread cannot reach table_mu_ (to close) before the entry exists.
  connections_.emplace(fd, std::move(owned));
  if (const int err = StartThread(connection); err != 0) {
    LogError(absl::StrCat("blocking model: cannot start a connection thread: ", std::strerror(err)));
    {
      std::lock_guard<std::mutex> report(report_mu_);
      stats_.active.Add(-1);
      stats_.by_state[static_cast<int>(ConnectionState::kAccept)].Add(-1);
      stats_.closed[static_cast<int>(CloseReason::kError)].Add();
      if (!observers_.empty()) Publish(ConnectionEvent::Type::kClosed, *connection, {}, CloseReason::kError);
    }
    shared_->active.fetch_sub(1, std::memory_order_relaxed);
    connections_.erase(fd);
    close(fd);
  }
}

void BlockingServer::Reject(int fd, CloseReason reason) {
  shared_->active.fetch_sub(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> report(report_mu_);
    stats_.rejected.Add();
    stats_.closed[static_cast<int>(reason)].Add();
  }
  close(fd);  // after counting, so a client that sees the EOF sees the counters too
}

absl::Status BlockingServer::Adopt(int fd, const SocketAddress& peer) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("fd ", fd, " cannot be made blocking"));
  }
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    if (stopping_) {
      close(fd);
      return absl::UnavailableError("the gateway is shutting down");
    }
  }
  Admit(fd, peer);
  return absl::OkStatus();
}

void BlockingServer::Report(BlockingConnection& connection, const Batch& batch,
                            std::initializer_list<ConnectionState> states) {
  std::lock_guard<std::mutex> lock(report_mu_);
  if (batch.bytes_in != 0) stats_.bytes_in.Add(batch.bytes_in);
  if (batch.frames_in != 0) stats_.frames_in.Add(batch.frames_in);
  if (batch.bytes_out != 0) stats_.bytes_out.Add(batch.bytes_out);
  if (batch.frames_out != 0) stats_.frames_out.Add(batch.frames_out);
  if (batch.protocol_errors != 0) stats_.protocol_errors.Add(batch.protocol_errors);
  if (batch.duration_ns >= 0 && batch.frames_out > 0) {
    stats_.request_duration.Observe(static_cast<double>(batch.duration_ns) * 1e-9, batch.frames_out);
  }
  for (ConnectionState state : states) {
    const ConnectionState old_state = connection.state();
    if (state == old_state) continue;
    connection.set_state(state);
    stats_.by_state[static_cast<int>(old_state)].Add(-1);
    stats_.by_state[static_cast<int>(state)].Add(1);
    if (state_observers_ > 0) Publish(ConnectionEvent::Type::kStateChanged, connection, old_state, {});
  }
}

void BlockingServer::Closed(BlockingConnection& connection, CloseReason reason) {
  // Counted, unlisted and closed under table_mu_: a listing never shows a
  // connection already counted as closed, and a close request made under it
  // never reaches a reused fd. The thread is joined later (Reap).
  std::lock_guard<std::mutex> lock(table_mu_);
  {
    std::lock_guard<std::mutex> report(report_mu_);
    const ConnectionState old_state = connection.state();
    if (old_state != ConnectionState::kClosing) {
      connection.set_state(ConnectionState::kClosing);
      if (state_observers_ > 0) Publish(ConnectionEvent::Type::kStateChanged, connection, old_state, {});
    }
    stats_.by_state[static_cast<int>(old_state)].Add(-1);
    stats_.closed[static_cast<int>(reason)].Add();
    stats_.active.Add(-1);
    if (!observers_.empty()) Publish(ConnectionEvent::Type::kClosed, connection, {}, reason);
  }
  shared_->active.fetch_sub(1, std::memory_order_relaxed);
  auto it = connections_.find(connection.fd());
  close(connection.fd());
  finished_.push_back(std::move(it->second));
  connections_.erase(it);
  table_changed_.notify_all();
}

void BlockingServer::Reap() {
  std::vector<std::unique_ptr<BlockingConnection>> finished;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    finished.swap(finished_);
  }
  for (const auto& connection : finished) pthread_join(connection->thread, nullptr);
}

void BlockingServer::Shutdown(absl::Duration drain_timeout) {
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    if (stopping_) return;
    stopping_ = true;
    stop_accepting_.store(true, std::memory_order_release);
    table_changed_.notify_all();  // ends a back-off
  }
  if (acceptor_.joinable()) {
    // Wakes the blocked accept4() (it fails with EINVAL) and refuses new clients.
    if (shutdown(listen_fd_, SHUT_RD) != 0) LogError(absl::StrCat("blocking acceptor: shutdown: ", strerror(errno)));
    acceptor_.join();
  }
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(std::min(drain_timeout, absl::Hours(24)));
  std::unique_lock<std::mutex> lock(table_mu_);
  for (auto& [fd, connection] : connections_) connection->RequestClose(CloseReason::kShutdown, CloseMode::kFlush);
  table_changed_.wait_until(lock, deadline, [this] { return connections_.empty(); });
  for (auto& [fd, connection] : connections_) connection->RequestClose(CloseReason::kShutdown, CloseMode::kForce);
  if (!table_changed_.wait_for(lock, absl::ToChronoNanoseconds(kForceGrace), [this] { return connections_.empty(); })) {
    Die("blocking model: connection threads did not stop after shutdown(SHUT_RDWR)");
  }
  lock.unlock();
  Reap();
  stopped_.store(true, std::memory_order_release);
}

void BlockingServer::ListConnections(const ListQuery& query, std::vector<ConnectionInfo>* page, size_t* total) {
  const absl::Time wall_now = absl::Now();
  const int64_t mono_now = MonotonicNowNs();
  std::lock_guard<std::mutex> lock(table_mu_);
  *total = 0;
  for (const auto& [fd, connection] : connections_) {
    if (query.state.has_value() && connection->state() != *query.state) continue;
    ++*total;
    if (fd <= query.after_fd || (query.limit > 0 && page->size() >= query.limit)) continue;
    page->push_back(connection->Snapshot(wall_now, mono_now));
  }
}

std::optional<ConnectionInfo> BlockingServer::GetConnection(int fd, uint64_t id) {
  std::lock_guard<std::mutex> lock(table_mu_);
  auto it = connections_.find(fd);
  if (it == connections_.end() || (id != 0 && it->second->id() != id)) return std::nullopt;
  return it->second->Snapshot(absl::Now(), MonotonicNowNs());
}

bool BlockingServer::CloseConnection(int fd, uint64_t id, CloseMode mode) {
  std::lock_guard<std::mutex> lock(table_mu_);
  auto it = connections_.find(fd);
  if (it == connections_.end() || (id != 0 && it->second->id() != id)) return false;
  it->second->RequestClose(CloseReason::kControlPlane, mode);
  return true;
}

void BlockingServer::AddObserver(std::shared_ptr<ConnectionObserver> observer) {
  std::lock_guard<std::mutex> lock(report_mu_);
  if (observer->WantsStateChanges()) ++state_observers_;
  observers_.push_back(std::move(observer));
}

void BlockingServer::RemoveObserver(const ConnectionObserver* observer) {
  std::lock_guard<std::mutex> lock(report_mu_);
  auto it =
      std::find_if(observers_.begin(), observers_.end(), [observer](const auto& o) { return o.get() == observer; });
  if (it == observers_.end()) return;
  if ((*it)->WantsStateChanges()) --state_observers_;
  observers_.erase(it);
}

void BlockingServer::Publish(ConnectionEvent::Type type, const BlockingConnection& connection,
                             ConnectionState old_state, CloseReason reason) {
  ConnectionEvent event;
  event.type = type;
  event.time = absl::Now();
  event.connection = connection.Snapshot(event.time, MonotonicNowNs());
  event.old_state = old_state;
  event.reason = reason;
  for (const auto& observer : observers_) {
    if (type == ConnectionEvent::Type::kStateChanged && !observer->WantsStateChanges()) continue;
    observer->OnEvent(event);
  }
}

}  // namespace gateway
