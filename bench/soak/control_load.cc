// CloseStorm, batch by batch: open its connections and pipeline frames on
// them until each has an answer (so the gateway has accepted it), list the
// gateway's connections and find them by local address, then close each with
// CloseConnection while the traffic goes on:
//   graceful {fd, id}: the stream must end with EOF at a frame boundary,
//     every answer verified, and at least as many answers as the gateway had
//     read frames (frames_in) when it listed them, which was before the close;
//   force {fd, id}: only corruption is checked (queued answers may be
//     dropped, the client may see a reset);
//   {fd, wrong id}: NOT_FOUND, and the connection must live on: one more
//     request is answered, then our FIN gets EOF.
// A NOT_FOUND for the right {fd, id} is counted, not failed (acceptable in a
// storm).
#include "bench/soak/control_load.h"

#include <grpcpp/support/channel_arguments.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <unordered_map>

namespace soak {
namespace {

constexpr int kConnectTimeoutMs = 5000;
constexpr int kMaxLogged = 20;
constexpr uint64_t kWrongIdBit = uint64_t{1} << 62;

std::unique_ptr<grpc::ClientContext> Context(int seconds = 10) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

const char* ModeName(v1::TriggerMode mode) {
  return mode == v1::TRIGGER_MODE_LEVEL ? "level" : mode == v1::TRIGGER_MODE_EDGE ? "edge" : "unspecified";
}

}  // namespace

// --- TriggerFlipper ---------------------------------------------------------

void TriggerFlipper::Run() {
  SoakCounters& c = counters();
  v1::TriggerMode current = v1::TRIGGER_MODE_EDGE;
  {
    v1::TriggerModeStatus status;
    if (stub_->GetTriggerMode(Context().get(), v1::GetTriggerModeRequest(), &status).ok()) current = status.mode();
  }
  const auto interval = std::chrono::milliseconds(interval_ms_);
  Clock::time_point next = Clock::now() + interval;
  while (PaceUntil(next)) {
    const v1::TriggerMode want = current == v1::TRIGGER_MODE_LEVEL ? v1::TRIGGER_MODE_EDGE : v1::TRIGGER_MODE_LEVEL;
    v1::SetTriggerModeRequest request;
    request.set_mode(want);
    v1::TriggerModeStatus response;
    const Clock::time_point called = Clock::now();
    const grpc::Status status = stub_->SetTriggerMode(Context().get(), request, &response);
    RecordMaxMs(c.flip_max_ms, called);
    if (status.ok() && response.mode() == want) {
      c.flips_ok.fetch_add(1);
      current = want;
    } else {
      c.flips_failed.fetch_add(1);
      if (logged_++ < kMaxLogged) {
        SOAK_LOG("flip to %s failed: %s %s\n", ModeName(want), status.ok() ? "mode not applied" : "",
                 status.error_message().c_str());
      }
    }
    next += interval;
    const Clock::time_point now = Clock::now();
    if (next < now) next = now + interval;
  }
}

// --- CloseStorm -------------------------------------------------------------

struct CloseStorm::Member {
  enum class Kind { kGraceful, kForce, kWrongId, kUnchecked };
  enum class Phase { kWarmup, kClosing, kProof, kFinishing, kDone };
  std::unique_ptr<FrameStream> stream;
  std::string local;
  int depth = 1;
  Kind kind = Kind::kGraceful;
  Phase phase = Phase::kWarmup;
  int gw_fd = -1;
  uint64_t id = 0;
  uint64_t listed_frames_in = 0;
  uint64_t proof_target = 0;  // kProof: answers needed before our FIN
};

void CloseStorm::Run() {
  const auto interval = std::chrono::milliseconds(options_.interval_ms);
  Clock::time_point next = Clock::now();
  while (PaceUntil(next)) {
    RunBatch();
    next = Clock::now() + interval;
  }
}

void CloseStorm::TopUp(Member& m) {
  FrameStream& s = *m.stream;
  while (s.outstanding() < static_cast<size_t>(m.depth)) {
    s.Enqueue(PickPayloadSize(rng_), SoakPattern::RandomOffset(rng_));
  }
}

void CloseStorm::Settle(Member& m, FrameStream::Result end) {
  SoakCounters& c = counters();
  FrameStream& s = *m.stream;
  using Kind = Member::Kind;
  using Phase = Member::Phase;
  if (end == FrameStream::Result::kCorrupt) {
    c.storm_corrupt.fetch_add(1);
    if (logged_++ < kMaxLogged) SOAK_LOG("storm: CORRUPT answer: %s\n", s.error().c_str());
  } else if (m.phase == Phase::kClosing && m.kind == Kind::kGraceful) {
    const bool eof = end == FrameStream::Result::kEof;
    if (eof && s.at_frame_boundary() && s.answered() >= m.listed_frames_in) {
      c.graceful_checked.fetch_add(1);
    } else {
      c.graceful_bad.fetch_add(1);
      if (logged_++ < kMaxLogged) {
        SOAK_LOG("storm: graceful close of fd %d id %llu: %s, %s, %llu answers for %llu frames read before it\n",
                 m.gw_fd, static_cast<unsigned long long>(m.id),
                 eof                               ? "EOF"
                 : end == FrameStream::Result::kOk ? "did not end in 15 s"
                                                   : "reset/error",
                 s.at_frame_boundary() ? "at a frame boundary" : "inside a frame",
                 static_cast<unsigned long long>(s.answered()), static_cast<unsigned long long>(m.listed_frames_in));
      }
    }
  } else if (m.phase == Phase::kClosing && m.kind == Kind::kForce) {
    if (end == FrameStream::Result::kOk) {
      c.storm_unexpected.fetch_add(1);
      if (logged_++ < kMaxLogged) SOAK_LOG("storm: forced close of fd %d did not end in 15 s\n", m.gw_fd);
    } else {
      c.force_closed.fetch_add(1);
    }
  } else if (m.phase == Phase::kFinishing && end == FrameStream::Result::kEof && s.at_frame_boundary()) {
    c.wrong_id_not_found.fetch_add(1);
  } else if (m.kind != Kind::kUnchecked) {
    c.storm_unexpected.fetch_add(1);
    if (logged_++ < kMaxLogged) {
      SOAK_LOG("storm: connection (phase %d) ended unexpectedly: result %d errno %d, %llu answered\n",
               static_cast<int>(m.phase), static_cast<int>(end), s.last_errno(),
               static_cast<unsigned long long>(s.answered()));
    }
  }
  m.phase = Phase::kDone;
  m.stream.reset();
}

void CloseStorm::PumpAll(std::vector<Member>& members, int timeout_ms) {
  using Phase = Member::Phase;
  std::vector<pollfd> fds;
  std::vector<Member*> polled;
  for (Member& m : members) {
    if (!m.stream) continue;
    FrameStream& s = *m.stream;
    if (m.phase == Phase::kWarmup || m.phase == Phase::kClosing) TopUp(m);
    if (s.wants_write()) {
      const FrameStream::Result r = s.Send();
      if (r != FrameStream::Result::kOk) {
        Settle(m, r);
        continue;
      }
    }
    fds.push_back(pollfd{s.fd(), static_cast<short>(POLLIN | (s.wants_write() ? POLLOUT : 0)), 0});
    polled.push_back(&m);
  }
  if (fds.empty()) return;
  if (poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
  for (size_t i = 0; i < fds.size(); ++i) {
    Member& m = *polled[i];
    if (fds[i].revents == 0 || !m.stream) continue;
    FrameStream& s = *m.stream;
    FrameStream::Result r = FrameStream::Result::kOk;
    if (fds[i].revents & POLLOUT) r = s.Send();
    if (r == FrameStream::Result::kOk && (fds[i].revents & (POLLIN | POLLERR | POLLHUP))) r = s.Receive();
    if (r != FrameStream::Result::kOk) {
      Settle(m, r);
      continue;
    }
    if (m.phase == Phase::kProof && s.answered() >= m.proof_target) {
      if (shutdown(s.fd(), SHUT_WR) != 0) {
        Settle(m, FrameStream::Result::kError);
        continue;
      }
      m.phase = Phase::kFinishing;
    }
  }
}

void CloseStorm::RunBatch() {
  SoakCounters& c = counters();
  using Kind = Member::Kind;
  using Phase = Member::Phase;
  std::vector<Member> members(static_cast<size_t>(options_.conns));
  for (Member& m : members) {
    const int fd = ConnectTo(target_.data, kConnectTimeoutMs);
    if (fd < 0) {
      c.storm_connect_errors.fetch_add(1);
      continue;
    }
    m.stream = std::make_unique<FrameStream>(target_.pattern, fd);
    m.local = LocalAddress(fd);
    m.depth = 1 + static_cast<int>(rng_() % static_cast<uint64_t>(options_.max_pipeline));
    c.storm_conns.fetch_add(1);
  }
  const auto any = [&members](auto pred) {
    return std::any_of(members.begin(), members.end(), [&](const Member& m) { return m.stream && pred(m); });
  };
  // 1. Every connection answered once: the gateway has accepted it.
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
  while (any([](const Member& m) { return m.stream->answered() == 0; }) && Clock::now() < deadline) {
    PumpAll(members, 50);
  }
  for (Member& m : members) {
    if (m.stream && m.stream->answered() == 0) Settle(m, FrameStream::Result::kOk);
  }
  // 2. Find them in the gateway's listing.
  std::unordered_map<std::string, v1::Connection> listed;
  std::string token;
  for (int page = 0; page < 100; ++page) {
    v1::ListConnectionsRequest request;
    request.set_page_size(1000);
    request.set_page_token(token);
    v1::ListConnectionsResponse response;
    const Clock::time_point called = Clock::now();
    const grpc::Status status = stub_->ListConnections(Context().get(), request, &response);
    RecordMaxMs(c.list_max_ms, called);
    if (!status.ok()) {
      c.close_other_error.fetch_add(1);
      if (logged_++ < kMaxLogged) SOAK_LOG("storm: ListConnections: %s\n", status.error_message().c_str());
      return;  // members close with the vector
    }
    for (const v1::Connection& conn : response.connections()) listed[conn.peer()] = conn;
    token = response.next_page_token();
    if (token.empty()) break;
  }
  for (Member& m : members) {
    if (!m.stream) continue;
    const auto it = listed.find(m.local);
    if (it == listed.end()) {
      c.storm_not_listed.fetch_add(1);
      if (logged_++ < kMaxLogged) SOAK_LOG("storm: %s answered but is not listed\n", m.local.c_str());
      m.phase = Phase::kDone;
      m.stream.reset();
      continue;
    }
    m.gw_fd = it->second.fd();
    m.id = it->second.id();
    m.listed_frames_in = it->second.frames_in();
    const uint64_t pick = rng_() % 100;
    m.kind = pick < 60 ? Kind::kGraceful : pick < 80 ? Kind::kForce : Kind::kWrongId;
  }
  // 3. Close them, in random order, while the traffic goes on.
  std::vector<Member*> order;
  for (Member& m : members) {
    if (m.stream) order.push_back(&m);
  }
  std::shuffle(order.begin(), order.end(), rng_);
  for (Member* m : order) {
    if (!m->stream) continue;  // ended early (counted)
    v1::CloseConnectionRequest request;
    request.set_fd(m->gw_fd);
    request.set_force(m->kind == Kind::kForce);
    request.set_id(m->kind == Kind::kWrongId ? m->id ^ kWrongIdBit : m->id);
    v1::CloseConnectionResponse response;
    const Clock::time_point called = Clock::now();
    const grpc::Status status = stub_->CloseConnection(Context().get(), request, &response);
    RecordMaxMs(c.close_max_ms, called);
    if (!m->stream) continue;
    if (m->kind == Kind::kWrongId) {
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        m->phase = Phase::kProof;
        m->stream->Enqueue(PickPayloadSize(rng_), SoakPattern::RandomOffset(rng_));
        m->proof_target = m->stream->answered() + m->stream->outstanding();
      } else if (status.ok()) {
        c.wrong_id_hit.fetch_add(1);
        if (logged_++ < kMaxLogged) {
          SOAK_LOG("storm: CloseConnection{fd %d, wrong id} closed connection id %llu (must be NOT_FOUND)\n", m->gw_fd,
                   static_cast<unsigned long long>(m->id));
        }
        m->kind = Kind::kUnchecked;
        m->phase = Phase::kClosing;
      } else {
        c.close_other_error.fetch_add(1);
        m->kind = Kind::kUnchecked;
        m->phase = Phase::kClosing;
      }
    } else if (status.ok()) {
      c.close_ok.fetch_add(1);
      m->phase = Phase::kClosing;
    } else {
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        c.close_not_found.fetch_add(1);
      } else {
        c.close_other_error.fetch_add(1);
        if (logged_++ < kMaxLogged) SOAK_LOG("storm: CloseConnection: %s\n", status.error_message().c_str());
      }
      m->kind = Kind::kUnchecked;
      m->phase = Phase::kClosing;
    }
    PumpAll(members, 0);
  }
  // 4. Every connection ends as its close says.
  deadline = Clock::now() + std::chrono::seconds(15);
  while (any([](const Member&) { return true; }) && Clock::now() < deadline) PumpAll(members, 50);
  for (Member& m : members) {
    if (m.stream) Settle(m, FrameStream::Result::kOk);
  }
}

