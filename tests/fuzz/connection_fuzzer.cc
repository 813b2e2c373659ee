// libFuzzer target that drives a real gateway connection (built only with
// clang). Each input is a small program: it builds a request stream (raw fuzz
// bytes, so malformed headers happen, and generated valid frames of 1..99999
// payload bytes) and says how to deliver it over one end of a socketpair whose
// other end an in-process Gateway serves: write chunk sizes, when and how much
// of the responses to read, pauses, socket buffer sizes, trigger-mode
// switches. What comes back must be exactly what the reference model of the
// protocol (ReferenceDecode) predicts, then EOF; anything else aborts, which
// libFuzzer reports as a crash. Only the public Gateway API is used.
//
// Input format (every byte past the end reads as 0):
//   byte 0: bit 0 = gateway (0: default buffers, 1: tight: 4 KiB high water,
//           one recv per wakeup, 1 MiB global budget); bit 1 = level
//           trigger at the start; bits 2-3 / 4-5 = SO_SNDBUF of the gateway's /
//           the client's end (default, 4, 16, 64 KiB).
//   then ops, one byte each (kind = op & 7, arg = op >> 3) plus operands:
//     0 raw       append the next arg+1 input bytes verbatim
//     1 frame     3 bytes v: a valid frame of v % {16,512,8192,99999}[arg&3] + 1
//                 generated payload bytes (any byte values)
//     2 short     a header for arg+1 bytes, then the next arg+1 input bytes
//     3 crlf      (arg&7)+1 bytes of CR/LF (pattern arg>>3)
//     4 write     byte b: send the next (b+1) << (arg&15) unsent bytes, then
//                 wait until the gateway has read them (unless arg&16)
//     5 read      byte b: read up to (b+1) << (arg&15) response bytes now;
//                 with arg&16 wait for them (as far as responses are due)
//     6 pause     arg < 28: sleep (arg+1) * 10 us; 28..31: set the trigger
//                 mode (odd = level)
//     7 setting   byte b: (b+1) << (arg&15) becomes the chunk size of the
//                 final writes (arg&16 clear) or of the final reads (set)
//   After the ops: the unsent rest is written in final chunks (each awaited),
//   the client half-closes and reads to EOF in final read sizes.
#include <linux/sockios.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "tests/support/decoder_harness.h"

