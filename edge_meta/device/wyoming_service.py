"""`edge-meta device wyoming`: the enrolled words as a Wyoming wake-word service (Home Assistant's voice pipeline).

Built on the `wyoming` package's own server (`AsyncTcpServer`, `AsyncEventHandler`, its event reader and
`AudioChunkConverter`), speaking its wake events:

- ``describe`` -> ``info`` with one wake program, ``edge-meta``, whose models are the enrolled words (read
  from the store at each ``describe``, so words enrolled since the start are listed);
- ``detect {names}`` limits the next streams' detections to those words (unknown names get an ``error``);
- ``audio-start`` / ``audio-chunk`` / ``audio-stop`` at any rate, sample width and channel count; each stream
  gets its own detector (same thresholds, template check and store as the daemon), and each hit becomes
  ``detection {name, timestamp, speaker}``: ``timestamp`` is the end of the 1 s window the word was heard in,
  in the client's milliseconds (from the stream's first timestamp), ``speaker`` the enrolled voice that
  passed its threshold, else null; ``audio-stop`` with no hit since ``audio-start`` gets ``not-detected``.

Clients are served together on one event loop, in turn (one encoder). A stream's audio reaches its detector in
blocks of ``[input] block_s`` (0.2 s), like the daemon's microphone: fewer, larger calls cost less CPU than one
per chunk of a few tens of ms, for at most one block more latency. A client that breaks the protocol (not
JSON, a length over the limits, an audio format that cannot be converted) gets an ``error`` saying why and is
dropped; one that vanishes is dropped; neither disturbs the others.
Wyoming has no authentication: the default is loopback only, and binding elsewhere takes ``--lan``
(SECURITY.md says what that exposes).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.wake import Detect, Detection, NotDetected

from edge_meta import __version__
from edge_meta.device.config import DeviceConfig
from edge_meta.device.detector import DetectorConfig, StreamingDetector
from edge_meta.device.listening import RepeatedErrors, enrolled_vocabulary, guarded_process, peak_rss_mb
from edge_meta.device.runtime import Runtime
from edge_meta.errors import ConfigError, EdgeMetaError

log = logging.getLogger("edge_meta.device")
ATTRIBUTION = Attribution(name="edge-meta", url="")  # no public home page to point at
MAX_HEADER = 2**16  # bytes of one event's JSON header line (asyncio's default stream limit)
MAX_DATA = 2**16  # bytes of an event's JSON data
MAX_PAYLOAD = 2**20  # bytes of an event's payload: 1 MiB is over 5 s of 48 kHz stereo 16-bit audio
MAX_RATE, MAX_CHANNELS, WIDTHS = 192_000, 32, (1, 2, 3, 4)
MAX_STREAMS = 16  # open at once: a household's satellites, not whatever a client on the LAN asks for


class ClientError(Exception):
    """A request this service cannot serve; the client gets an ``error`` event with the message and is dropped."""


def tcp_address(uri: str, lan: bool) -> tuple[str, int]:
    """(host, port) of a ``tcp://HOST:PORT`` URI; a host other than loopback only with ``lan``."""
    fix = "e.g. --uri tcp://127.0.0.1:10400"
    try:
        parts = urlparse(uri)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"--uri {uri!r}: {exc}", fix) from None
    if parts.scheme != "tcp" or not host or port is None:
        raise ConfigError(f"--uri {uri!r}: expected tcp://HOST:PORT (Home Assistant's Wyoming integration connects "
                          "over TCP)", fix)
    if not lan and not _loopback(host):
        raise ConfigError(f"--uri {uri!r}: binds beyond this machine, and Wyoming has no authentication: anyone who "
                          "can reach the port can stream audio to it and read which words and voices are enrolled",
                          "add --lan (or lan = true in [wyoming]) to mean it; see SECURITY.md")
    return host, port


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CheckedReader:
    """The client's stream as the package's `async_read_event` reads it, each event header checked first: the
    package trusts the peer's lengths, and would wait for (and buffer) whatever payload_length a client claims."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.problem: str | None = None

    async def readline(self) -> bytes:
        try:
            line = await self.reader.readline()
        except ValueError:  # no newline within the stream's limit
            raise self._refuse(f"an event header longer than {MAX_HEADER} bytes") from None
        if line:
            self._check(line)
        return line

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    def at_eof(self) -> bool:
        return self.reader.at_eof()

    def feed_eof(self) -> None:
        self.reader.feed_eof()

    def _check(self, line: bytes) -> None:
        try:
            header = json.loads(line)
        except ValueError:
            raise self._refuse("not a Wyoming event: expected a JSON header line") from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise self._refuse("an event header must be a JSON object with a \"type\"")
        if not isinstance(header.get("data", {}), dict):
            raise self._refuse("an event's data must be a JSON object")
        for key, limit in (("data_length", MAX_DATA), ("payload_length", MAX_PAYLOAD)):
            n = header.get(key)
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= limit):
                raise self._refuse(f"{key} {n!r} is not a length of at most {limit} bytes")

    def _refuse(self, problem: str) -> ValueError:
        """The error `async_read_event` takes for end of stream; ``problem`` says which it was."""
        self.problem = problem
        return ValueError(problem)


@dataclass(eq=False)
class Stream:
    """One client's audio from ``audio-start`` to ``audio-stop``, with its own detector."""

    detector: StreamingDetector
    converter: AudioChunkConverter  # to the bundle's rate and 16-bit samples; channels are averaged after it
    format: tuple[int, int, int]  # rate, width, channels of the chunks it converts
    base_ms: int | None  # the client's time at the stream's start
    hits: int = 0
    pending: list[np.ndarray] = field(default_factory=list)  # converted samples not yet given to the detector
    buffered: int = 0  # ... how many

    def take_pending(self) -> np.ndarray:
        x = np.concatenate(self.pending) if self.pending else np.zeros(0, np.float32)
        self.pending, self.buffered = [], 0
        return x


