"""A TCP forwarder for link tests (issue 18): sits between a dialling worker
(A) and the neighbour it dials (B), records every byte both ways, and can
flip one byte of the A -> B stream, so a test can read what crosses the wire
and check that a corrupted TLS record kills the link instead of being stored.

Standard library only: one thread runs a selectors loop over the listening
socket and every forwarded connection. Start it before the workers (its port
goes into A's herd file as B's port), stop it in tearDown.

    proxy = TlsProxy(target_port)          # listens on proxy.port
    ...
    proxy.a2b()                            # every byte A sent, all connections
    proxy.corrupt_next_appdata()           # flip a byte in the next 0x17 record
    proxy.flipped.wait(5)
    proxy.stop()
"""
import selectors
import socket
import threading

# TLS record content types (RFC 8446 §5.1).
HANDSHAKE = 0x16
APPLICATION_DATA = 0x17


class _Records:
    """Follows the TLS record framing of one direction of one connection, so
    a byte can be flipped inside the body of a chosen record. Off (never
    matches) when the stream does not start with a TLS handshake record."""

    def __init__(self):
        self.tls = None        # None: undecided; then True / False
        self.hdr = b""         # header bytes of the record being read
        self.left = 0          # body bytes of the current record still to come
        self.ctype = None
        self.corrupt_this = False
        self.count = 0         # records whose header has been seen

    def feed(self, data, want_flip):
        """Walks DATA (a bytearray, changed in place). want_flip(ctype) is
        asked once per record header; when true, the first body byte of that
        record is flipped. Returns the number of bytes flipped (0 or 1)."""
        if self.tls is None and data:
            self.tls = data[0] == HANDSHAKE
        if not self.tls:
            return 0
        flipped = 0
        i, n = 0, len(data)
        while i < n:
            if self.left == 0:
                take = min(5 - len(self.hdr), n - i)
                self.hdr += bytes(data[i:i + take])
                i += take
                if len(self.hdr) == 5:
                    self.ctype = self.hdr[0]
                    self.left = (self.hdr[3] << 8) | self.hdr[4]
                    self.hdr = b""
                    self.count += 1
                    self.corrupt_this = self.left > 0 and want_flip(self.ctype)
                continue
            take = min(self.left, n - i)
            if self.corrupt_this:
                data[i] ^= 0x01
                self.corrupt_this = False
                flipped += 1
            i += take
            self.left -= take
        return flipped


class _Conn:
    def __init__(self, index, a, b):
        self.index = index
        self.a, self.b = a, b          # a: the dialler's socket, b: ours to the target
        self.a2b = bytearray()
        self.b2a = bytearray()
        self.out = {a: bytearray(), b: bytearray()}  # pending bytes to write to each
        self.records = _Records()
        self.closed = False


