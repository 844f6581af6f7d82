"""The one way the gateway and the collector talk to a broker: paho-mqtt, MQTT 5, a
persistent session (clean_start False, a session expiry), reconnecting by itself.

A broker is named by a URL: mqtt://HOST[:PORT] (1883), mqtts://HOST[:PORT] (8883, TLS with
the system's certificate authorities), with USER[:PASSWORD]@ before HOST if it wants them.
The same URL points at mosquitto on this machine or at a clustered broker (EMQX, HiveMQ).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from tinydrift.errors import TinydriftError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
KEEPALIVE_S = 15
# How long the broker keeps a session (its subscriptions, its unacknowledged messages) while
# the client is away: a gateway or collector that restarts within this finds it again.
SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM_LIMIT = 65535
REASON_SESSION_TAKEN_OVER = 0x8E  # another client connected with the same client id
FLEET_EXTRA = "the fleet commands need the fleet extra (pip install 'tinydrift[fleet]')"  # MQTT 5's Receive Maximum is a u16


# The longest client id a CONNECT packet can carry (a u16 length): paho fails to pack a longer
# one in its network thread, where the error is a traceback and the command goes on.
CLIENT_ID_MAX_BYTES = 65535
# what the collector puts before its --name: tinydrift-collector-FLEET-GROUP- (1-64 each)
COLLECTOR_PREFIX_MAX_BYTES = len("tinydrift-collector---") + 2 * 64


def check_client_id(value: str, what: str = "MQTT client id", prefix_bytes: int = 0) -> str:
    """An MQTT client id (or the part of one a user names): UTF-8, as MQTT 5 requires, and
    short enough for a CONNECT packet with `prefix_bytes` before it."""
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:  # bytes of another encoding in argv
        raise TinydriftError(f"{what} {value!r} is not valid UTF-8: give it in UTF-8 (MQTT's encoding)") from None
    room = CLIENT_ID_MAX_BYTES - prefix_bytes
    if len(encoded) > room:
        raise TinydriftError(f"{what} of {len(encoded):,} bytes: MQTT carries at most {room:,} here; give a shorter one")
    return value


@dataclass(frozen=True)
class BrokerUrl:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "BrokerUrl":
        try:
            parts = urlsplit(url)  # an unclosed [IPv6 bracket raises here
            port = parts.port
        except ValueError:
            parts, port = urlsplit(""), -1
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port == -1 or (parts.path not in ("", "/")):
            raise TinydriftError(f"broker URL {url!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT] "
                                 "(e.g. mqtt://127.0.0.1:1883)")
        return cls(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme],
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def __str__(self) -> str:  # without the password
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"{self.scheme}://{user}{host}:{self.port}"


TLS_PROBE_TIMEOUT_S = 5.0


def check_tls(url: BrokerUrl) -> None:
    """For an mqtts:// URL, one TLS handshake before any work: a port that speaks plain MQTT,
    or a certificate this machine does not trust, is a mistake in the URL or the set-up, not
    an outage, and paho would only retry it forever as "cannot connect". A broker that is
    down or unreachable passes (an outage, retried as any)."""
    if url.scheme != "mqtts":
        return
    import socket
    import ssl

    try:
        sock = socket.create_connection((url.host, url.port), timeout=TLS_PROBE_TIMEOUT_S)
    except OSError:  # refused, unreachable, timed out: an outage
        return
    try:  # something listens there: a handshake that fails now is no outage
        with ssl.create_default_context().wrap_socket(sock, server_hostname=url.host):
            return
    except ssl.SSLCertVerificationError as exc:
        raise TinydriftError(f"broker {url}: its TLS certificate is not trusted here ({exc.verify_message}): install "
                             "the certificate authority that signed it, or use the broker's plain mqtt:// port") from None
    except OSError as exc:  # ssl.SSLError, or a plain MQTT server closing on the ClientHello
        why = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise TinydriftError(f"broker {url}: no TLS handshake on that port ({why}): a plain MQTT port? give "
                             "mqtt://, or the broker's TLS port (8883 by default)") from None
    finally:
        sock.close()


def client(url: BrokerUrl, client_id: str, *, manual_ack: bool = False, receive_maximum: int | None = None,
           max_inflight: int = 1000, session_expiry_s: int = SESSION_EXPIRY_S):
    """A paho client set up for `url`, connecting in the background once its loop starts
    (loop_start): a broker that is down at start is retried, as one that goes away later."""
    try:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
    except ImportError:
        raise TinydriftError(f"{FLEET_EXTRA}: paho-mqtt is missing") from None

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                    manual_ack=manual_ack)
    c.max_inflight_messages_set(max_inflight)
    c.max_queued_messages_set(0)
    c.reconnect_delay_set(1, 4)
    if url.username:
        c.username_pw_set(url.username, url.password)
    if url.scheme == "mqtts":
        c.tls_set()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = session_expiry_s
    if receive_maximum:
        properties.ReceiveMaximum = receive_maximum
    c.connect_async(url.host, url.port, keepalive=KEEPALIVE_S, clean_start=False, properties=properties)
    return c


def session_end():
    """DISCONNECT properties that end the session now (a session expiry of 0): the broker
    keeps nothing for the client, its subscriptions included."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.DISCONNECT)
    properties.SessionExpiryInterval = 0
    return properties


REASON_UNSPECIFIED = 0x80
# Connections the broker closes this soon after opening them, without a DISCONNECT packet, twice
# in a row, were most likely taken over: mosquitto drops the older of two clients with one id
# without saying why, and each reconnects and drops the other in turn, a second or so apart.
# One such drop is no sign: a broker stopped just after a client connected looks the same.
TAKEN_OVER_WITHIN_S = 5.0
TAKEN_OVER = ("another client connected with the same client id and took this session over: give each gateway "
              "its own --client-id and each collector its own --name")


class ConnectionWatch:
    """Why the broker dropped a connection, in words a user can act on: paho's reason code,
    or what a short-lived connection closed without a word most likely means."""

    def __init__(self) -> None:
        self._opened_at: float | None = None
        self._short_drops = 0  # connections in a row closed without a word soon after they opened

    def opened(self) -> None:
        self._opened_at = time.monotonic()

    def dropped(self, reason_code, flags) -> str:
        lived = None if self._opened_at is None else time.monotonic() - self._opened_at
        self._opened_at = None
        value = getattr(reason_code, "value", None)
        if value == REASON_SESSION_TAKEN_OVER:
            return TAKEN_OVER
        silent = value == REASON_UNSPECIFIED and not getattr(flags, "is_disconnect_packet_from_server", True)
        self._short_drops = self._short_drops + 1 if silent and lived is not None and lived < TAKEN_OVER_WITHIN_S else 0
        if silent:
            if self._short_drops >= 2:
                return f"closed {lived:.1f} s after it opened, most likely because {TAKEN_OVER}"
            # paho's words for it are "Unspecified error", which sends users looking for a fault
            return "the connection was lost without a word from the broker: it stopped, or the network to it failed"
        return str(reason_code)
