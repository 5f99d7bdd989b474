"""The worker's operations pieces: token checks, token files, metrics text, JSON logs,
and secrets kept out of settings' repr and error messages."""

import io
import logging
import stat

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from producers.settings import ProducerSettings, SettingsError, from_env
from sinks.settings import StoreSettings
from streams import auth, logs, metrics
from streams.app import broker_credentials
from streams.settings import WorkerSettings


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token", True),
        ("bearer s3cret-token", True),  # the scheme is case-insensitive (RFC 7235)
        ("Bearer  s3cret-token ", True),
        ("Bearer s3cret-toke", False),
        ("Bearer s3cret-tokenX", False),
        ("Basic s3cret-token", False),
        ("s3cret-token", False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_a_bearer_token_matches_only_in_full(header, ok):
    assert auth.token_matches(header, "s3cret-token") is ok


def test_a_token_is_made_once_private_and_kept(tmp_path):
    data = tmp_path / "data"
    first = auth.resolve_token("", data)
    path = data / auth.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 40 and auth.resolve_token("", data) == first
    assert auth.client_token("", data) == first  # what the CLI sends
    assert auth.client_token("mine", data) == "mine"
    assert auth.resolve_token("configured", data) == "configured"
    assert auth.resolve_token("none", data) is None
    assert auth.client_token("none", data) is None
    assert auth.client_token("", tmp_path / "elsewhere") is None


def _snapshot(**over):
    latency = metrics.Latency()
    for seconds in (0.004, 0.02, 0.02, 0.3, 40.0):
        latency.observe(seconds)
    base = dict(
        counts={"valid": 10, "rejected": 3, "late": 1},
        events_per_s=12.5,
        lag={0: 0, 3: 7},
        open_windows=4,
        firing=1,
        sink_counts={"inserts": 5, "insert_retries": 2},
        sink_latency=latency,
        sink_failing=False,
        uptime_s=9.0,
        assigned=2,
    )
    return metrics.Snapshot(**{**base, **over})


def test_metrics_parse_as_prometheus_text_with_the_worker_figures():
    text = metrics.metrics_text(_snapshot()).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("vigil_events_valid_total", ())] == 10
    assert samples[("vigil_deadletter_total", ())] == 3
    assert samples[("vigil_consumer_lag", (("partition", "3"),))] == 7
    assert samples[("vigil_consumer_lag_total", ())] == 7
    assert samples[("vigil_sink_insert_retries_total", ())] == 2
    buckets = {
        dict(labels)["le"]: v
        for (name, labels), v in samples.items()
        if name == "vigil_sink_insert_seconds_bucket"
    }
    assert buckets["0.005"] == 1 and buckets["0.025"] == 3 and buckets["0.5"] == 4
    assert buckets["30.0"] == 4 and buckets["+Inf"] == 5  # cumulative
    assert samples[("vigil_sink_insert_seconds_count", ())] == 5
    assert samples[("vigil_sink_insert_seconds_sum", ())] == pytest.approx(40.344)
    assert "# TYPE vigil_consumer_lag gauge" in text


def test_log_records_are_one_json_object_a_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("vigil.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning('quote " and\nnewline %s', "arg")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == 'quote " and\nnewline arg' and first["level"] == "warning"
    assert first["logger"] == "vigil.test.json" and first["ts"].endswith("Z")
    assert second["level"] == "error" and "ValueError: boom" in second["exc"]


def test_secrets_stay_out_of_reprs_and_error_messages():
    env = {
        "VIGIL_KAFKA_SASL_PASSWORD": "kafka-pw-123",
        "VIGIL_PRIVACY_SECRET": "privacy-key-456",
        "VIGIL_API_TOKEN": "api-token-789",
        "VIGIL_CLICKHOUSE_DSN": "https://vigil:ch-pw-000@clickhouse:8443",
    }
    shown = " ".join(
        repr(from_env(cls, env)) for cls in (ProducerSettings, WorkerSettings, StoreSettings)
    )
    for secret in env.values():
        assert secret not in shown
    assert "kafka_sasl_username" in shown  # not secret: shown
    with pytest.raises(SettingsError) as caught:
        from_env(WorkerSettings, {"VIGIL_SHUTDOWN_SECONDS": "soon"})
    assert "soon" in str(caught.value)

    with pytest.raises(SettingsError) as caught:
        from_env(ProducerSettings, {"VIGIL_KAFKA_SECURITY_PROTOCOL": "SASL_TLS"})
    assert "SASL_TLS" in str(caught.value)  # not a secret: the value helps


def test_kafka_security_reaches_aiokafka_and_faust_options(tmp_path):
    plain = ProducerSettings()
    assert plain.kafka_options() == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(plain) is None
    sasl = from_env(
        ProducerSettings,
        {
            "VIGIL_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "VIGIL_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "VIGIL_KAFKA_SASL_USERNAME": "alice",
            "VIGIL_KAFKA_SASL_PASSWORD": "pw",
        },
    )
    options = sasl.kafka_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("SCRAM-SHA-512", "alice")
    assert options["sasl_plain_password"] == "pw" and options["ssl_context"].check_hostname
    credentials = broker_credentials(sasl)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.username == "alice"
    assert "pw" not in repr(credentials)
    with pytest.raises(SettingsError, match="PLAIN, SCRAM-SHA-256"):
        from_env(ProducerSettings, {"VIGIL_KAFKA_SASL_MECHANISM": "GSSAPI"})


def test_a_secret_that_does_not_parse_is_named_but_not_shown():
    from dataclasses import dataclass

    from producers.settings import env_field

    @dataclass(frozen=True)
    class Secretive:
        pin: int = env_field("VIGIL_TEST_PIN", 0, int, secret=True)

    with pytest.raises(SettingsError) as caught:
        from_env(Secretive, {"VIGIL_TEST_PIN": "s3cret-not-a-number"})
    assert "VIGIL_TEST_PIN" in str(caught.value)
    assert "s3cret-not-a-number" not in str(caught.value)
