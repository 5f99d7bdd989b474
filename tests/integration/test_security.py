"""Kafka SASL and TLS settings reach the wire, and secrets never reach the logs.

The embedded broker has no SASL users to log in with, serves no TLS and its SASL check can
be bypassed, so a recording proxy stands in front of it (``tests.kafka_proxy``): it answers
the SASL handshake and records the credentials the client then sends, or terminates TLS with
a certificate from a test CA and records the Kafka requests that came inside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl

import pytest
import trustme

from producers.client import Client
from tests.kafka_proxy import (
    API_VERSIONS,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    RecordingProxy,
)
from tests.samples import metric
from tests.waiting import until

pytestmark = pytest.mark.integration

PASSWORD = "pw-never-logged-4711"


async def test_the_sdk_logs_in_with_sasl_plain_as_configured(broker, kafka_settings):
    async with RecordingProxy(broker.bootstrap, answer_sasl=True) as proxy:
        settings = dataclasses.replace(
            kafka_settings,
            kafka_bootstrap=proxy.bootstrap,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="alice",
            kafka_sasl_password=PASSWORD,
            send_timeout_ms=2000,
        )
        async with Client(settings) as pub:
            pub.publish(metric())
            await until(lambda: proxy.bodies(SASL_AUTHENTICATE), timeout=30)
            assert pub.stats()["sent"] == 0  # not logged in: nothing delivered
    (mechanism, *_) = proxy.bodies(SASL_HANDSHAKE)
    assert mechanism == b"\x00\x05PLAIN"
    assert b"\x00alice\x00" + PASSWORD.encode() in proxy.bodies(SASL_AUTHENTICATE)[0]


async def test_the_worker_logs_in_with_scram_and_logs_no_secret(broker, start_worker):
    token = "api-token-never-logged-0815"
    async with RecordingProxy(broker.bootstrap, answer_sasl=True) as proxy:
        worker = start_worker(
            VIGIL_KAFKA_BOOTSTRAP=proxy.bootstrap,
            VIGIL_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
            VIGIL_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
            VIGIL_KAFKA_SASL_USERNAME="alice",
            VIGIL_KAFKA_SASL_PASSWORD=PASSWORD,
            VIGIL_PRIVACY_SECRET="privacy-never-logged-99",
            VIGIL_API_TOKEN=token,
            VIGIL_LOG_LEVEL="debug",
        )
        await until(lambda: proxy.bodies(SASL_AUTHENTICATE), timeout=60)
        worker.stop()  # (Faust gives up when it cannot log in: the process exits)
    mechanisms = set(proxy.bodies(SASL_HANDSHAKE))
    assert mechanisms == {b"\x00\x0dSCRAM-SHA-512"}
    # SCRAM's client-first message names the user; the password never crosses the wire.
    auth = proxy.bodies(SASL_AUTHENTICATE)
    assert all(b"n,,n=alice,r=" in body for body in auth)
    assert not any(PASSWORD.encode() in body for body in auth)
    log = worker.log()
    assert '"level":"debug"' in log  # debug logging was on
    for secret in (PASSWORD, token, "privacy-never-logged-99"):
        assert secret not in log


def _tls(tmp_path):
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return server, cafile


@pytest.mark.parametrize("trusted", [True, False])
async def test_the_sdk_speaks_kafka_inside_tls_to_a_broker_it_trusts(
    broker, kafka_settings, tmp_path, trusted
):
    server, cafile = _tls(tmp_path)
    if not trusted:  # the client trusts another CA: it must refuse the proxy's certificate
        (tmp_path / "other").mkdir()
        _, cafile = _tls(tmp_path / "other")
    async with RecordingProxy(broker.bootstrap, ssl=server) as proxy:
        settings = dataclasses.replace(
            kafka_settings,
            kafka_bootstrap=proxy.bootstrap,
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=str(cafile),
            send_timeout_ms=2000,
        )
        async with Client(settings) as pub:
            pub.publish(metric())
            if trusted:
                await until(lambda: API_VERSIONS in proxy.api_keys(), timeout=30)
            else:
                await until(lambda: pub.stats()["last_error"] is not None, timeout=30)
                await asyncio.sleep(1)
    if trusted:
        assert all(r.client_id.startswith("aiokafka") for r in proxy.requests)
    else:
        assert proxy.requests == []  # the handshake failed: not one request got through