def _format(data: dict) -> tuple[int, int, int]:
    """(rate, width, channels) of an audio event, checked."""
    rate, width, channels = (data.get(k) for k in ("rate", "width", "channels"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rate, width, channels)):
        raise ClientError(f"audio needs integer rate, width and channels, got {rate!r}, {width!r}, {channels!r}")
    if not 1000 <= rate <= MAX_RATE or width not in WIDTHS or not 1 <= channels <= MAX_CHANNELS:
        raise ClientError(f"cannot convert audio of {rate} Hz, {width} bytes a sample, {channels} channels: rate "
                          f"1000-{MAX_RATE} Hz, width {list(WIDTHS)} bytes and 1-{MAX_CHANNELS} channels are served")
    return rate, width, channels


class WakeService:
    """What every client shares: the runtime (bundle, encoder, store) and the detector settings."""

    def __init__(self, rt: Runtime, config: DetectorConfig, block_s: float) -> None:
        self.rt, self.config = rt, config
        self.sample_rate = rt.logmel.spec.sample_rate
        self.block = int(block_s * self.sample_rate)  # samples a stream gathers before its detector runs
        self.clients = 0
        self.streams: set[Stream] = set()  # every client's open stream
        self.errors = RepeatedErrors()

    def follow_store(self) -> None:
        """Another process changed the store (enroll, remove, forget-user, import): every open stream listens for
        its words as they are now, so a forgotten user's words stop firing at once. A store that cannot be read
        just now keeps the words they had and is tried again at the next chunk; the log says so."""
        if not self.rt.store.changed():
            return
        try:
            for stream in self.streams:
                self.rt.reload(stream.detector)
        except (EdgeMetaError, sqlite3.Error) as exc:
            self.rt.store.forget_version()
            self.errors("reload_failed", f"{type(exc).__name__}: {exc}")

    def info(self) -> Info:
        """One wake program whose models are the enrolled words (a word several users enrolled is one model).
        Home Assistant shows a model's description as its name: the word itself; the store keeps no language."""
        labels = sorted({label for label, _ in self.rt.vocabulary()[0].keys})
        models = [WakeModel(name=label, phrase=label, description=label, languages=[], attribution=ATTRIBUTION,
                            installed=True, version=self.rt.bundle.bundle_id) for label in labels]
        program = WakeProgram(name="edge-meta", attribution=ATTRIBUTION, installed=True, version=__version__,
                              description="wake words learnt on the device from a few takes; says who spoke",
                              models=models)
        return Info(wake=[program])

    def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> "WakeHandler":
        self.clients += 1
        return WakeHandler(self, reader, writer)


