"""The rules file: what it accepts, and errors that name the file and line."""

from __future__ import annotations

import pytest

from streams.rules import DEFAULT_RULES, RuleFileError, load, parse

WINDOWS = ("1m", "5m", "5m/1m")
HOPS = {"1m": 60_000, "5m": 300_000, "5m/1m": 60_000}


def rules(text: str, **kwargs):
    return parse(text, "rules.toml", windows=WINDOWS, hops=HOPS, **kwargs)


def error_lines(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as caught:
        rules(text)
    return caught.value.errors


def test_the_shipped_defaults_load_and_cover_what_users_expect():
    loaded = load(DEFAULT_RULES, windows=("1m",))
    names = {r.name for r in loaded.rules}
    assert {
        "high_error_rate",
        "high_p95_latency",
        "failed_executions",
        "low_success_rate",
        "high_resource_use",
        "no_data",
    } <= names
    assert {r.type for r in loaded.rules} == {"threshold", "absence", "detector"}


def test_a_rule_reads_every_field():
    (rule,) = rules(
        """
[channel.ops]
url = "http://127.0.0.1:9/hook"
timeout = "2s"

[[rule]]
name = "slow_checkout"
match = { kind = "metric", service = "shop*", name = "latency_ms", tags = { env = "prod" } }
signal = "p95"
window = "5m/1m"
op = ">="
threshold = 800
recovery = 600
min_count = 20
for = "3m"
keep_firing_for = "1m"
severity = "critical"
labels = { team = "payments" }
annotations = { summary = "{service} p95 {value:.0f} ms" }
channels = ["ops"]
"""
    ).rules
    assert (rule.signal, rule.window, rule.hop_ms, rule.op) == ("p95", "5m/1m", 60_000, ">=")
    assert (rule.threshold, rule.recovery, rule.min_count) == (800.0, 600.0, 20)
    assert (rule.policy.for_ms, rule.policy.keep_firing_for_ms) == (180_000, 60_000)
    assert rule.labels == (("team", "payments"),) and rule.channels == ("ops",)
    assert rule.selector.matches("metric", "shop-eu", "latency_ms", "", {"env": "prod"})
    assert not rule.selector.matches("metric", "shop-eu", "latency_ms", "", {"env": "dev"})
    assert not rule.selector.matches("metric", "api", "latency_ms", "", {"env": "prod"})
    assert rule.render({"service": "shop-eu", "value": 912.4}) == {"summary": "shop-eu p95 912 ms"}
    assert rule.location == "rules.toml:6"


@pytest.mark.parametrize(
    ("op", "threshold", "recovery", "value", "firing", "expected"),
    [
        (">", 10, None, 11, False, True),
        (">", 10, None, 10, False, False),
        (">=", 10, None, 10, False, True),
        ("<", 10, None, 9, False, True),
        ("<=", 10, None, 10, False, True),
        ("==", 10, None, 10, False, True),
        ("!=", 10, None, 10, False, False),
        (">", 10, 8, 9, False, False),  # not firing: the threshold decides
        (">", 10, 8, 9, True, True),  # firing: holds until below the recovery
        (">", 10, 8, 8, True, False),
        ("<", 0.8, 0.9, 0.85, True, True),
        ("<", 0.8, 0.9, 0.95, True, False),
    ],
)
def test_operators_and_recovery_hysteresis(op, threshold, recovery, value, firing, expected):
    extra = f"recovery = {recovery}\n" if recovery is not None else ""
    (rule,) = rules(
        f'[[rule]]\nname = "r"\nsignal = "mean"\nwindow = "1m"\nop = "{op}"\n'
        f"threshold = {threshold}\n{extra}"
    ).rules
    assert rule.active(value, firing=firing) is expected


def test_a_missing_or_nan_value_is_never_active():
    (rule,) = rules(
        '[[rule]]\nname = "r"\nsignal = "mean"\nwindow = "1m"\nop = "<"\nthreshold = 1\n'
    ).rules
    assert not rule.active(None, firing=False)
    assert not rule.active(float("nan"), firing=True)


BASE = 'signal = "p95"\nwindow = "1m"\nop = ">"\nthreshold = 1\n'


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('signal = "p95"\nwindow = "1m"\nop = "=>"\nthreshold = 1', "op", "op '=>' is not one of"),
        ('signal = "p42"\nwindow = "1m"\nop = ">"\nthreshold = 1', "signal", "signal 'p42' is not"),
        (
            'signal = "p95"\nwindow = "2m"\nop = ">"\nthreshold = 1',
            "window",
            "window '2m' is not a",
        ),
        ('signal = "p95"\nwindow = "1m"\nop = ">"\nthreshold = "x"', "threshold", "must be a fin"),
        (BASE + "recovery = 9", "recovery", "wrong side"),
        (BASE + 'for = "2 min"', "for", "is not a duration"),
        (BASE + 'severity = "meh"', "severity", "severity 'meh' is not one of"),
        (BASE + 'colour = "red"', "colour", "unknown key 'colour'"),
        (BASE + 'annotations = { s = "{nope}" }', "annotations", "uses {nope}"),
        (BASE + 'channels = ["pager"]', "channels", "channel 'pager' is not defined"),
        (BASE + "flap = { max = 0 }", "flap", "flap max must be a whole number"),
        (BASE + 'flap = { hold = "soon" }', "flap", "is not a duration"),
        (BASE + "flap = { often = 2 }", "flap", "flap must be a table of max, window and hold"),
        ('signal = "absent"\nwindow = "1m"\nfor = "30s"', "for", "at least its window"),
        ('signal = "value"\nwindow = "1m"\nop = ">"\nthreshold = 1', "window", "takes no window"),
        ('match = { host = "a" }\n' + BASE, "match", "match key 'host'"),
        ('window = "1m"\nop = ">"\nthreshold = 1', None, "signal None is not one of"),
    ],
)
def test_an_invalid_rule_names_its_file_line_and_reason(body, key, reason):
    lines = body.splitlines()
    # The rule starts on line 2 and its keys on line 4.
    line = 2 if key is None else 4 + next(i for i, t in enumerate(lines) if t.startswith(key))
    (error,) = error_lines(f'# rules\n[[rule]]\nname = "r"\n{body}\n')
    assert error.startswith(f"rules.toml:{line}: rule 'r': "), error
    assert reason in error