namespace gateway::fuzz {
namespace {

constexpr size_t kMaxStreamBytes = 256 * 1024;  // keeps every input fast
constexpr int kMaxSteps = 256;
constexpr size_t kMaxFinalWrites = 64;
constexpr size_t kMaxFinalReads = 64;
constexpr int kMaxModeSwitches = 8;
constexpr absl::Duration kMaxPausePerInput = absl::Milliseconds(1);
constexpr size_t kDefaultReadSize = 64 * 1024;
// Liveness: a step that makes no progress for this long is a gateway bug.
constexpr absl::Duration kStepDeadline = absl::Seconds(10);
// Waiting for the gateway to read: after this long without progress, read
// responses, in case it paused for backpressure.
constexpr absl::Duration kStallAfter = absl::Microseconds(200);
constexpr size_t kUnlimited = std::numeric_limits<size_t>::max();

// CONNECTION_FUZZER_TRACE=1 prints every step and its duration (for a
// reproducer: ./connection_fuzzer FILE).
bool Tracing() {
  static const bool tracing = std::getenv("CONNECTION_FUZZER_TRACE") != nullptr;
  return tracing;
}

[[noreturn]] void Fail(absl::string_view what) {
  std::fprintf(stderr, "connection_fuzzer: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

// Owned by the process (never shut down: fuzzing ends with the process).
Gateway* MakeGateway(bool tight) {
  GatewayOptions options;
  options.listen_address = "127.0.0.1:0";  // unused: connections are adopted
  options.reactors = 1;
  ReactorOptions& r = options.reactor;
  r.trigger_mode = TriggerMode::kEdge;
  r.max_connections = 0;
  r.idle_timeout = absl::ZeroDuration();   // inputs pause; never time them out
  r.frame_timeout = absl::ZeroDuration();  // nor a frame that spans a pause
  r.linger = absl::Seconds(30);            // our FIN always comes
  r.measure_latency = true;
  if (tight) {
    r.high_water = 4 * 1024;
    r.low_water = 1024;
    r.read_budget = 1;
    // The smallest budget the command line accepts. One connection never
    // reaches it (a smaller one can stop a connection for good: the budget
    // counts the block holding its partial frame, which only reading frees).
    r.max_queued_bytes = 1 << 20;
  }
  absl::StatusOr<std::unique_ptr<Gateway>> created = Gateway::Create(std::move(options));
  if (!created.ok()) Fail(absl::StrCat("cannot create the gateway: ", created.status().ToString()));
  (*created)->Start();
  return created->release();
}

Gateway& GatewayFor(bool tight) {
  static Gateway* const roomy = MakeGateway(false);
  static Gateway* const small = MakeGateway(true);
  return tight ? *small : *roomy;
}

// Reads the input front to back; past the end every byte reads as 0.
// Borrows the input; fuzzer thread only.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  absl::string_view Take(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    absl::string_view out(reinterpret_cast<const char*>(data_) + pos_, n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

struct Step {
  enum class Kind { kWrite, kRead, kPause, kMode };
  Kind kind;
  size_t amount = 0;     // bytes (write, read), microseconds (pause)
  bool flag = false;     // write: no wait; read: wait; mode: level
  size_t available = 0;  // write: stream bytes defined before this step
};

struct Program {
  bool tight = false;
  bool level = false;
  int gateway_sndbuf = 0;  // 0 = leave the default
  int client_sndbuf = 0;
  std::string stream;
  std::vector<Step> steps;
  size_t final_write = kUnlimited;
  size_t final_read = kDefaultReadSize;
};

size_t Scaled(uint8_t b, int arg) { return (static_cast<size_t>(b) + 1) << (arg & 15); }

int BufferSize(int choice) {
  static constexpr int kSizes[] = {0, 4096, 16384, 65536};
  return kSizes[choice & 3];
}

void Append(std::string* stream, absl::string_view bytes) {
  stream->append(bytes.data(), std::min(bytes.size(), kMaxStreamBytes - stream->size()));
}

void AppendHeader(std::string* stream, size_t payload_size) {
  char header[kHeaderSize];
  WriteHeader(payload_size, header);
  Append(stream, absl::string_view(header, kHeaderSize));
}

void AppendGeneratedFrame(std::string* stream, uint32_t v, int arg) {
  static constexpr size_t kLimits[] = {16, 512, 8192, kMaxPayload};
  const size_t size = v % kLimits[arg & 3] + 1;
  if (stream->size() + kHeaderSize + size > kMaxStreamBytes) return;
  AppendHeader(stream, size);
  const size_t at = stream->size();
  stream->resize(at + size);
  char* out = stream->data() + at;
  uint64_t x = (uint64_t{v} << 8 | static_cast<uint64_t>(arg)) * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; i += sizeof x) {  // xorshift64: every byte value, CR/LF and digits included
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out + i, &x, std::min(sizeof x, size - i));
  }
}

void Parse(const uint8_t* data, size_t size, Program* program) {
  Reader in(data, size);
  Program& p = *program;
  p.stream.clear();  // keeps its capacity
  p.steps.clear();
  p.final_write = kUnlimited;
  p.final_read = kDefaultReadSize;
  const uint8_t config = in.Byte();
  p.tight = config & 1;
  p.level = config & 2;
  p.gateway_sndbuf = BufferSize(config >> 2);
  p.client_sndbuf = BufferSize(config >> 4);
  int switches = 0;
  while (!in.done() && static_cast<int>(p.steps.size()) < kMaxSteps) {
    const uint8_t op = in.Byte();
    const int arg = op >> 3;
    switch (op & 7) {
      case 0: Append(&p.stream, in.Take(arg + 1)); break;
      case 1: {
        uint32_t v = in.Byte();
        v = v << 8 | in.Byte();
        v = v << 8 | in.Byte();
        AppendGeneratedFrame(&p.stream, v, arg);
        break;
      }
      case 2:
        AppendHeader(&p.stream, arg + 1);
        Append(&p.stream, in.Take(arg + 1));
        break;
      case 3: {
        static constexpr const char* kPatterns[] = {"\r\r\r\r\r\r\r\r", "\n\n\n\n\n\n\n\n", "\r\n\r\n\r\n\r\n",
                                                    "\n\r\n\r\n\r\n\r"};
        Append(&p.stream, absl::string_view(kPatterns[arg >> 3], (arg & 7) + 1));
        break;
      }
      case 4:
        p.steps.push_back(Step{Step::Kind::kWrite, Scaled(in.Byte(), arg), (arg & 16) != 0, p.stream.size()});
        break;
      case 5: p.steps.push_back(Step{Step::Kind::kRead, Scaled(in.Byte(), arg), (arg & 16) != 0}); break;
      case 6:
        if (arg < 28) {
          p.steps.push_back(Step{Step::Kind::kPause, static_cast<size_t>(arg + 1) * 10});
        } else if (switches++ < kMaxModeSwitches) {
          p.steps.push_back(Step{Step::Kind::kMode, 0, (arg & 1) != 0});
        }
        break;
      case 7: (arg & 16 ? p.final_read : p.final_write) = Scaled(in.Byte(), arg); break;
    }
  }
}

// Where the frames of a stream end and which response bytes are due once a
// prefix of it has been sent; written independently of ReferenceDecode and
// checked against it, it only tells the driver when to wait.
struct StreamMap {
  std::vector<size_t> frame_end;   // stream offset just past frame i
  std::vector<size_t> output_end;  // response bytes due once frame i is in
  size_t error_at = kUnlimited;    // the byte that makes a header malformed

