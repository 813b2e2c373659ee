#!/usr/bin/env python3
"""Writes the committed seed corpora of the two fuzzers (tests/fuzz/corpus/).

Each seed is hand-made and named for what it covers; the input formats are
described at the top of scan_frame_fuzzer.cc and connection_fuzzer.cc. Run it
again after changing a format: it rewrites both folders.
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_PAYLOAD = 99999


def frame(payload: bytes) -> bytes:
    return b"%05d" % len(payload) + payload


# --- scan_frame_fuzzer: byte 0 % 8 cuts, 2 bytes per cut, then the stream ---

def scan_seed(stream: bytes, cuts=()) -> bytes:
    assert len(cuts) < 8
    out = bytes([len(cuts)])
    for cut in cuts:
        out += cut.to_bytes(2, "big")
    return out + stream


def scan_seeds():
    two = frame(b"abc") + b"\r\n" + frame(b"hello")
    max_frame = frame(bytes(i % 251 for i in range(MAX_PAYLOAD)))
    return {
        "empty_stream": scan_seed(b""),
        "one_frame": scan_seed(frame(b"abc")),
        "one_frame_header_split_2": scan_seed(frame(b"abc"), [2]),
        "one_frame_header_split_4_payload_split": scan_seed(frame(b"abc"), [4, 6]),
        "two_frames_crlf_between": scan_seed(two, [8, 9]),
        "crlf_before_first": scan_seed(b"\r\n\r\n" + frame(b"x"), [1, 3]),
        "lf_only_between": scan_seed(frame(b"a") + b"\n\n\n" + frame(b"bc")),
        "payload_with_crlf_nul_digits": scan_seed(frame(b"\r\n\x0012345\n\r"), [5]),
        "bad_header_letter": scan_seed(b"0a003abc"),
        "bad_header_after_frame": scan_seed(frame(b"abc") + b"00x01z", [3, 9, 10]),
        "bad_header_cr_inside": scan_seed(b"00\r03abc"),
        "zero_header": scan_seed(b"00000"),
        "zero_header_after_frames": scan_seed(frame(b"ab") + frame(b"c") + b"00000abc", [7]),
        "incomplete_payload": scan_seed(b"00010abc"),
        "incomplete_header": scan_seed(b"000"),
        "incomplete_header_then_letter": scan_seed(b"1234z"),
        "header_99999_partial": scan_seed(b"99999" + b"p" * 100, [3]),
        "max_size_frame": scan_seed(max_frame, [5, 50000, 65535]),
        "many_small_frames": scan_seed(b"".join(frame(bytes([65 + i % 26])) for i in range(60)),
                                       [7, 60, 61, 200, 299]),
        "seven_cuts": scan_seed(frame(b"0123456789") + b"\r\n" + frame(b"z" * 20),
                                [1, 2, 3, 4, 5, 16, 18]),
        "frames_then_garbage": scan_seed(frame(b"ok") + b"\xff\xfe\x00garbage"),
        "high_bytes_payload": scan_seed(frame(bytes(range(256)))),
    }


# --- connection_fuzzer: a config byte, then ops (see connection_fuzzer.cc) ---

class Conn:
    """Builds one connection_fuzzer input."""

    def __init__(self, tight=False, level=False, gateway_sndbuf=0, client_sndbuf=0):
        self.out = bytes([int(tight) | int(level) << 1 | gateway_sndbuf << 2 | client_sndbuf << 4])

    def op(self, kind, arg, operands=b""):
        assert 0 <= arg < 32
        self.out += bytes([arg << 3 | kind]) + operands
        return self

    def raw(self, data: bytes):
        for i in range(0, len(data), 32):
            piece = data[i:i + 32]
            self.op(0, len(piece) - 1, piece)
        return self

    def frame(self, size, seed=0):  # a generated payload of `size` bytes
        cls = next(c for c, limit in enumerate((16, 512, 8192, MAX_PAYLOAD)) if size <= limit)
        return self.op(1, cls | (seed & 7) << 2, (size - 1).to_bytes(3, "big"))

    def short(self, payload: bytes):
        assert 1 <= len(payload) <= 32
        return self.op(2, len(payload) - 1, payload)

    def crlf(self, count, pattern=2):  # 0 CR, 1 LF, 2 CRLF..., 3 LFCR...
        return self.op(3, pattern << 3 | (count - 1))

    @staticmethod
    def scaled(n):  # (b + 1) << shift == n, as exact as the encoding allows
        shift = 0
        while (n >> shift) > 256:
            shift += 1
        return max(1, n >> shift) - 1, shift

    def write(self, n, wait=True):
        b, shift = self.scaled(n)
        return self.op(4, (0 if wait else 16) | shift, bytes([b]))

    def read(self, n, wait=False):
        b, shift = self.scaled(n)
        return self.op(5, (16 if wait else 0) | shift, bytes([b]))

    def pause(self, us):
        return self.op(6, min(27, max(1, us // 10) - 1))

    def mode(self, level):
        return self.op(6, 29 if level else 28)

    def final_write(self, n):
        b, shift = self.scaled(n)
        return self.op(7, shift, bytes([b]))

    def final_read(self, n):
        b, shift = self.scaled(n)
        return self.op(7, 16 | shift, bytes([b]))


def connection_seeds():
    s = {}
    s["empty_stream"] = Conn()
    s["one_frame"] = Conn().raw(frame(b"abc"))
    s["one_frame_level"] = Conn(level=True).raw(frame(b"abc"))
    s["header_split_every_byte"] = Conn().raw(frame(b"abc")).write(1).write(1).write(1).write(1).write(1) \
        .write(1).write(1).write(1).read(8, wait=True)
    s["header_split_level"] = Conn(level=True).raw(frame(b"hello")).write(3).write(4).write(3)
    s["pipelined_short_frames"] = Conn().short(b"a").short(b"bc").short(b"def").short(b"0123456789")
    s["crlf_between_frames"] = Conn().short(b"abc").crlf(2).short(b"de").crlf(3, 1).short(b"f").write(6) \
        .write(2).write(5)
    s["crlf_before_first"] = Conn().crlf(4).raw(frame(b"xyz")).write(1).write(2).write(3)
    s["cr_inside_header"] = Conn().raw(frame(b"ok") + b"00\r\n003abc").write(9).write(3)
    s["bad_header_letter"] = Conn().short(b"first").raw(b"0a003abc").short(b"never")
    s["bad_header_split"] = Conn().short(b"first").raw(b"000x").write(10).write(2).read(10, wait=True)
    s["zero_header"] = Conn().raw(b"00000")
    s["zero_header_after_frames"] = Conn().short(b"ab").short(b"c").raw(b"00000abc").frame(5000)
    s["bad_header_behind_backpressure"] = Conn(tight=True, gateway_sndbuf=1, client_sndbuf=1) \
        .frame(60000).frame(60000, 1).raw(b"12a45")
    s["incomplete_payload"] = Conn().short(b"abc").raw(b"00010abc")
    s["incomplete_header"] = Conn().short(b"abc").raw(b"000")
    s["max_size_frame"] = Conn().frame(MAX_PAYLOAD)
    s["max_size_frame_4k_chunks"] = Conn().frame(MAX_PAYLOAD, 3).final_write(4096).final_read(1000)
    s["max_size_frame_tight"] = Conn(tight=True, gateway_sndbuf=1, client_sndbuf=1).frame(MAX_PAYLOAD) \
        .frame(MAX_PAYLOAD, 2).write(5).write(70000).write(1 << 16)
    s["two_max_frames_late_reads"] = Conn(gateway_sndbuf=2).frame(MAX_PAYLOAD).frame(MAX_PAYLOAD, 5) \
        .write(200000, wait=False).pause(500).read(1000).read(150000, wait=True)
    s["sizes_mixed"] = Conn().frame(1).frame(16).frame(100, 1).frame(512).frame(4000, 2).frame(8192) \
        .frame(20000, 3).frame(70000, 4).crlf(2).frame(3).final_write(3000)
    s["sizes_mixed_tight_level"] = Conn(tight=True, level=True, gateway_sndbuf=3).frame(7).frame(300) \
        .frame(9000).frame(50000).frame(2).final_write(700).final_read(300)
    s["reads_interleaved"] = Conn().frame(2000).write(1000).read(100).write(1005, wait=False).read(3000, True) \
        .frame(30).write(35).read(10, True).read(25, True)
    s["mode_switches"] = Conn().frame(10000).write(3000).mode(True).write(3000).mode(False).write(4005) \
        .frame(20).mode(True).read(20000, True)
    s["pauses"] = Conn().short(b"one").pause(100).write(4).pause(200).write(4).pause(25)
    s["many_tiny_frames"] = Conn().raw(b"".join(frame(bytes([97 + i % 26])) for i in range(120))) \
        .final_write(13).final_read(7)
    s["coalesced_writes"] = Conn(level=True).frame(300).frame(40).write(100, wait=False).write(100, wait=False) \
        .write(100, wait=False).write(50).read(100)
    s["garbage"] = Conn().raw(bytes([0xff, 0x00, 0x7f, 0x80, 0x31, 0x0d, 0x0a]) * 5)
    s["split_after_header"] = Conn().frame(700).write(5).write(1).write(350).write(349)
    s["small_buffers_both"] = Conn(gateway_sndbuf=1, client_sndbuf=1).frame(30000).frame(30000, 1) \
        .final_write(9000).final_read(2000)
    s["tiny_final_reads"] = Conn(tight=True).frame(9000).frame(12).final_read(1)
    return {name: conn.out for name, conn in s.items()}


def write_corpus(name, seeds):
    folder = os.path.join(HERE, "corpus", name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for seed_name, data in seeds.items():
        with open(os.path.join(folder, seed_name), "wb") as f:
            f.write(data)
    print(f"{folder}: {len(seeds)} seeds")


if __name__ == "__main__":
    write_corpus("scan_frame", scan_seeds())
    write_corpus("connection", connection_seeds())