def test_every_mistake_is_reported_at_once_each_with_its_line():
    errors = error_lines(
        '[[rule]]\nname = "a"\nsignal = "mean"\nwindow = "1m"\nop = "?"\nthreshold = 1\n\n'
        '[[detector]]\nname = "b"\nsignal = "mean"\nwindow = "1m"\nthreshold = 7\n\n'
        '[[rule]]\nname = "c"\nsignal = "count"\nwindow = "1m"\nop = ">"\nthreshold = 1\n\n'
        '[[rule]]\nname = "c"\nsignal = "count"\nwindow = "1m"\nop = ">"\nthreshold = 1\n'
    )
    assert [e.split(": ")[0] for e in errors] == ["rules.toml:5", "rules.toml:22", "rules.toml:12"]
    assert "used twice" in errors[1] and "score in (0, 1]" in errors[2]


def test_a_toml_syntax_error_names_its_line():
    (error,) = error_lines('[[rule]]\nname = "a"\nthreshold = = 3\n')
    assert error.startswith("rules.toml:3: not valid TOML")


def test_a_bad_channel_is_refused_with_its_line():
    (error,) = error_lines('[[rule]]\nname = "a"\nsignal = "count"\nwindow = "1m"\nop = ">"\n'
                           'threshold = 1\n\n[channel.ops]\nurl = "ftp://x"\n')  # fmt: skip
    assert error.startswith("rules.toml:8: channel 'ops': url must be an http")


def test_defaults_on_windows_not_configured_are_left_out_not_an_error():
    loaded = load(DEFAULT_RULES, windows=("10s",), skip_unconfigured=True)
    assert loaded.rules == () and "high_error_rate" in loaded.skipped
    with pytest.raises(RuleFileError):
        load(DEFAULT_RULES, windows=("10s",))


def test_an_absence_rule_counts_its_silence_from_the_last_data():
    (rule,) = rules(
        '[[rule]]\nname = "quiet"\nsignal = "absent"\nwindow = "1m"\nfor = "5m"\n'
    ).rules
    # The first missing window is seen 1m after the data: pending covers the other 4m.
    assert rule.type == "absence" and rule.policy.for_ms == 240_000


def test_a_detector_defaults_to_the_backtest_threshold_and_policy():
    from streams import backtest

    (rule,) = rules('[[detector]]\nname = "d"\nsignal = "p95"\nwindow = "1m"\n').rules
    assert rule.type == "detector" and rule.threshold == backtest.THRESHOLD
    assert rule.policy == backtest.POLICY


def test_the_worker_refuses_to_start_with_a_bad_rules_file(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nname = "x"\nsignal = "mean"\nwindow = "1m"\nop = "~"\nthreshold = 1\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "worker"],
        env={"VIGIL_RULES": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{path}:5: rule 'x': op '~' is not one of" in done.stderr


def test_flap_damping_is_set_per_rule_and_keeps_the_defaults_it_does_not_name():
    plain, damped, calm = rules(
        '[[rule]]\nname = "a"\n' + BASE + "\n"
        '[[rule]]\nname = "b"\n' + BASE + '\nflap = { max = 2, hold = "30m" }\n'
        '[[detector]]\nname = "c"\nsignal = "p95"\nwindow = "1m"\nflap = { window = "2h" }\n'
    ).rules
    assert (plain.policy.max_flaps, plain.policy.flap_hold_ms) == (3, 900_000)
    assert (damped.policy.max_flaps, damped.policy.flap_window_ms) == (2, 3_600_000)
    assert damped.policy.flap_hold_ms == 1_800_000
    assert (calm.policy.flap_window_ms, calm.policy.flap_hold_ms) == (7_200_000, 0)


def test_a_channel_takes_firing_and_resolved_unless_its_states_say_otherwise():
    plain, loud = rules(
        '[channel.a]\nurl = "http://x/hook"\n\n'
        '[channel.b]\nurl = "http://x/hook"\nstates = ["resolved", "pending", "firing"]\n'
    ).channels.values()
    assert plain.states == ("firing", "resolved")
    assert loud.states == ("pending", "firing", "resolved")
    for bad in ("[]", '["firing", "acked"]', '"firing"', "[{ a = 1 }]"):
        with pytest.raises(
            RuleFileError, match="states must be a list of pending, firing, resolved"
        ):
            rules(f'[channel.c]\nurl = "http://x/hook"\nstates = {bad}\n')
