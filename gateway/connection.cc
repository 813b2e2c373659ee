#include "gateway/connection.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gateway/connection_events.h"
#include "gateway/event_loop.h"
#include "gateway/frame_codec.h"
#include "gateway/frame_handler.h"
#include "gateway/options.h"
#include "gateway/reactor_stats.h"
#include "gateway/read_scratch.h"
#include "gateway/thread_check.h"
#include "gateway/upstream_pool.h"

namespace gateway {
namespace {

// Leftover input at least this large is kept by adopting the scratch block
// (saving the copy). Half the block, so a partial frame never holds more
// than twice the bytes it has received, whichever way it is kept.
constexpr size_t kAdoptThreshold = ReadScratch::kSize / 2;
// Upstream mode: a client with this many requests unanswered stops reading
// until answers arrive, so one client cannot queue without bound (nor, by
// bytes, beyond --high_water_bytes: see UpstreamCapped()).
constexpr uint64_t kMaxClientOutstanding = 1024;

}  // namespace

Connection::Connection(const ConnectionContext* context, int fd, uint64_t id, const SocketAddress& peer)
    : ctx_(context), fd_(fd), id_(id), peer_(peer), opened_ns_(context->loop->now_ns()), last_active_ns_(opened_ns_) {
  if (ctx_->upstream != nullptr) {
    link_ = std::make_shared<ClientLink>();
    link_->connection = this;
    link_->hash = id;
  }
}

Connection::~Connection() {
  if (link_ != nullptr) link_->connection = nullptr;
  in_.Release(ctx_->pool);
  out_.Release(ctx_->pool);
  ctx_->loop->poller().Close(fd_);
}

absl::Status Connection::Start() {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  registered_interest_ = DesiredInterest();
  absl::Status status = ctx_->loop->poller().Add(fd_, this, registered_interest_);
  if (!status.ok()) return status;
  // Both modes report the first bytes as an event; that drives the first read.
  SetState(ConnectionState::kRead);
  return absl::OkStatus();
}

void Connection::OnReady(uint32_t ready) {
  if (ready & Poller::kReadable) readable_ = true;
  if (ready & Poller::kWritable) writable_ = true;
  if (ready & Poller::kHangup) hangup_seen_ = true;
  Service();
}

void Connection::Service() {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  if (phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kLingering) {
    DiscardInput();
    return;
  }
  if (writable_ && !out_.empty() && FlushOutput() == IoResult::kClosed) return;
  int budget = ctx_->options->read_budget;
  while (readable_ && !read_eof_ && !paused_ && open()) {
    if (link_ != nullptr && UpstreamBlocked()) break;
    if (budget-- == 0) {
      // Edge mode will not report these bytes again: come back to them after
      // the other connections of this wakeup had their turn.
      if (ctx_->loop->poller().mode() == TriggerMode::kEdge) ctx_->host->ServiceLater(this);
      break;
    }
    const bool over_budget = ctx_->host->OverBudget();
    if (over_budget && (pending_frame_size_ == 0 || in_.writable() == 0)) {
      // The bytes wait in the kernel (TCP flow control slows the client)
      // until the gateway's buffers drain; the reactor services us then.
      // A frame begun may still be completed in the room its block already
      // has: that takes no new memory and frees the block once answered,
      // so partial frames cannot hold the budget (and everyone) hostage.
      ctx_->host->WaitForBudget(this);
      break;
    }
    if (ReadOnce(/*in_place_only=*/over_budget) == IoResult::kClosed) return;
  }
  if (link_ != nullptr) link_->room_granted = false;  // its turn is over
  if (read_eof_ && open()) StopReading(CloseReason::kPeerClosed);
  if (phase_ == Phase::kDraining && !readable_ && (in_.empty() || drain_reason_ == CloseReason::kShutdown)) {
    // The socket is dry and every whole frame read is answered before the
    // FIN. Age and rebalancing drains also wait for a frame half-read (its
    // --frame_timeout bounds that); a shutdown, bounded in time, drops it,
    // and the client resends it elsewhere.
    StopReading(drain_reason_);
  }
  if (!open() || paused_ || host_links_.waiting_for_budget ||
      (link_ != nullptr && (link_->waiting_for_room || UpstreamCapped()))) {
    // The frame deadline runs only while we are willing to read: a client
    // held back by our backpressure is not slow, and a closing connection
    // drops its partial frame. Reading again restarts it (see ReadOnce).
    ctx_->timers->FrameDone(this);
  }
  if (!open() && OwesNothing()) {
    FinishClosing();
    return;
  }
  UpdateState();
  UpdateInterest();
}

bool Connection::UpstreamCapped() const {
  // Requests in flight and answers held count like queued output: a client
  // that pipelines big frames pauses at the same mark as one that does not read.
  return link_->outstanding() >= kMaxClientOutstanding || link_->slot_bytes >= ctx_->options->high_water;
}

bool Connection::UpstreamBlocked() {
  if (UpstreamCapped()) return true;  // OnUpstreamReply resumes us
  if (ctx_->upstream->MustWaitForRoom(link_)) {
    ctx_->upstream->WaitForRoom(link_);
    return true;
  }
  return false;
}

void Connection::Forward(absl::string_view frame) {
  const uint64_t seq = link_->next_seq++;
  const int64_t now = ctx_->loop->now_ns();
  link_->slots.push_back(ClientLink::Slot{{}, now, static_cast<uint32_t>(frame.size()), false});
  link_->slot_bytes += frame.size();
  if (std::optional<UpstreamError> error = ctx_->upstream->Submit(link_, seq, frame, now); error.has_value()) {
    MarkUpstreamReply(seq, kErrorFrame, /*error=*/true);
  }
}

void Connection::MarkUpstreamReply(uint64_t seq, absl::string_view frame, bool error) {
  if (seq < link_->head_seq || seq >= link_->close_at_seq) return;  // after an error that closes: dropped
  if (error && ctx_->upstream->options().error_mode == UpstreamErrorMode::kClose) {
    link_->close_at_seq = seq;
    return;
  }
  ClientLink::Slot& slot = link_->slots[seq - link_->head_seq];
  slot.response.assign(frame.data(), frame.size());
  link_->slot_bytes += frame.size();
  slot.ready = true;
}

void Connection::FlushUpstreamSlots() {
  std::deque<ClientLink::Slot>& slots = link_->slots;
  while (!slots.empty() && link_->head_seq < link_->close_at_seq && slots.front().ready) {
    // The answered run at the front leaves in one send.
    size_t run = 1;
    while (run < slots.size() && link_->head_seq + run < link_->close_at_seq && slots[run].ready) ++run;
    const int64_t read_ns = slots.front().read_ns;
    std::string batch = std::move(slots.front().response);
    for (size_t i = 1; i < run; ++i) batch += slots[i].response;
    for (size_t i = 0; i < run; ++i) link_->slot_bytes -= slots[i].request_bytes;
    link_->slot_bytes -= batch.size();
    slots.erase(slots.begin(), slots.begin() + static_cast<ptrdiff_t>(run));
    link_->head_seq += run;
    QueueOutput(batch.data(), batch.size(), run, read_ns);
  }
  if (link_->head_seq >= link_->close_at_seq && !slots.empty()) {
    // --upstream_error=close: what came before the failed request is out;
    // nothing after it will be.
    slots.clear();
    link_->slot_bytes = 0;
    StopReading(CloseReason::kUpstreamError);
  }
}

void Connection::OnUpstreamReply(uint64_t seq, absl::string_view frame, bool error) {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  if (phase_ == Phase::kClosed || phase_ == Phase::kLingering) return;
  const bool was_capped = UpstreamCapped();
  std::deque<ClientLink::Slot>& slots = link_->slots;
  if (!error && seq == link_->head_seq && seq < link_->close_at_seq && (slots.size() == 1 || !slots[1].ready)) {
    // The common case: the answer to the oldest request, nothing answered
    // behind it: straight from the upstream read buffer to our output.
    const int64_t read_ns = slots.front().read_ns;
    link_->slot_bytes -= slots.front().request_bytes;
    slots.pop_front();
    ++link_->head_seq;
    QueueOutput(frame.data(), frame.size(), 1, read_ns);
    // --upstream_error=close: the next one may be the failed request.
    if (link_->head_seq == link_->close_at_seq) FlushUpstreamSlots();
  } else {
    MarkUpstreamReply(seq, frame, error);
    FlushUpstreamSlots();
  }
  // The answers of this turn leave together, in one send, once the events
  // are dispatched (the reactor services us again).
  if (!out_.empty()) ctx_->host->ServiceLater(this);
  if (!open() && OwesNothing()) {
    FinishClosing();
    return;
  }
  if (was_capped && !UpstreamCapped() && open()) ctx_->host->ServiceLater(this);
  UpdateState();
  UpdateInterest();
}

IoResult Connection::ReadOnce(bool in_place_only) {
  BufferPool* pool = ctx_->pool;
  char* scratch = ctx_->scratch->data();
  // One readv: first what goes on the partial frame in in_ (never past its
  // end, so it is answered where it lies), then, once the frame is complete,
  // the scratch block. A partial header (at most four bytes) is moved in
  // front of the new bytes.
  //
  // Every byte read may come back as a response that has to be queued, so a
  // read takes at most the room left under the high-water mark: queued
  // output then never exceeds high_water plus the frame that was partly
  // buffered before the read (< one maximum frame).
  const size_t high_water = ctx_->options->high_water;
  if (out_.size() >= high_water) {
    paused_ = true;
    return IoResult::kKeepOpen;
  }
  const size_t room = high_water - out_.size();
  //
  // A frame begun is completed into its own block, which grows with what
  // arrives (at most doubling per read), so a client that sends a header
  // and trickles the rest never makes us hold a whole frame's block. Bytes
  // go to the scratch block only once the frame is complete.
  size_t to_input = 0;
  size_t carried = 0;
  bool frame_completes = true;
  if (!in_.empty()) {
    if (pending_frame_size_ == 0) {
      carried = in_.size();
      std::memcpy(scratch, in_.data(), carried);
      in_.Release(pool);
    } else {
      const size_t rest = pending_frame_size_ - in_.size();
      const size_t grow = in_place_only ? in_.writable() : std::max(in_.writable(), in_.size());
      to_input = std::min({rest, room, grow});
      frame_completes = to_input == rest;
      in_.EnsureWritable(to_input, pool);
    }
  }
  const size_t to_scratch =
      frame_completes && !in_place_only ? std::min(ReadScratch::kSize - carried, room - to_input) : 0;
  iovec iov[2] = {};
  int iov_count = 0;
  if (to_input > 0) iov[iov_count++] = iovec{in_.write_ptr(), to_input};
  if (to_scratch > 0) iov[iov_count++] = iovec{scratch + carried, to_scratch};
  ssize_t n;
  do {
    n = ctx_->loop->poller().Readv(fd_, iov, iov_count);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    if (carried > 0) in_.Append(scratch, carried, pool);  // put the header bytes back
    if (n == 0) {
      read_eof_ = true;
      return IoResult::kKeepOpen;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      return IoResult::kKeepOpen;
    }
    CloseForErrno(errno);
    return IoResult::kClosed;
  }

  const size_t got = static_cast<size_t>(n);
  // A short read emptied the socket: bytes arriving later raise a new event
  // in either mode, so the recv() that would only say EAGAIN is skipped. Not
  // after a hang-up, whose event has been consumed: read on to the EOF.
  if (got < to_input + to_scratch && !hangup_seen_) readable_ = false;
  bytes_in_ += got;
  ctx_->stats->bytes_in.Add(got);
  Touch();
  const uint64_t frames_before = frames_in_;
  size_t into_scratch = got;
  if (to_input > 0) {
    const size_t into_input = std::min(got, to_input);
    in_.Produce(into_input);
    into_scratch -= into_input;
    if (in_.size() == pending_frame_size_ && AnswerInput() == IoResult::kClosed) return IoResult::kClosed;
  }
  if (carried + into_scratch > 0 && AnswerScratch(carried + into_scratch) == IoResult::kClosed) {
    return IoResult::kClosed;
  }
  // The frame deadline runs from the first byte of the frame now pending.
  if (in_.empty()) {
    ctx_->timers->FrameDone(this);
  } else if (frames_in_ != frames_before || !timer_links_.in_frame_list) {
    ctx_->timers->FrameStarted(this, ctx_->loop->now_ns());  // a new frame, or reading resumed after a pause
  }
  return IoResult::kKeepOpen;
}

IoResult Connection::AnswerInput() {
  // in_ starts with a validated header, so there is no bad header to find.
  const Answered answered = AnswerFrames(in_.data(), in_.size());
  if (answered.response_bytes > 0 &&
      SendResponses(in_.data(), answered.response_bytes, answered.frames) == IoResult::kClosed) {
    return IoResult::kClosed;
  }
  if (link_ != nullptr) {
    FlushUpstreamSlots();  // answers given at once (no backend)
    if (!out_.empty()) ctx_->host->ServiceLater(this);
  }
  in_.Consume(answered.consumed);
  in_.ReleaseIfEmpty(ctx_->pool);
  return IoResult::kKeepOpen;
}

IoResult Connection::AnswerScratch(size_t len) {
  BufferPool* pool = ctx_->pool;
  char* data = ctx_->scratch->data();
  const Answered answered = AnswerFrames(data, len);
  if (answered.response_bytes > 0 &&
      SendResponses(data, answered.response_bytes, answered.frames) == IoResult::kClosed) {
    return IoResult::kClosed;
  }
  if (link_ != nullptr) {
    FlushUpstreamSlots();  // answers given at once (no backend)
    if (!out_.empty()) ctx_->host->ServiceLater(this);
  }
  const size_t consumed = answered.consumed;
  if (answered.bad_header) {
    ctx_->stats->protocol_errors.Add();
    pending_frame_size_ = 0;
    StopReading(CloseReason::kProtocolError);
  } else if (len - consumed >= kAdoptThreshold) {
    // A large partial frame: the scratch block becomes the input buffer (it
    // has room for any whole frame) instead of copying the bytes out of it.
    in_.Adopt(ctx_->scratch->Take(), ReadScratch::kSize, consumed, len, pool);
  } else if (consumed < len) {
    // A small partial frame (or header) gets a block for what has arrived;
    // the block grows as the rest does (see ReadOnce).
    in_.Append(data + consumed, len - consumed, pool);
  }
  return IoResult::kKeepOpen;
}

Connection::Answered Connection::AnswerFrames(char* data, size_t len) {
  Answered answered;
  size_t read_pos = 0;
  size_t write_pos = 0;
  FrameHandler& handler = *ctx_->handler;
  for (;;) {
    const FrameScan scan = ScanFrame(absl::string_view(data + read_pos, len - read_pos));
    read_pos += scan.skip;
    if (scan.status != FrameScan::Status::kFrame) {
      pending_frame_size_ = static_cast<uint32_t>(scan.frame_size);
      answered.bad_header = scan.status == FrameScan::Status::kError;
      break;
    }
    if (answered.frames == 0) SetState(ConnectionState::kProcess);
    char* frame = data + read_pos;
    if (link_ != nullptr) {
      Forward(absl::string_view(frame, scan.frame_size));
    } else {
      handler.HandleInPlace(absl::Span<char>(frame + kHeaderSize, scan.frame_size - kHeaderSize));
      // Responses are packed at the front so they leave in one send(); frames
      // only move when CR/LF bytes were skipped between them.
      if (write_pos != read_pos) std::memmove(data + write_pos, frame, scan.frame_size);
      write_pos += scan.frame_size;
    }
    read_pos += scan.frame_size;
    ++answered.frames;
  }
  answered.consumed = read_pos;
  answered.response_bytes = write_pos;
  if (answered.frames > 0) {
    frames_in_ += answered.frames;
    ctx_->stats->frames_in.Add(answered.frames);
  }
  return answered;
}

IoResult Connection::SendResponses(const char* data, size_t len, uint64_t frames, int64_t read_ns) {
  SetState(ConnectionState::kWrite);
  if (read_ns == 0) read_ns = ctx_->loop->now_ns();
  if (!out_.empty() || !writable_) {
    QueueOutput(data, len, frames, read_ns);
    return IoResult::kKeepOpen;
  }
  size_t sent = 0;
  if (WriteToSocket(data, len, &sent) == IoResult::kClosed) return IoResult::kClosed;
  if (sent < len) {
    QueueOutput(data + sent, len - sent, frames, read_ns);
    return IoResult::kKeepOpen;
  }
  frames_out_ += frames;
  ReactorStats& stats = *ctx_->stats;
  stats.frames_out.Add(frames);
  if (ctx_->options->measure_latency) {
    stats.request_duration.Observe(static_cast<double>(MonotonicNowNs() - read_ns) * 1e-9, frames);
  }
  SetState(ConnectionState::kRead);
  return IoResult::kKeepOpen;
}

void Connection::QueueOutput(const char* data, size_t len, uint64_t frames, int64_t read_ns) {
  if (out_.empty()) out_started_at_ = bytes_out_;
  out_.Append(data, len, ctx_->pool);
  if (!pending_.empty() && pending_.back().read_ns == read_ns) {
    // Answers to requests read together (upstream mode queues them one by one).
    pending_.back().end = bytes_out_ + out_.size();
    pending_.back().frames += frames;
  } else {
    pending_.push_back(PendingBatch{bytes_out_ + out_.size(), frames, read_ns});
  }
  if (out_.size() >= ctx_->options->high_water) paused_ = true;
}

IoResult Connection::WriteToSocket(const char* data, size_t len, size_t* sent) {
  *sent = 0;
  while (*sent < len) {
    const ssize_t n = ctx_->loop->poller().Send(fd_, data + *sent, len - *sent);
    if (n > 0) {
      *sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writable_ = false;
      break;
    } else {
      CloseForErrno(n == 0 ? EPIPE : errno);
      return IoResult::kClosed;
    }
  }
  bytes_out_ += *sent;
  size_t newly_counted = *sent;
  if (recounted_out_ > 0) [[unlikely]] {
    const size_t recounted = std::min<uint64_t>(recounted_out_, newly_counted);
    recounted_out_ -= recounted;
    newly_counted -= recounted;
  }
  ctx_->stats->bytes_out.Add(newly_counted);
  return IoResult::kKeepOpen;
}

IoResult Connection::FlushOutput() {
  size_t sent = 0;
  if (WriteToSocket(out_.data(), out_.size(), &sent) == IoResult::kClosed) return IoResult::kClosed;
  if (sent > 0) {
    out_.Consume(sent);
    Touch();
  }
  CompleteWrites();
  if (out_.empty()) {
    out_.Release(ctx_->pool);
    std::vector<PendingBatch>().swap(pending_);
  }
  if (paused_ && out_.size() <= ctx_->options->low_water) paused_ = false;
  return IoResult::kKeepOpen;
}

void Connection::CompleteWrites() {
  size_t done = 0;
  ReactorStats& stats = *ctx_->stats;
  const bool measure_latency = ctx_->options->measure_latency;
  const int64_t now = measure_latency ? MonotonicNowNs() : 0;
  while (done < pending_.size() && pending_[done].end <= bytes_out_) {
    const PendingBatch& batch = pending_[done++];
    frames_out_ += batch.frames;
    stats.frames_out.Add(batch.frames);
    if (measure_latency) {
      stats.request_duration.Observe(static_cast<double>(now - batch.read_ns) * 1e-9, batch.frames);
    }
  }
  if (done > 0) pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(done));
}

