// The wire format: a 5-byte zero-padded ASCII decimal length header, then that
// many payload bytes. Pure functions, no I/O, so every split point and every
// malformed header can be tested without a socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace gateway {

inline constexpr size_t kHeaderSize = 5;
inline constexpr size_t kMaxPayload = 99999;
inline constexpr size_t kMaxFrameSize = kHeaderSize + kMaxPayload;

// The outcome of looking at the front of a byte stream for one frame.
struct FrameScan {
  enum class Status {
    kFrame,     // a complete frame starts at `skip`; it is `frame_size` bytes long
    kNeedMore,  // the frame starting at `skip` is incomplete
    kError,     // the header starting at `skip` is malformed
  };
  Status status = Status::kNeedMore;
  // CR and LF bytes before the header, skipped so that typing into nc works.
  size_t skip = 0;
  // Header + payload bytes; 0 while the header is incomplete.
  size_t frame_size = 0;
};

// Scans `data` for the frame at its front. Never reads past `data.size()`.
// A header byte that is not an ASCII digit is an error as soon as it is seen;
// "00000" is an error once all five bytes are there.
FrameScan ScanFrame(absl::string_view data);

// Returns the payload length announced by a complete, valid 5-byte header.
size_t HeaderPayloadLength(const char* header);

// Writes the header for a payload of `payload_size` (1..kMaxPayload) bytes.
void WriteHeader(size_t payload_size, char* out);

// Returns one encoded frame: header + payload. For tests and clients.
std::string EncodeFrame(absl::string_view payload);

}  // namespace gateway