class WakeHandler(AsyncEventHandler):
    """One client: its word filter, its stream and detector."""

    def __init__(self, service: WakeService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.checked = CheckedReader(reader)
        super().__init__(self.checked, writer)  # type: ignore[arg-type]
        self.service = service
        self.names: set[str] | None = None
        self.stream: Stream | None = None
        self.peer = str(writer.get_extra_info("peername"))

    async def run(self) -> None:
        """The package's loop (`AsyncEventHandler.run`), guarded: a protocol error gets an ``error`` event saying
        why, then the client is dropped; a client gone mid-event is dropped; neither reaches the other clients."""
        log.info("wyoming_client", extra={"fields": {"peer": self.peer}})
        try:
            while (event := await async_read_event(self.checked)) is not None:  # type: ignore[arg-type]
                if not await self.handle_event(event):
                    return
            if self.checked.problem or not self.checked.at_eof():  # None before the end: data it could not parse
                await self._refuse(self.checked.problem or "malformed event data: expected a JSON object")
        except ClientError as exc:
            await self._refuse(str(exc))
        except (OSError, EOFError) as exc:  # reset, or closed inside an event's data or payload
            log.info("wyoming_client_gone", extra={"fields": {"peer": self.peer, "error": type(exc).__name__}})
        except Exception as exc:  # noqa: BLE001 - e.g. data the package cannot merge, an unreadable store
            await self._refuse(f"cannot serve this event ({type(exc).__name__}: {exc})")
        finally:
            await self.disconnect()
            self.writer.close()

    async def _refuse(self, problem: str) -> None:
        log.warning("wyoming_client_refused", extra={"fields": {"peer": self.peer, "error": problem}})
        try:
            await self.write_event(Error(text=problem, code="bad-request").event())
        except OSError:
            pass

    async def disconnect(self) -> None:
        if self.stream is not None:
            self.service.streams.discard(self.stream)
        log.info("wyoming_client_closed", extra={"fields": {"peer": self.peer}})

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.info().event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Detect.is_type(event.type):
            await self._detect(event.data.get("names"))
        elif AudioStart.is_type(event.type):
            self.stream = self._start(_format(event.data), event.data.get("timestamp"))
        elif AudioChunk.is_type(event.type):
            await self._chunk(event)
        elif AudioStop.is_type(event.type):
            await self._stop()
        return True

    async def _detect(self, names: object) -> None:
        if names is None:
            self.names = None
            return
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ClientError(f"detect: names must be a list of word names, got {names!r}")
        self.names = set(names)
        known = {label for label, _ in self.service.rt.vocabulary()[0].keys}
        if unknown := sorted(self.names - known):
            await self.write_event(Error(text=f"detect: no enrolled word named {', '.join(map(repr, unknown))}; "
                                              f"enrolled: {', '.join(sorted(known)) or 'none'}",
                                         code="unknown-name").event())

    def _start(self, fmt: tuple[int, int, int], timestamp: object) -> Stream:
        if self.stream is not None:  # a new audio-start: the stream before it ends unfinished
            self.service.streams.discard(self.stream)
        if len(self.service.streams) >= MAX_STREAMS:  # each holds a detector: frames, and the words' templates
            raise ClientError(f"busy: {MAX_STREAMS} audio streams are open already")
        rt = self.service.rt
        detector = rt.detector(self.service.config)  # the store as it is now: words enrolled since are heard
        base = timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None
        stream = Stream(detector, self._converter(), fmt, base)
        self.service.streams.add(stream)
        return stream

    def _converter(self) -> AudioChunkConverter:
        return AudioChunkConverter(rate=self.service.sample_rate, width=2)

    async def _chunk(self, event: Event) -> None:
        fmt = _format(event.data)
        audio = event.payload or b""
        if len(audio) % (fmt[1] * fmt[2]):
            raise ClientError(f"audio-chunk of {len(audio)} bytes is not a whole number of {fmt[2]}-channel "
                              f"{fmt[1]}-byte frames")
        stream = self.stream = self.stream or self._start(fmt, None)  # audio-start is implied by the first chunk
        if fmt != stream.format:  # a new format mid-stream: its resampler starts afresh
            stream.converter, stream.format = self._converter(), fmt
        chunk = AudioChunk.from_event(event)
        if stream.base_ms is None:
            stream.base_ms = chunk.timestamp if isinstance(chunk.timestamp, int) else 0
        pcm = stream.converter.convert(chunk).audio
        # The package's converter sums two channels (and cannot mix more): average them here instead.
        x = np.frombuffer(pcm, dtype=np.int16).reshape(-1, fmt[2]).mean(axis=1, dtype=np.float32) / 32768.0
        stream.pending.append(x)
        stream.buffered += len(x)
        if stream.buffered >= self.service.block:  # like the daemon's input block: fewer, larger detector calls
            await self._process(stream)

    async def _process(self, stream: Stream) -> None:
        self.service.follow_store()
        await self._send(stream, guarded_process(stream.detector, stream.take_pending(), self.service.errors))

    async def _stop(self) -> None:
        stream, self.stream = self.stream, None
        if stream is None:
            await self.write_event(NotDetected().event())
            return
        self.service.streams.discard(stream)
        await self._process(stream)
        await self._send(stream, stream.detector.flush())
        if not stream.hits:
            await self.write_event(NotDetected().event())
        log.info("wyoming_stream_end", extra={"fields": {"peer": self.peer, "detections": stream.hits,
                                                          "hops": stream.detector.hops,
                                                          "encoder_calls": stream.detector.encoder_calls}})

    async def _send(self, stream: Stream, detections: list) -> None:
        for d in detections:
            if self.names is not None and d.label not in self.names:
                continue
            stream.hits += 1
            timestamp = (stream.base_ms or 0) + int(round(d.end_s * 1000))
            log.info("wyoming_detection", extra={"fields": {"peer": self.peer, **d.to_event()}})
            await self.write_event(Detection(name=d.label, timestamp=timestamp, speaker=d.speaker).event())


async def _serve(service: WakeService, host: str, port: int, zeroconf: bool) -> str:
    server = AsyncTcpServer(host, port)
    try:
        await server.start(service.handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})",
                          "is another service on that port? choose another --uri port") from None
    if zeroconf:
        await _advertise(port)
    stop = asyncio.Event()
    reason: list[str] = []
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda s=s: (reason.append(signal.Signals(s).name), stop.set()))
    log.info("listening", extra={"fields": {
        "uri": f"tcp://{host}:{port}", "bundle": service.rt.bundle.bundle_id,
        "words": sorted({label for label, _ in service.rt.vocabulary()[0].keys}), "zeroconf": zeroconf}})
    try:
        await stop.wait()
    finally:
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(s)
        await server.stop()
    return reason[0]