// --- StalledWatchers --------------------------------------------------------

struct StalledWatchers::Stream {
  std::shared_ptr<grpc::Channel> channel;  // destroyed last
  std::unique_ptr<ControlStub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::ConnectionEvent>> reader;
};

std::unique_ptr<StalledWatchers::Stream> StalledWatchers::Open() {
  auto stream = std::make_unique<Stream>();
  // A channel of its own (no shared subchannel): a stalled stream fills its
  // HTTP/2 connection's flow-control window, which must not block the
  // driver's other calls.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  stream->channel = grpc::CreateCustomChannel(options_.control_target, grpc::InsecureChannelCredentials(), args);
  stream->stub = v1::GatewayControl::NewStub(stream->channel);
  v1::WatchConnectionsRequest request;
  request.set_include_state_changes(true);
  stream->reader = stream->stub->WatchConnections(&stream->context, request);
  counters().watchers_opened.fetch_add(1);
  return stream;
}

void StalledWatchers::Close(Stream& stream) {
  SoakCounters& c = counters();
  stream.context.TryCancel();
  const grpc::Status status = stream.reader->Finish();
  switch (status.error_code()) {
    case grpc::StatusCode::CANCELLED: c.watchers_cancelled.fetch_add(1); break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: c.watchers_exhausted.fetch_add(1); break;
    default:
      c.watchers_other.fetch_add(1);
      SOAK_LOG("watcher ended with status %d: %s\n", static_cast<int>(status.error_code()),
               status.error_message().c_str());
      break;
  }
}

