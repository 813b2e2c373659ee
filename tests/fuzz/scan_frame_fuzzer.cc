// libFuzzer target for the frame decoder (built only with clang): the first
// bytes of the input choose where the rest is cut into reads; the decoder
// harness must never violate ScanFrame's contract and must agree with the
// reference model.
// Input: byte 0 % 8 = number of cuts, then two bytes per cut (big-endian
// offset modulo the stream size + 1), then the stream. Run: tests/fuzz/run.sh.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tests/support/decoder_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t num_cuts = data[0] % 8;
  if (size < 1 + 2 * num_cuts) return 0;
  const absl::string_view stream(reinterpret_cast<const char*>(data) + 1 + 2 * num_cuts, size - 1 - 2 * num_cuts);
  std::vector<size_t> cuts;
  for (size_t i = 0; i < num_cuts; ++i) {
    const size_t cut = (static_cast<size_t>(data[1 + 2 * i]) << 8 | data[2 + 2 * i]) % (stream.size() + 1);
    cuts.push_back(cut);
  }
  std::sort(cuts.begin(), cuts.end());
  gateway::testing::StreamDecoder decoder;
  size_t pos = 0;
  for (size_t cut : cuts) {
    decoder.Feed(stream.substr(pos, cut - pos));
    pos = cut;
  }
  decoder.Feed(stream.substr(pos));
  if (decoder.contract_violations() != 0) __builtin_trap();
  if (!(decoder.result() == gateway::testing::ReferenceDecode(stream))) __builtin_trap();
  return 0;
}
