#include "gateway/frame_handler.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace gateway {

void ReverseHandler::HandleInPlace(absl::Span<char> payload) {
  // Eight bytes at a time from both ends (a byte swap reverses a word), then
  // the middle byte by byte: several times faster than std::reverse here.
  char* front = payload.data();
  char* back = front + payload.size();
  while (back - front >= 16) {
    uint64_t head;
    uint64_t tail;
    std::memcpy(&head, front, 8);
    std::memcpy(&tail, back - 8, 8);
    head = __builtin_bswap64(head);
    tail = __builtin_bswap64(tail);
    std::memcpy(front, &tail, 8);
    std::memcpy(back - 8, &head, 8);
    front += 8;
    back -= 8;
  }
  std::reverse(front, back);
}

}  // namespace gateway
