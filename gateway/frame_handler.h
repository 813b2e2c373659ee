// The seam between the transport and what a frame means. The connection owns
// framing, ordering and flow control; a FrameHandler only turns a request
// payload into a response payload.
#pragma once

#include <memory>

#include "absl/types/span.h"

namespace gateway {

// One instance per reactor; loop-thread only.
//
// A handler answers synchronously and in place: the response payload has the
// request's length and overwrites it, which lets a connection send straight
// from its read buffer.
class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  // Rewrites `payload` (1..99999 bytes) into the response payload.
  virtual void HandleInPlace(absl::Span<char> payload) = 0;
};

// Creates one handler per reactor. Called once per reactor at start-up.
class FrameHandlerFactory {
 public:
  virtual ~FrameHandlerFactory() = default;
  virtual std::unique_ptr<FrameHandler> Create() = 0;
};

// The built-in service: the response is the payload reversed.
class ReverseHandler final : public FrameHandler {
 public:
  void HandleInPlace(absl::Span<char> payload) override;
};

class ReverseHandlerFactory final : public FrameHandlerFactory {
 public:
  std::unique_ptr<FrameHandler> Create() override { return std::make_unique<ReverseHandler>(); }
};

}  // namespace gateway