void Connection::FinishClosing() {
  if (read_eof_) {  // nothing unread: a plain close sends FIN, never RST
    Close(close_reason_);
    return;
  }
  // Unread input would turn close() into an RST that can destroy responses
  // still in flight; send FIN and wait (bounded) for the peer's.
  if (ctx_->loop->poller().ShutdownWrite(fd_) != 0) {
    Close(close_reason_);
    return;
  }
  phase_ = Phase::kLingering;
  in_.Release(ctx_->pool);
  SetState(ConnectionState::kClosing);
  ctx_->timers->StartLinger(this, ctx_->loop->now_ns());
  UpdateInterest();
  DiscardInput();
}

void Connection::DiscardInput() {
  char* scratch = ctx_->scratch->data();
  for (int budget = ctx_->options->read_budget; budget > 0; --budget) {
    const iovec iov{scratch, ReadScratch::kSize};
    const ssize_t n = ctx_->loop->poller().Readv(fd_, &iov, 1);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      readable_ = false;
      return;
    }
    Close(close_reason_);  // EOF or error: the peer is gone either way
    return;
  }
  if (ctx_->loop->poller().mode() == TriggerMode::kEdge) ctx_->host->ServiceLater(this);
}

void Connection::StopReading(CloseReason reason) {
  if (open() || close_reason_ == CloseReason::kPeerClosed) close_reason_ = reason;
  if (open()) phase_ = Phase::kClosing;
}

