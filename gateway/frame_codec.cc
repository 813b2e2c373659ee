#include "gateway/frame_codec.h"

namespace gateway {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

FrameScan ScanFrame(absl::string_view data) {
  FrameScan scan;
  size_t pos = 0;
  while (pos < data.size() && (data[pos] == '\r' || data[pos] == '\n')) ++pos;
  scan.skip = pos;
  const size_t available = data.size() - pos;
  const size_t header_bytes = available < kHeaderSize ? available : kHeaderSize;
  for (size_t i = 0; i < header_bytes; ++i) {
    if (!IsDigit(data[pos + i])) {
      scan.status = FrameScan::Status::kError;
      return scan;
    }
  }
  if (header_bytes < kHeaderSize) return scan;  // kNeedMore
  const size_t payload = HeaderPayloadLength(data.data() + pos);
  if (payload == 0) {
    scan.status = FrameScan::Status::kError;
    return scan;
  }
  scan.frame_size = kHeaderSize + payload;
  scan.status = available >= scan.frame_size ? FrameScan::Status::kFrame : FrameScan::Status::kNeedMore;
  return scan;
}

size_t HeaderPayloadLength(const char* header) {
  size_t n = 0;
  for (size_t i = 0; i < kHeaderSize; ++i) n = n * 10 + static_cast<size_t>(header[i] - '0');
  return n;
}

void WriteHeader(size_t payload_size, char* out) {
  for (size_t i = kHeaderSize; i-- > 0;) {
    out[i] = static_cast<char>('0' + payload_size % 10);
    payload_size /= 10;
  }
}

std::string EncodeFrame(absl::string_view payload) {
  std::string frame(kHeaderSize, '0');
  WriteHeader(payload.size(), frame.data());
  frame.append(payload.data(), payload.size());
  return frame;
}

}  // namespace gateway