  size_t DueAfter(size_t sent) const {
    const size_t frames = std::upper_bound(frame_end.begin(), frame_end.end(), sent) - frame_end.begin();
    return frames == 0 ? 0 : output_end[frames - 1];
  }
};

StreamMap MapStream(absl::string_view s) {
  StreamMap map;
  size_t pos = 0;
  size_t out = 0;
  for (;;) {
    while (pos < s.size() && (s[pos] == '\r' || s[pos] == '\n')) ++pos;
    size_t length = 0;
    for (size_t i = 0; i < kHeaderSize; ++i) {
      if (pos + i == s.size()) return map;
      if (s[pos + i] < '0' || s[pos + i] > '9') {
        map.error_at = pos + i;
        return map;
      }
      length = length * 10 + static_cast<size_t>(s[pos + i] - '0');
    }
    if (length == 0) {
      map.error_at = pos + kHeaderSize - 1;
      return map;
    }
    if (s.size() - pos - kHeaderSize < length) return map;
    pos += kHeaderSize + length;
    out += kHeaderSize + length;
    map.frame_end.push_back(pos);
    map.output_end.push_back(out);
  }
}

// The responses: each complete frame with its payload reversed, in order.
void ExpectedOutput(const testing::DecodeResult& decoded, std::string* out) {
  size_t size = 0;
  for (const std::string& payload : decoded.payloads) size += kHeaderSize + payload.size();
  out->resize(size);
  char* p = out->data();
  for (const std::string& payload : decoded.payloads) {
    WriteHeader(payload.size(), p);
    p = std::reverse_copy(payload.begin(), payload.end(), p + kHeaderSize);
  }
}

// The fuzzer's end of one socketpair, and what it has sent and received.
// Fuzzer thread only; owns the fd.
class Client {
 public:
  Client(int fd, const Program& program, const StreamMap& map, const std::string& expected)
      : fd_(fd), program_(program), map_(map), expected_(expected) {}
  ~Client() { close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void Run() {
    absl::Duration paused;
    for (size_t i = 0; i < program_.steps.size(); ++i) {
      const Step& step = program_.steps[i];
      step_ = static_cast<int>(i);
      Trace(step);
      switch (step.kind) {
        case Step::Kind::kWrite: Write(std::min(step.available, sent_ + step.amount), !step.flag); break;
        case Step::Kind::kRead:
          if (step.flag) {
            ReadUntil(std::min(received_ + step.amount, map_.DueAfter(sent_)), step.amount);
          } else {
            ReadAvailable(step.amount);
          }
          break;
        case Step::Kind::kPause:
          if (paused < kMaxPausePerInput) {
            absl::SleepFor(absl::Microseconds(step.amount));
            paused += absl::Microseconds(step.amount);
          }
          break;
        case Step::Kind::kMode: SetMode(program_.tight, step.flag); break;
      }
    }
    step_ = -1;
    Trace(Step{Step::Kind::kWrite, program_.final_write, false, program_.stream.size()});
    const std::string& stream = program_.stream;
    // At most kMaxFinalWrites chunks; past a malformed header the gateway only
    // discards, so the rest goes in one.
    const size_t chunk = std::max(program_.final_write, (stream.size() - sent_) / kMaxFinalWrites + 1);
    while (sent_ < stream.size() && !peer_closed_) {
      Write(ErrorSent() ? stream.size() : sent_ + std::min(stream.size() - sent_, chunk), true);
    }
    if (shutdown(fd_, SHUT_WR) != 0 && !(errno == ENOTCONN && ErrorSent())) {
      Fail(absl::StrCat("shutdown(SHUT_WR): ", std::strerror(errno)));
    }
    shut_down_ = true;
    // To EOF, in at most about kMaxFinalReads reads.
    ReadUntil(kUnlimited, std::max(program_.final_read, (expected_.size() - received_) / kMaxFinalReads + 1));
    if (received_ != expected_.size()) {
      Fail(absl::StrCat("EOF after ", received_, " response bytes; expected ", expected_.size(), Where()));
    }
  }

  static void SetMode(bool tight, bool level) {
    Gateway& gateway = GatewayFor(tight);
    const TriggerMode mode = level ? TriggerMode::kLevel : TriggerMode::kEdge;
    if (gateway.trigger_mode() == mode) return;  // a no-op switch still waits for the reactor
    const absl::Status status = gateway.SetTriggerMode(mode);
    if (!status.ok()) Fail(absl::StrCat("SetTriggerMode: ", status.ToString()));
  }

 private:
  void Trace(const Step& step) {
    if (!Tracing()) return;
    static constexpr const char* kNames[] = {"write", "read", "pause", "mode"};
    const absl::Time now = absl::Now();
    std::fprintf(stderr, "  +%.3f ms: sent %zu, received %zu; step %d: %s %zu%s\n",
                 absl::ToDoubleMilliseconds(now - last_trace_), sent_, received_, step_,
                 kNames[static_cast<int>(step.kind)], step.amount, step.flag ? " (flag)" : "");
    last_trace_ = now;
  }

  bool ErrorSent() const { return sent_ > map_.error_at; }

  // What the gateway says about the connections it holds, for a failure
  // message: the public listing, nothing internal.
  std::string GatewaySide() const {
    Gateway& gateway = GatewayFor(program_.tight);
    absl::StatusOr<ConnectionPage> page = gateway.ListConnections(ListQuery{});
    if (!page.ok()) return absl::StrCat("; ListConnections: ", page.status().ToString());
    std::string out = absl::StrCat("; the gateway's buffers hold ", gateway.reactor_stats(0).queued_bytes.Get(),
                                   " bytes; its connections:");
    for (const ConnectionInfo& c : page->connections) {
      absl::StrAppend(&out, " {fd ", c.fd, " state ", static_cast<int>(c.state), " have_read ", c.have_read,
                      " need_read ", c.need_read, " have_write ", c.have_write, " need_write ", c.need_write,
                      " bytes_in ", c.bytes_in, " bytes_out ", c.bytes_out, " frames_in ", c.frames_in, " frames_out ",
                      c.frames_out, "}");
    }
    return out;
  }

  std::string Where() const {
    return absl::StrCat(" (step ", step_, ", sent ", sent_, " of ", program_.stream.size(), " stream bytes, ",
                        map_.frame_end.size(), " frames, malformed header ",
                        map_.error_at == kUnlimited ? "none" : absl::StrCat("at ", map_.error_at), ")");
  }

  // Sends stream bytes up to offset `end`; if `wait`, waits until the gateway
  // has read them, so its reads are cut where this write was.
  void Write(size_t end, bool wait) {
    const absl::Time deadline = absl::Now() + kStepDeadline;
    while (sent_ < end && !peer_closed_) {
      const ssize_t n = send(fd_, program_.stream.data() + sent_, end - sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent_ += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // The gateway is not reading: wait for room, and read its answers
        // meanwhile (it may have stopped reading until we do).
        pollfd p{fd_, POLLOUT | POLLIN, 0};
        if (poll(&p, 1, 10) < 0 && errno != EINTR) Fail(absl::StrCat("poll: ", std::strerror(errno)));
        if (p.revents & (POLLIN | POLLHUP)) ReadAvailable(kUnlimited);
        if (absl::Now() > deadline) Fail(absl::StrCat("the gateway stopped reading", Where(), GatewaySide()));
      } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET) && ErrorSent()) {
        peer_closed_ = true;  // it may close after a malformed header
      } else {
        Fail(absl::StrCat("send: ", n < 0 ? std::strerror(errno) : "returned 0", Where()));
      }
    }
    if (wait && !peer_closed_ && !ErrorSent()) WaitUntilRead();
  }