class TlsProxy:
    def __init__(self, target_port, target_host="127.0.0.1", port=0):
        self.target = (target_host, target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.flipped = threading.Event()
        self.flip_info = None          # (connection index, stream offset, content type)
        self._arm_record = False       # flip the next application-data record A -> B
        self._flip_offset = None       # (connection index or None, stream offset)
        self._stop = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.thread = threading.Thread(target=self._loop, name="tlsproxy", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ test API

    def a2b(self, index=None):
        """Every byte the dialler sent (all connections, or connection INDEX)."""
        with self.lock:
            cs = self.conns if index is None else [self.conns[index]]
            return b"".join(bytes(c.a2b) for c in cs)

    def b2a(self, index=None):
        with self.lock:
            cs = self.conns if index is None else [self.conns[index]]
            return b"".join(bytes(c.b2a) for c in cs)

    def captured(self):
        """Both directions of every connection, concatenated."""
        return self.a2b() + self.b2a()

    def connections(self):
        with self.lock:
            return len(self.conns)

    def live_connections(self):
        with self.lock:
            return sum(1 for c in self.conns if not c.closed)

    def records_seen(self, index=-1):
        """TLS records seen A -> B on connection INDEX (0 when not TLS)."""
        with self.lock:
            return self.conns[index].records.count if self.conns else 0

    def corrupt_next_appdata(self):
        """Flips the first body byte of the next TLS application-data record
        (content type 0x17) whose header the proxy reads A -> B after this
        call. Set it once the link is up: in TLS 1.3 the encrypted handshake
        also travels as 0x17 records."""
        with self.lock:
            self.flipped.clear()
            self.flip_info = None
            self._arm_record = True

    def corrupt_at(self, offset, index=None):
        """Flips the byte at OFFSET of the A -> B stream of connection INDEX
        (default: whichever connection reaches OFFSET first)."""
        with self.lock:
            self.flipped.clear()
            self.flip_info = None
            self._flip_offset = (index, offset)

    def stop(self):
        """Closes every socket and ends the thread (idempotent)."""
        if self._stop:
            return
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self.thread.join(5)
        for s in (self._wake_w,):
            s.close()

    # ------------------------------------------------------------ the loop

    def _loop(self):
        try:
            while not self._stop:
                for key, _ in self.sel.select(0.2):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        try:
                            self._wake_r.recv(64)
                        except OSError:
                            pass
                    else:
                        conn, sock = key.data
                        self._ready(conn, sock)
        finally:
            for c in list(self.conns):
                self._close(c)
            for s in (self.lsock, self._wake_r):
                try:
                    self.sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
            self.sel.close()

    def _accept(self):
        try:
            a, _ = self.lsock.accept()
        except OSError:
            return
        b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        b.settimeout(2)
        try:
            b.connect(self.target)
        except OSError:
            a.close()
            b.close()
            return
        a.setblocking(False)
        b.setblocking(False)
        with self.lock:
            c = _Conn(len(self.conns), a, b)
            self.conns.append(c)
        self.sel.register(a, selectors.EVENT_READ, (c, a))
        self.sel.register(b, selectors.EVENT_READ, (c, b))

    def _want_flip(self, ctype):
        with self.lock:
            if self._arm_record and ctype == APPLICATION_DATA:
                self._arm_record = False
                return True
            return False

    def _ready(self, c, sock):
        other = c.b if sock is c.a else c.a
        # Write what is pending towards SOCK first (it may be writable now).
        if c.out[sock] and not self._send_pending(c, sock):
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            self._update(c)
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        data = bytearray(data)
        if sock is c.a:
            start = len(c.a2b)
            with self.lock:
                fo = self._flip_offset
            if fo is not None and fo[0] in (None, c.index) and start <= fo[1] < start + len(data):
                data[fo[1] - start] ^= 0x01
                with self.lock:
                    self._flip_offset = None
                    self.flip_info = (c.index, fo[1], None)
                self.flipped.set()
            before = bytes(data)
            if c.records.feed(data, self._want_flip):
                off = next(i for i in range(len(data)) if data[i] != before[i])
                with self.lock:
                    self.flip_info = (c.index, start + off, APPLICATION_DATA)
                self.flipped.set()
            with self.lock:
                c.a2b += data
        else:
            with self.lock:
                c.b2a += data
        c.out[other] += data
        if self._send_pending(c, other):
            self._update(c)

    def _send_pending(self, c, sock):
        """Sends what it can of the bytes queued towards SOCK; False when
        that closed the pair."""
        try:
            n = sock.send(c.out[sock])
            del c.out[sock][:n]
        except BlockingIOError:
            pass
        except OSError:
            self._close(c)
            return False
        return True

    def _update(self, c):
        """Watches for writability only while output is pending."""
        if c.closed:
            return
        for s in (c.a, c.b):
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out[s] else 0)
            try:
                self.sel.modify(s, ev, (c, s))
            except (KeyError, ValueError):
                pass

    def _close(self, c):
        if c.closed:
            return
        c.closed = True
        for s in (c.a, c.b):
            # Flush what is pending, best effort, so a close is not a reset.
            try:
                if c.out[s]:
                    s.setblocking(True)
                    s.settimeout(0.2)
                    s.sendall(c.out[s])
            except OSError:
                pass
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