void Connection::RequestClose(CloseReason reason, CloseMode mode) {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  if (phase_ == Phase::kClosed) return;
  if (mode == CloseMode::kForce) {
    Close(reason);
    return;
  }
  StopReading(reason);
  ctx_->timers->FrameDone(this);
  if (phase_ == Phase::kLingering) return;
  if (OwesNothing()) {
    FinishClosing();
    return;
  }
  UpdateState();
  UpdateInterest();
}

void Connection::BeginDrain(CloseReason reason) {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  if (phase_ != Phase::kOpen) return;  // already on its way out, with its own reason
  drain_reason_ = reason;
  // Read on (across wakeups, and after backpressure clears) until the socket
  // runs dry, then close as RequestClose(kShutdown) would. The drain deadline
  // bounds a client that never stops sending.
  phase_ = Phase::kDraining;
  readable_ = true;
  Service();
}

void Connection::OnTriggerModeChanged() {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  if (phase_ == Phase::kClosed) return;
  const uint32_t interest = DesiredInterest();
  if (!ctx_->loop->poller().Modify(fd_, this, interest).ok()) {
    Close(CloseReason::kError);
    return;
  }
  registered_interest_ = interest;
  // Bytes that arrived before the switch raise no new edge: look for them.
  readable_ = true;
  writable_ = true;
  ctx_->host->ServiceLater(this);
}