  // Waits until the gateway has read every byte sent. For a Unix stream
  // socket SIOCOUTQ counts what the peer has not consumed yet: no event says
  // so, hence the polling (yield first, then 20 us sleeps).
  void WaitUntilRead() {
    const absl::Time deadline = absl::Now() + kStepDeadline;
    absl::Time stall_since = absl::Now();
    int last = -1;
    for (int spins = 0;; ++spins) {
      int unread = 0;
      if (ioctl(fd_, SIOCOUTQ, &unread) != 0) Fail(absl::StrCat("ioctl(SIOCOUTQ): ", std::strerror(errno)));
      if (unread == 0) return;
      const absl::Time now = absl::Now();
      if (unread != last) {
        last = unread;
        stall_since = now;
      } else if (now - stall_since > kStallAfter) {
        ReadAvailable(kUnlimited);  // it may have paused until we read
        stall_since = now;
      }
      if (now > deadline) Fail(absl::StrCat("the gateway left ", unread, " bytes unread", Where(), GatewaySide()));
      if (spins < 64) {
        sched_yield();
      } else {
        absl::SleepFor(absl::Microseconds(20));
      }
    }
  }

  // Reads what has arrived, at most `limit` bytes, checking every byte.
  void ReadAvailable(size_t limit) {
    char buffer[64 * 1024];
    size_t got = 0;
    while (got < limit && !eof_) {
      const ssize_t n = recv(fd_, buffer, std::min(sizeof buffer, limit - got), MSG_DONTWAIT);
      if (n > 0) {
        Check(absl::string_view(buffer, static_cast<size_t>(n)));
        got += static_cast<size_t>(n);
      } else if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        // ECONNRESET: the gateway closed with our bytes unread (after a
        // malformed header); whatever it sent before was read first.
        eof_ = true;
        if (!shut_down_ && !ErrorSent()) Fail(absl::StrCat("the gateway closed the connection early", Where()));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        Fail(absl::StrCat("recv: ", std::strerror(errno), Where()));
      }
    }
  }