void StalledWatchers::SlowReader(int index) {
  SoakCounters& c = counters();
  while (!stopping()) {
    std::unique_ptr<Stream> stream = Open();
    {
      std::lock_guard<std::mutex> lock(mu_);
      slow_streams_[static_cast<size_t>(index)] = stream.get();
    }
    v1::ConnectionEvent event;
    // Registered before this check: a stop after it finds the stream and
    // cancels it, so Read() cannot block past the stop.
    while (!stopping() && stream->reader->Read(&event)) {
      c.watcher_events_read.fetch_add(1);
      AtomicMax(c.watcher_dropped_max, event.dropped());
      if (!PaceUntil(Clock::now() + std::chrono::milliseconds(options_.read_interval_ms))) break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      slow_streams_[static_cast<size_t>(index)] = nullptr;
    }
    Close(*stream);
    if (!PaceUntil(Clock::now() + std::chrono::seconds(1))) break;
  }
}

void StalledWatchers::Run() {
  slow_streams_.assign(static_cast<size_t>(options_.slow_read), nullptr);
  std::vector<std::thread> readers;
  for (int i = 0; i < options_.slow_read; ++i) readers.emplace_back([this, i] { SlowReader(i); });
  std::deque<std::unique_ptr<Stream>> stalled;
  for (int i = 0; i < options_.never_read; ++i) stalled.push_back(Open());
  const auto rotate = std::chrono::milliseconds(options_.rotate_ms);
  Clock::time_point next = Clock::now() + rotate;
  while (PaceUntil(next)) {
    if (!stalled.empty()) {
      Close(*stalled.front());
      stalled.pop_front();
      stalled.push_back(Open());
    }
    next += rotate;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Stream* s : slow_streams_) {
      if (s != nullptr) s->context.TryCancel();
    }
  }
  for (std::thread& t : readers) t.join();
  for (std::unique_ptr<Stream>& s : stalled) Close(*s);
}

}  // namespace soak