void Connection::MoveToNewPoller(Poller::Leftovers leftovers) {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  if (phase_ == Phase::kClosed) return;
  Poller& poller = ctx_->loop->poller();
  poller.Carry(fd_, std::move(leftovers.unread), leftovers.eof, leftovers.error);
  if (!leftovers.unsent.empty()) {
    // The responses the old back-end still held go out first. Batch ends are
    // offsets in bytes_out_, so moving bytes_out_ back keeps them right.
    const std::string& unsent = leftovers.unsent;
    bytes_out_ -= unsent.size();
    recounted_out_ += unsent.size();
    if (out_.empty()) {
      out_started_at_ = bytes_out_;
      out_.Append(unsent.data(), unsent.size(), ctx_->pool);
    } else {
      std::string queued(out_.data(), out_.size());
      out_.Release(ctx_->pool);
      out_.Append(unsent.data(), unsent.size(), ctx_->pool);
      out_.Append(queued.data(), queued.size(), ctx_->pool);
      out_started_at_ -= unsent.size();
    }
    if (out_.size() >= ctx_->options->high_water) paused_ = true;
  }
  registered_interest_ = DesiredInterest();
  if (!poller.Add(fd_, this, registered_interest_).ok()) {
    Close(CloseReason::kError);
    return;
  }
  readable_ = true;
  writable_ = true;
  ctx_->host->ServiceLater(this);
}

