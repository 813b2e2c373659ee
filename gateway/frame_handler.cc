#include "gateway/frame_handler.h"

#include <algorithm>

namespace gateway {

void ReverseHandler::HandleInPlace(absl::Span<char> payload) { std::reverse(payload.begin(), payload.end()); }

}  // namespace gateway
