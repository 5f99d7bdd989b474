"""``vigil rules check`` and ``vigil rules test``, as promtool's: exit codes, file:line
reasons, and unit tests of rules that pass and fail for the right reasons; and a reload
in the pure core (``Evaluation.reload``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.evaluation import Evaluation
from streams.rules import parse
from streams.ruletests import RuleTestError, expand
from tests.samples import feed, window
from vigil.cli import main

RULES = """
# the checkout's latency
[[rule]]
name = "slow_checkout"
match = { kind = "metric", service = "shop", name = "latency_ms" }
signal = "p95"
window = "1m"
op = ">"
threshold = 800
for = "2m"
min_count = 3
labels = { team = "payments" }
annotations = { summary = "{service} p95 is {value:.0f} ms" }

[[rule]]
name = "failing_loads"
match = { kind = "step.end", name = "etl", step = "load" }
signal = "errors"
window = "1m"
op = ">="
threshold = 2
"""

TESTS = """
rule_files = ["rules.toml"]
windows = "1m"

[[test]]
name = "latency"

[[test.series]]
event = { kind = "metric", service = "shop", name = "latency_ms" }
values = "100x1 900x5 _ 100"
per_step = 4

[[test.alerts]]
at = "1m"
rule = "slow_checkout"
expect = []

[[test.alerts]]
at = "3m"
rule = "slow_checkout"
expect = [{ state = "pending", labels = { team = "payments" } }]

[[test.alerts]]
at = "6m"
rule = "slow_checkout"
expect = [{ state = "firing", annotations = { summary = "shop p95 is 900 ms" } }]

[[test]]
name = "loads"

[[test.series]]
event = { kind = "step.end", service = "etl", name = "etl", step = "load", execution_id = "e1" }
values = "5x3"
ok = "1 0 0 1"
per_step = 2

[[test.alerts]]
at = "3m"
rule = "failing_loads"
expect = [{ state = "firing" }]
"""


def _files(tmp_path: Path, rules: str = RULES, tests: str = TESTS) -> tuple[Path, Path]:
    (tmp_path / "rules.toml").write_text(rules)
    (tmp_path / "rules_test.toml").write_text(tests)
    return tmp_path / "rules.toml", tmp_path / "rules_test.toml"


def test_check_passes_a_good_file_and_names_each_mistake_of_a_bad_one(tmp_path, capsys):
    good, _ = _files(tmp_path)
    assert main(["rules", "check", str(good), "--windows", "1m"]) == 0
    assert "SUCCESS: 0 detectors, 2 rules, 0 channels" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES.replace('"p95"', '"p97"').replace("threshold = 2", 'threshold = "x"'))
    assert main(["rules", "check", str(good), str(bad), "--windows", "1m"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:6: rule 'slow_checkout': signal 'p97'" in err
    assert f"{bad}:21: rule 'failing_loads': threshold" in err


def test_rule_tests_pass_when_the_rules_do_what_they_say(tmp_path, capsys):
    _, tests = _files(tmp_path)
    assert main(["rules", "test", str(tests)]) == 0
    assert "SUCCESS: 2 tests" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (('for = "2m"', 'for = "5m"'), "at 6m, rule 'slow_checkout': expected"),
        (("threshold = 2", "threshold = 3"), "at 3m, rule 'failing_loads'"),
        (("min_count = 3", "min_count = 5"), "at 3m, rule 'slow_checkout'"),
    ],
)
def test_rule_tests_fail_when_a_rule_does_not_do_what_they_expect(tmp_path, capsys, change, says):
    _, tests = _files(tmp_path, rules=RULES.replace(*change))
    assert main(["rules", "test", str(tests)]) == 1
    err = capsys.readouterr().err
    assert says in err and "FAILED" in err


def test_an_expected_alert_too_many_or_too_few_fails(tmp_path, capsys):
    extra = TESTS.replace(
        'expect = [{ state = "firing" }]', 'expect = [{ state = "firing" }, { state = "firing" }]'
    )
    _, tests = _files(tmp_path, tests=extra)
    assert main(["rules", "test", str(tests)]) == 1
    none = TESTS.replace('expect = [{ state = "firing" }]', "expect = []")
    _, tests = _files(tmp_path, tests=none)
    assert main(["rules", "test", str(tests)]) == 1
    assert capsys.readouterr().err.count("FAILED") == 2


def test_the_series_notation_and_its_mistakes():
    assert expand("3x2 _x1 1+1x2") == [3.0, 3.0, 3.0, None, None, 1.0, 2.0, 3.0]
    with pytest.raises(RuleTestError, match="not a value"):
        expand("1 two")


def test_a_reload_keeps_unchanged_rules_and_resolves_the_alerts_of_changed_ones():
    def rules(threshold: int, extra: str = ""):
        text = f"""
[[rule]]
name = "kept"
signal = "mean"
window = "1m"
op = ">"
threshold = 50

[[rule]]
name = "changed"
signal = "mean"
window = "1m"
op = ">"
threshold = {threshold}
{extra}"""
        return parse(text, "r.toml", windows=("1m",))

    e = Evaluation(rules(60), partition=0)
    fired = feed(e, [window(1, mean=100.0), window(2, mean=100.0)])
    assert sorted((a.rule, a.state) for a in fired) == [("changed", "firing"), ("kept", "firing")]
    kept = next(s for (rule, _), s in e.slots.items() if rule == "kept").state
    out = e.reload(rules(70), now_ms=0)
    assert [(a.rule, a.state, a.previous, a.seq) for a in out] == [
        ("changed", "resolved", "firing", 3)
    ]
    assert out[0].at == 2 * 60_000  # the last window it saw
    assert [(rule, s.state) for (rule, _), s in e.slots.items()] == [("kept", kept)]
    # The same rules again (even moved in the file) change nothing.
    assert e.reload(rules(70), now_ms=0) == [] and len(e.slots) == 1