void Connection::Close(CloseReason reason) {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  if (link_ != nullptr) link_->connection = nullptr;  // replies still on their way are dropped
  SetState(ConnectionState::kClosing);
  ctx_->host->Closed(this, reason);
}

void Connection::CloseForErrno(int err) {
  Close(err == ECONNRESET || err == EPIPE ? CloseReason::kReset : CloseReason::kError);
}

void Connection::Touch() {
  last_active_ns_ = ctx_->loop->now_ns();
  ctx_->timers->Touched(this, last_active_ns_);
}

void Connection::SetState(ConnectionState state) {
  if (state == state_) return;
  const ConnectionState old_state = state_;
  state_ = state;
  ctx_->events->StateChanged(*this, old_state, state);
}

void Connection::UpdateState() {
  if (!open()) {
    SetState(ConnectionState::kClosing);
  } else if (!out_.empty()) {
    SetState(ConnectionState::kWrite);
  } else if (link_ != nullptr && link_->outstanding() > 0) {
    SetState(ConnectionState::kProcess);  // waiting for backends
  } else {
    SetState(ConnectionState::kRead);
  }
}

uint32_t Connection::DesiredInterest() const {
  if (ctx_->loop->poller().mode() == TriggerMode::kEdge) {
    // Registered once for both directions: no epoll_ctl as output comes and goes.
    return Poller::kReadable | Poller::kWritable;
  }
  uint32_t interest = 0;
  const bool upstream_waits = link_ != nullptr && (link_->waiting_for_room || UpstreamCapped());
  if (phase_ == Phase::kLingering ||
      (open() && !read_eof_ && !paused_ && !host_links_.waiting_for_budget && !upstream_waits)) {
    interest |= Poller::kReadable;
  }
  if (!out_.empty()) interest |= Poller::kWritable;
  return interest;
}