  // Reads in pieces of `chunk` bytes until `target` bytes have arrived in all
  // or EOF; an EOF before a due response is a failure.
  void ReadUntil(size_t target, size_t chunk) {
    const absl::Time deadline = absl::Now() + kStepDeadline;
    while (received_ < target && !eof_) {
      ReadAvailable(std::min(chunk, target - received_));
      if (received_ >= target || eof_) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 10) < 0 && errno != EINTR) Fail(absl::StrCat("poll: ", std::strerror(errno)));
      if (absl::Now() > deadline) {
        Fail(absl::StrCat("no response or EOF for 10 s after ", received_, " of ", expected_.size(), " response bytes",
                          Where(), GatewaySide()));
      }
    }
    if (target != kUnlimited && received_ < target) {
      Fail(absl::StrCat("EOF after ", received_, " response bytes; ", target, " were due", Where()));
    }
  }

  void Check(absl::string_view bytes) {
    if (received_ + bytes.size() > expected_.size()) {
      Fail(absl::StrCat("more response bytes than expected: ", received_ + bytes.size(), " > ", expected_.size(),
                        Where()));
    }
    if (std::memcmp(bytes.data(), expected_.data() + received_, bytes.size()) == 0) {
      received_ += bytes.size();
      return;
    }
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] != expected_[received_ + i]) {
        const size_t at = received_ + i;
        const size_t from = at >= 16 ? at - 16 : 0;
        Fail(absl::StrCat("response byte ", at, " differs: got \"",
                          absl::CHexEscape(absl::string_view(bytes.data() + i, std::min<size_t>(16, bytes.size() - i))),
                          "\", expected \"", absl::CHexEscape(absl::string_view(expected_).substr(at, 16)),
                          "\" after \"", absl::CHexEscape(absl::string_view(expected_).substr(from, at - from)), "\"",
                          Where()));
      }
    }
  }

  const int fd_;
  const Program& program_;
  const StreamMap& map_;
  const std::string& expected_;
  size_t sent_ = 0;
  size_t received_ = 0;
  bool eof_ = false;
  bool peer_closed_ = false;  // send failed: the gateway closed (after an error only)
  bool shut_down_ = false;    // our FIN is sent
  int step_ = -1;             // for messages; -1 = the final flush and drain
  absl::Time last_trace_ = absl::Now();
};

