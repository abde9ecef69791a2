"""A socket transport for plain HTTP, with only what the connection protocol uses."""

from __future__ import annotations

import asyncio
import socket


class PlainTransport(asyncio.Transport):
    """A socket transport for plain HTTP with only what the connection protocol uses, built in the accept callback.

    asyncio's own path for an accepted socket (connect_accepted_socket) costs a task, futures and
    several loop iterations per connection: about 100 us, so a scrape queued behind a burst of
    3,000 connections waited 200 ms. This one costs a selector registration. TLS keeps asyncio's
    transport, whose handshake it needs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: asyncio.Protocol):
        super().__init__()
        self._loop = loop
        self._sock = sock
        # The selector is given the descriptor, not the socket: for a socket it formats the socket's
        # repr into a KeyError on every first registration, which was most of the accept cost.
        self._fd = sock.fileno()
        self._protocol = protocol
        self._out = bytearray()
        self._closing = False
        self._eof_after_write = False
        self._closed = False
        self._reading = False
        self._eof = False
        protocol.connection_made(self)
        if not self._closing:
            loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(exc)
            return
        if data:
            self._protocol.data_received(data)
        else:
            self._eof = True
            self._stop_reading()
            if not self._protocol.eof_received():
                self.close()

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def pause_reading(self) -> None:
        self._stop_reading()

    def resume_reading(self) -> None:
        if not self._reading and not self._closing and not self._eof:
            self._reading = True
            self._loop.add_reader(self._fd, self._readable)

    def is_reading(self) -> bool:
        return self._reading

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._out:
            try:
                data = data[self._sock.send(data):]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._finish(exc)
                return
            if data:
                self._loop.add_writer(self._fd, self._writable)
                self._out += data
                self._protocol.pause_writing()
            return
        self._out += data

    def _writable(self) -> None:
        try:
            del self._out[:self._sock.send(self._out)]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(exc)
            return
        if not self._out:
            self._loop.remove_writer(self._fd)
            self._protocol.resume_writing()
            self._flushed()

    def _flushed(self) -> None:
        if self._eof_after_write:
            self._eof_after_write = False
            self._shutdown_write()
        if self._closing:
            self._finish(None)

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Only high=0 is supported: pause_writing() once data is buffered, resume_writing() once it is sent."""
        if high or low:
            raise ValueError("PlainTransport's write buffer limits are 0")

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._out:
            self._eof_after_write = True
        else:
            self._shutdown_write()

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return len(self._out)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._out:
            self._finish(None)

    def abort(self) -> None:
        self._closing = True
        self._finish(None)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._sock if name == "socket" else default

    def _finish(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = self._closing = True
        self._stop_reading()
        if self._out:
            self._loop.remove_writer(self._fd)
        self._sock.close()
        # As asyncio's transports do: connection_lost never runs inside another protocol callback.
        self._loop.call_soon(self._protocol.connection_lost, exc)