async def _advertise(port: int) -> None:
    """Announce the service over mDNS, as Home Assistant's Wyoming discovery expects (needs `zeroconf`)."""
    try:
        from wyoming.zeroconf import HomeAssistantZeroconf
    except ImportError:
        raise ConfigError("--zeroconf needs the zeroconf package", "pip install 'edge-meta[zeroconf]'") from None
    try:
        await HomeAssistantZeroconf(port=port).register_server()
    except OSError as exc:  # e.g. no route to the mDNS group: no network up yet
        raise ConfigError(f"--zeroconf: cannot announce the service ({exc})",
                          "check the network, or leave out --zeroconf and add the service by host and port") from None


def serve(rt: Runtime, cfg: DeviceConfig) -> int:
    """Run the service until SIGTERM or SIGINT; 0 when stopped by one."""
    host, port = tcp_address(cfg.wyoming_uri, cfg.wyoming_lan)
    if cfg.wyoming_zeroconf and _loopback(host):
        raise ConfigError("--zeroconf would announce a service that only this machine can reach",
                          "bind to the LAN too: --uri tcp://0.0.0.0:10400 --lan")
    enrolled_vocabulary(rt)
    service = WakeService(rt, cfg.detector, cfg.block_s)
    cpu_at_start = time.process_time()
    reason = asyncio.run(_serve(service, host, port, cfg.wyoming_zeroconf))
    log.info("stopped", extra={"fields": {"reason": reason, "clients": service.clients, "peak_rss_mb": peak_rss_mb(),
                                          "listening_cpu_s": round(time.process_time() - cpu_at_start, 3)}})
    return 0