void SetSendBuffer(int fd, int bytes) {
  if (bytes == 0) return;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) != 0) {
    Fail(absl::StrCat("setsockopt(SO_SNDBUF): ", std::strerror(errno)));
  }
}

void TraceInput(const Program& program, const StreamMap& map) {
  for (size_t i = 0; i < map.frame_end.size(); ++i)
    std::fprintf(stderr, "frame %zu ends at %zu\n", i, map.frame_end[i]);
  const std::string error_at = map.error_at == kUnlimited ? "-" : absl::StrCat(map.error_at);
  std::fprintf(stderr,
               "input: %s gateway, %s, sndbuf %d/%d, %zu stream bytes, %zu steps, %zu frames, malformed header at "
               "%s, final write %zu read %zu\n",
               program.tight ? "tight" : "roomy", program.level ? "level" : "edge", program.gateway_sndbuf,
               program.client_sndbuf, program.stream.size(), program.steps.size(), map.frame_end.size(),
               error_at.c_str(), program.final_write, program.final_read);
}

// Runs one input: one connection, start to EOF.
void RunInput(const uint8_t* data, size_t size) {
  // Kept across inputs, so large streams do not cost fresh pages each time.
  static Program& program = *new Program;
  static std::string& expected = *new std::string;
  Parse(data, size, &program);
  const StreamMap map = MapStream(program.stream);
  const testing::DecodeResult decoded = testing::ReferenceDecode(program.stream);
  if (decoded.payloads.size() != map.frame_end.size() || decoded.error != (map.error_at != kUnlimited)) {
    Fail("the stream map disagrees with the reference model");  // a bug in this file
  }
  ExpectedOutput(decoded, &expected);

  Client::SetMode(program.tight, program.level);
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    Fail(absl::StrCat("socketpair: ", std::strerror(errno)));
  }
  SetSendBuffer(fds[0], program.client_sndbuf);
  SetSendBuffer(fds[1], program.gateway_sndbuf);
  Client client(fds[0], program, map, expected);
  const absl::Status adopted = GatewayFor(program.tight).AdoptConnection(fds[1]);
  if (!adopted.ok()) Fail(absl::StrCat("AdoptConnection: ", adopted.ToString()));
  if (Tracing()) TraceInput(program, map);
  const absl::Time start = absl::Now();
  client.Run();
  if (Tracing()) std::fprintf(stderr, "done in %.3f ms\n", absl::ToDoubleMilliseconds(absl::Now() - start));
}

}  // namespace
}  // namespace gateway::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gateway::fuzz::RunInput(data, size);
  return 0;
}