void Connection::UpdateInterest() {
  const uint32_t interest = DesiredInterest();
  if (interest == registered_interest_) return;
  if (!ctx_->loop->poller().Modify(fd_, this, interest).ok()) {
    Close(CloseReason::kError);
    return;
  }
  registered_interest_ = interest;
}

ConnectionInfo Connection::Snapshot(absl::Time wall_now, int64_t mono_now_ns) const {
  GATEWAY_ASSERT_IN_LOOP(*ctx_->loop);
  ConnectionInfo info;
  info.fd = fd_;
  info.id = id_;
  info.peer = FormatAddress(peer_);
  info.state = state_;
  info.trigger_mode = ctx_->loop->poller().mode();
  info.io_model = ctx_->loop->poller().model();
  info.reactor = ctx_->reactor_index;
  info.have_read = in_.size();
  const size_t frame = pending_frame_size_ != 0 ? pending_frame_size_ : kHeaderSize;
  info.need_read = frame > in_.size() ? frame - in_.size() : 0;
  info.have_write = out_.empty() ? 0 : bytes_out_ - out_started_at_;
  info.need_write = out_.size();
  info.bytes_in = bytes_in_;
  info.bytes_out = bytes_out_;
  info.frames_in = frames_in_;
  info.frames_out = frames_out_;
  info.upstream_inflight = link_ != nullptr ? link_->outstanding() : 0;
  info.opened_at = wall_now - absl::Nanoseconds(mono_now_ns - opened_ns_);
  info.last_active_at = wall_now - absl::Nanoseconds(mono_now_ns - last_active_ns_);
  return info;
}

}  // namespace gateway
