// A WatchConnections client for tests: opens the stream, waits until the
// server has registered it (initial metadata), and collects events on a
// background thread so a test can wait for the ones it expects.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace gateway::control::testing {

// Thread-safe; owns the stream and its reading thread. (std::mutex, not
// absl::Mutex: TSan cannot see Debian's absl::Mutex.)
class WatchReader {
 public:
  // Opens the stream; if `read` is false nothing is read until Resume().
  WatchReader(v1::GatewayControl::Stub* stub, const v1::WatchConnectionsRequest& request, bool read = true,
              absl::Duration timeout = absl::Seconds(60)) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    reader_ = stub->WatchConnections(&context_, request);
    reader_->WaitForInitialMetadata();
    if (read) Resume();
  }
  ~WatchReader() { Stop(); }

  // Starts the reading thread (once).
  void Resume() {
    if (started_) return;
    started_ = true;
    thread_ = std::thread([this] { Run(); });
  }
  // Waits until `done(events)` holds or `deadline` passes; returns whether it held.
  bool WaitFor(const std::function<bool(const std::vector<v1::ConnectionEvent>&)>& done, absl::Time deadline) {
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
  std::vector<v1::ConnectionEvent> events() {
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
    v1::ConnectionEvent event;
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
  std::unique_ptr<grpc::ClientReader<v1::ConnectionEvent>> reader_;
  bool started_ = false;  // owner thread only
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<v1::ConnectionEvent> events_;  // guarded by mu_
  bool ended_ = false;                       // guarded by mu_
  grpc::Status status_;                      // guarded by mu_
};

}  // namespace gateway::control::testing
