// Two decoders of a request byte stream for the codec tests:
//  - StreamDecoder feeds chunks through gateway::ScanFrame the way a
//    Connection accumulates input (CR/LF before a partial header consumed,
//    the incomplete rest kept, a malformed header stops everything);
//  - ReferenceDecode is an independent, obviously-correct model of the spec
//    that looks at the whole stream at once.
// The unit and fuzz tests check that they agree for every way of cutting a
// stream into reads.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gateway/frame_codec.h"

namespace gateway::testing {

struct DecodeResult {
  std::vector<std::string> payloads;  // complete frames, in order
  bool error = false;                 // a malformed header was seen
  // Bytes kept for later: a partial header or frame (0 after an error).
  size_t pending = 0;

  bool operator==(const DecodeResult&) const = default;
};

// Loop-free of I/O; feed it chunks. Also checks ScanFrame's contract on every
// call and counts violations, which the tests expect to stay at zero.
class StreamDecoder {
 public:
  void Feed(absl::string_view chunk) {
    if (result_.error) return;  // the connection stops reading after an error
    buffer_.append(chunk.data(), chunk.size());
    size_t pos = 0;
    for (;;) {
      const absl::string_view rest(buffer_.data() + pos, buffer_.size() - pos);
      const FrameScan scan = ScanFrame(rest);
      ++scans_;
      CheckContract(rest, scan);
      pos += scan.skip;
      if (scan.status == FrameScan::Status::kFrame) {
        result_.payloads.emplace_back(buffer_.data() + pos + kHeaderSize, scan.frame_size - kHeaderSize);
        pos += scan.frame_size;
        continue;
      }
      if (scan.status == FrameScan::Status::kError) {
        result_.error = true;
        buffer_.clear();
        result_.pending = 0;
        return;
      }
      break;  // kNeedMore: keep the partial frame
    }
    buffer_.erase(0, pos);
    result_.pending = buffer_.size();
  }

  const DecodeResult& result() const { return result_; }
  int contract_violations() const { return violations_; }
  size_t scans() const { return scans_; }

 private:
  void CheckContract(absl::string_view data, const FrameScan& scan) {
    bool ok = scan.skip <= data.size();
    for (size_t i = 0; ok && i < scan.skip; ++i) ok = data[i] == '\r' || data[i] == '\n';
    // Everything skipped, and nothing more to skip.
    if (ok && scan.skip < data.size() && scan.status != FrameScan::Status::kError) {
      ok = data[scan.skip] != '\r' && data[scan.skip] != '\n';
    }
    const size_t available = ok ? data.size() - scan.skip : 0;
    switch (scan.status) {
      case FrameScan::Status::kFrame:
        ok = ok && scan.frame_size > kHeaderSize && scan.frame_size <= kMaxFrameSize && scan.frame_size <= available;
        break;
      case FrameScan::Status::kNeedMore:
        ok = ok && (scan.frame_size == 0
                        ? available < kHeaderSize
                        : scan.frame_size > available && available >= kHeaderSize && scan.frame_size <= kMaxFrameSize);
        break;
      case FrameScan::Status::kError: break;
    }
    if (!ok) ++violations_;
  }

  std::string buffer_;
  DecodeResult result_;
  int violations_ = 0;
  size_t scans_ = 0;
};

// The spec, directly: skip CR/LF, take a header of 5 ASCII digits that is not
// 00000 (a non-digit is an error as soon as it is there), take the payload.
inline DecodeResult ReferenceDecode(absl::string_view stream) {
  DecodeResult result;
  size_t pos = 0;
  for (;;) {
    while (pos < stream.size() && (stream[pos] == '\r' || stream[pos] == '\n')) ++pos;
    size_t length = 0;
    size_t i = 0;
    for (; i < 5 && pos + i < stream.size(); ++i) {
      const char c = stream[pos + i];
      if (c < '0' || c > '9') {
        result.error = true;
        return result;
      }
      length = length * 10 + static_cast<size_t>(c - '0');
    }
    if (i < 5) {
      result.pending = stream.size() - pos;
      return result;
    }
    if (length == 0) {
      result.error = true;
      return result;
    }
    if (stream.size() - pos - 5 < length) {
      result.pending = stream.size() - pos;
      return result;
    }
    result.payloads.emplace_back(stream.substr(pos + 5, length));
    pos += 5 + length;
  }
}

}  // namespace gateway::testing
