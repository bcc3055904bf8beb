# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""ctypes binding to the parts of libkcm (user/include/kcm.h) the protocol server uses."""
import ctypes
import errno
import os
import socket

MSG_TRUNC = socket.MSG_TRUNC
MSG_DONTWAIT = socket.MSG_DONTWAIT


class Framing(ctypes.Structure):
    _fields_ = [
        ("len_offset", ctypes.c_uint32),
        ("len_size", ctypes.c_uint32),
        ("big_endian", ctypes.c_bool),
        ("len_adjust", ctypes.c_int64),
    ]


class MuxOpts(ctypes.Structure):
    # Field for field struct kcm_mux_opts; `parser` is the newest field, last.
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("framing", Framing),
        ("max_msg_size", ctypes.c_uint32),
        ("batch", ctypes.c_uint32),
        ("policy", ctypes.c_int),
        ("transport_rcvbuf", ctypes.c_int),
        ("member_rcvbuf", ctypes.c_int),
        ("pin_name", ctypes.c_char_p),
        ("persistent", ctypes.c_bool),
        ("parser", ctypes.c_char_p),
    ]


class KcmError(OSError):
    pass


class Lib:
    """libkcm.so; every call raises KcmError with kcm_last_error() on failure."""

    def __init__(self, path):
        self.so = so = ctypes.CDLL(path, use_errno=True)
        so.kcm_mux_create.restype = ctypes.c_void_p
        so.kcm_mux_create.argtypes = [ctypes.POINTER(MuxOpts)]
        so.kcm_mux_destroy.restype = None
        so.kcm_mux_destroy.argtypes = [ctypes.c_void_p]
        so.kcm_socket.argtypes = [ctypes.c_void_p]
        so.kcm_clone.argtypes = [ctypes.c_int]
        so.kcm_close.argtypes = [ctypes.c_int]
        so.kcm_attach.argtypes = [ctypes.c_void_p, ctypes.c_int]
        so.kcm_unattach.argtypes = [ctypes.c_void_p, ctypes.c_int]
        so.kcm_recv.restype = ctypes.c_ssize_t
        so.kcm_recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        so.kcm_send.restype = ctypes.c_ssize_t
        so.kcm_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        so.kcm_last_error.restype = ctypes.c_char_p
        so.kcm_last_error.argtypes = []
        so.kcm_framing_parse.argtypes = [ctypes.c_char_p, ctypes.POINTER(Framing)]

    def _fail(self, what):
        err = ctypes.get_errno()
        detail = self.so.kcm_last_error()
        msg = f"{what}: {os.strerror(err)}"
        if detail:
            msg += f" ({detail.decode(errors='replace')})"
        return KcmError(err, msg)

    def framing(self, spec):
        f = Framing()
        if self.so.kcm_framing_parse(spec.encode(), ctypes.byref(f)) < 0:
            raise self._fail(f"failed to parse framing {spec!r}")
        return f

    def mux_create(self, framing=None, parser=None, max_msg=0):
        o = MuxOpts()
        o.sz = ctypes.sizeof(MuxOpts)
        if framing is not None:
            o.framing = framing
        o.max_msg_size = max_msg
        o.parser = parser.encode() if parser else None
        mux = self.so.kcm_mux_create(ctypes.byref(o))
        if not mux:
            raise self._fail(f"failed to create mux ({parser or 'framing'})")
        return mux

    def mux_destroy(self, mux):
        self.so.kcm_mux_destroy(mux)

    def socket(self, mux):
        fd = self.so.kcm_socket(mux)
        if fd < 0:
            raise self._fail("failed to create KCM socket")
        return fd

    def clone(self, fd):
        nfd = self.so.kcm_clone(fd)
        if nfd < 0:
            raise self._fail(f"failed to clone KCM socket {fd}")
        return nfd

    def close(self, fd):
        self.so.kcm_close(fd)

    def attach(self, mux, tcpfd):
        if self.so.kcm_attach(mux, tcpfd) < 0:
            raise self._fail(f"failed to attach transport fd {tcpfd}")

    def unattach(self, mux, tcpfd):
        if self.so.kcm_unattach(mux, tcpfd) < 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:  # the kernel drops a closed socket on its own
                raise self._fail(f"failed to unattach transport fd {tcpfd}")

    def recv(self, fd, buf, flags=0):
        """(length, truncated) of one whole message read into @buf; None on EAGAIN."""
        n = self.so.kcm_recv(fd, buf, len(buf), flags | MSG_TRUNC)
        if n < 0:
            if ctypes.get_errno() in (errno.EAGAIN, errno.EINTR):
                return None
            raise self._fail(f"failed to receive on KCM socket {fd}")
        return min(n, len(buf)), n > len(buf)

    def send(self, fd, data):
        n = self.so.kcm_send(fd, data, len(data), 0)
        if n < 0:
            raise self._fail(f"failed to send {len(data)} bytes on KCM socket {fd}")
        return n
