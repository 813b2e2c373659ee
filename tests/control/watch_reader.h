// WatchConnections and WatchBackends clients for tests: open the stream,
// wait until the server has registered it (initial metadata), and collect
// events on a background thread so a test can wait for the ones it expects.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace gateway::control::testing {

// Thread-safe; owns the stream and its reading thread. (std::mutex, not
// absl::Mutex: TSan cannot see Debian's absl::Mutex.)
template <typename Event>
class BasicWatchReader {
 public:
  using Open = std::function<std::unique_ptr<grpc::ClientReader<Event>>(grpc::ClientContext*)>;
  // Opens the stream; if `read` is false nothing is read until Resume().
  BasicWatchReader(const Open& open, bool read, absl::Duration timeout) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    reader_ = open(&context_);
    reader_->WaitForInitialMetadata();
    if (read) Resume();
  }
  ~BasicWatchReader() { Stop(); }

  // Starts the reading thread (once).
  void Resume() {
    if (started_) return;
    started_ = true;
    thread_ = std::thread([this] { Run(); });
  }
  // Waits until `done(events)` holds or `deadline` passes; returns whether it held.
  bool WaitFor(const std::function<bool(const std::vector<Event>&)>& done, absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_until(lock, absl::ToChronoTime(deadline), [&] { return ended_ || done(events_); });
    return done(events_);
  }
  // Waits for the server to end the stream; returns its status.
  grpc::Status WaitForEnd(absl::Time deadline) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!changed_.wait_until(lock, absl::ToChronoTime(deadline), [this] { return ended_; })) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "stream did not end");
      }
    }
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  std::vector<Event> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  // Cancels the stream (if still open) and joins the thread.
  void Stop() {
    context_.TryCancel();
    Resume();  // so Finish below is reached
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    Event event;
    while (reader_->Read(&event)) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(event);
      }
      changed_.notify_all();
    }
    grpc::Status status = reader_->Finish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = status;
      ended_ = true;
    }
    changed_.notify_all();
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<Event>> reader_;
  bool started_ = false;  // owner thread only
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Event> events_;  // guarded by mu_
  bool ended_ = false;         // guarded by mu_
  grpc::Status status_;        // guarded by mu_
};

class WatchReader : public BasicWatchReader<v1::ConnectionEvent> {
 public:
  WatchReader(v1::GatewayControl::Stub* stub, const v1::WatchConnectionsRequest& request, bool read = true,
              absl::Duration timeout = absl::Seconds(60))
      : BasicWatchReader(
            [stub, request](grpc::ClientContext* context) { return stub->WatchConnections(context, request); }, read,
            timeout) {}
};

class BackendWatchReader : public BasicWatchReader<v1::BackendEvent> {
 public:
  explicit BackendWatchReader(v1::GatewayControl::Stub* stub, absl::Duration timeout = absl::Seconds(60))
      : BasicWatchReader(
            [stub](grpc::ClientContext* context) { return stub->WatchBackends(context, v1::WatchBackendsRequest()); },
            /*read=*/true, timeout) {}
};

}  // namespace gateway::control::testing
