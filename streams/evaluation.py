"""Rules and detectors evaluated on the signals of one partition's series.

:class:`Evaluation` is fed what the partition produces: each closed window
(:meth:`Evaluation.window`), each raw sample of a series that a sample rule watches
(:meth:`Evaluation.sample`), and the watermark once a batch is done
(:meth:`Evaluation.advance`: a window a series did not have is an observation too: clear
for a threshold rule, active for an absence rule). It keeps one *slot* per rule and
series that needs memory: a detector's model, an alert that is pending, firing or
recently resolved (flap damping), or the last data of a series an absence rule watches.
A threshold rule that never held on a series costs nothing.

Cost follows closed windows and watched samples, not events. Time is event time: an
alert's ``at`` is the end of the window (or the sample's time) that decided it, so a
replay after a crash makes the same transitions with the same sequence numbers.

>>> from streams.rules import parse
>>> from streams.windows import Windows, parse_windows
>>> rules = parse('''
... [[rule]]
... name = "errors"
... signal = "errors"
... window = "1m"
... op = ">="
... threshold = 2
... ''', "r.toml", windows=("1m",))
>>> e, w = Evaluation(rules, partition=0), Windows(parse_windows("1m"), grace_ms=0, partition=0)
>>> for ts in (1_000, 2_000, 61_000):
...     _ = w.add("step.end|etl|load", "step.end", "etl", "load", ts=ts, value=1.0, ok=False)
>>> [(a.rule, a.state, a.at) for r in w.close_ready() for a in e.window(r, now_ms=0)]
[('errors', 'firing', 60000)]
>>> _ = w.add("step.end|etl|load", "step.end", "etl", "load", ts=200_000, value=1.0, ok=True)
>>> _ = w.close_ready()
>>> [(a.state, a.at) for a in e.advance(w.watermark, now_ms=0)]
[('resolved', 120000)]
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from producers.alerts import Alert
from producers.series import SeriesKey
from streams import modelbase
from streams.alerting import AlertState, Observation, Transition, acknowledge, retire, step
from streams.detection import Detector, default_detector
from streams.detection import restore as restore_detector
from streams.records import ScoreRecord, WindowRecord
from streams.rules import Rule, RuleSet

#: An absence rule forgets a series silent this long (event time), without a transition.
FORGET_ABSENT_MS = 7 * 24 * 3600 * 1000
#: A rule on raw samples counts a series whose samples stopped this long ago (event time)
#: as clear, as Prometheus's lookback delta does: its alert resolves instead of firing on.
SAMPLE_STALE_MS = 5 * 60_000
_MATCH_CACHE = 200_000


def fingerprint(rule: str, series: str) -> str:
    """The stable name of the alert of ``rule`` on ``series`` (16 hex digits)."""
    return hashlib.blake2b(f"{rule}\x00{series}".encode(), digest_size=8).hexdigest()


def alert_labels(rule: Rule, service: str, series: str) -> dict[str, str]:
    """The labels silences match: the rule's own, plus alertname, service and series."""
    return {**dict(rule.labels), "alertname": rule.name, "service": service, "series": series}


def signal_value(record: WindowRecord, signal: str) -> float | None:
    """The ``signal`` aggregate of a closed window (None when the window has none)."""
    if signal == "error_rate":
        return record.error_rate if record.count else None
    if signal == "success_rate":
        return 1.0 - record.error_rate if record.count else None
    value = getattr(record, signal)
    return None if value is None else float(value)


class Slot:
    """What one rule remembers about one series."""

    __slots__ = ("data_end", "detector", "last_end", "meta", "state")

    def __init__(
        self, meta: tuple[str, str, str], state: AlertState | None = None, *, detector: Any = None
    ) -> None:
        self.meta = meta  # kind, service, name
        self.state = state or AlertState()
        #: End of the last window evaluated, and of the last one with data.
        self.last_end: int | None = None
        self.data_end: int | None = None
        self.detector: Detector | None = detector


class Evaluation:
    def __init__(self, rules: RuleSet, partition: int, *, max_detected: int = 20_000) -> None:
        self.rules = rules
        self.partition = partition
        #: Detector models per partition at most (each about 7 KB of JSON: bench.worker_core).
        self.max_detected = max_detected
        self.slots: dict[tuple[str, str], Slot] = {}
        #: Transitions made in this partition so far; numbers the next one.
        self.seq = 0
        self.counts = collections.Counter[str]()
        self._by_name = {r.name: r for r in rules.rules}
        self._matched: dict[str, tuple[Rule, ...]] = {}
        self._named: dict[tuple[str, str, str], tuple[tuple[Rule, ...], bool]] = {}
        #: Slots that :meth:`advance` must look at (others only change with data).
        self._live: set[tuple[str, str]] = set()
        self._detected = 0
        self._now = 0
        #: Detector scores of the windows evaluated since :meth:`take_scores`.
        self.scores: list[ScoreRecord] = []

    def _rules_for(self, series: str, kind: str, service: str, name: str) -> tuple[Rule, ...]:
        found = self._matched.get(series)
        if found is None:
            if len(self._matched) >= _MATCH_CACHE:
                self._matched.clear()
            candidates, names_only = self._rules_named(kind, service, name)
            if names_only:  # the series' step and tags cannot change the answer
                found = candidates
            else:
                key = SeriesKey.of(series, kind, service, name)
                step, tags = key.step or "", dict(key.tags)
                found = tuple(r for r in candidates if r.selector.matches_rest(step, tags))
            self._matched[series] = found
        return found

    def _rules_named(self, kind: str, service: str, name: str) -> tuple[tuple[Rule, ...], bool]:
        """The rules whose kind, service and name patterns match, and whether they all
        match every step and tags: worked out once for the many series of one name, so
        a new series' rules are a lookup unless a rule names a step or tags (100,000
        series of one name under the default rules: 12.3-24.0 µs a series matching each
        rule against 0.6-1.3 so; a scratch timing, three runs)."""
        names = (kind, service, name)
        found = self._named.get(names)
        if found is None:
            if len(self._named) >= _MATCH_CACHE:
                self._named.clear()
            rules = tuple(r for r in self.rules.rules if r.selector.matches_names(*names))
            found = self._named[names] = (rules, all(r.selector.names_only for r in rules))
        return found

    # -- observations --------------------------------------------------------------------
    def window(self, record: WindowRecord, *, now_ms: int) -> list[Alert]:
        """Evaluate the rules that watch this closed window's series and width."""
        if record.label not in self.rules.windows:
            return []
        self._now = now_ms
        out: list[Alert] = []
        meta = (record.kind, record.service, record.name)
        for rule in self._rules_for(record.series, *meta):
            if rule.window != record.label:
                continue
            key = (rule.name, record.series)
            slot = self.slots.get(key)
            end = record.end_ms
            if slot is not None:
                if slot.last_end is not None and end <= slot.last_end:
                    continue  # evaluated already
                self._missing(rule, key, slot, end - rule.hop_ms, out)
            value = None if rule.type == "absence" else signal_value(record, rule.signal)
            if record.count < rule.min_count:
                value = None
            if rule.type == "absence":
                slot = slot or self._slot(key, meta)
                slot.data_end = end
                observed: tuple[Slot, Observation, float | None] | None = (
                    slot, Observation(False, 0.0), None,
                )  # fmt: skip
            else:
                observed = self._observe(rule, key, slot, meta, value, end)
            if observed is not None:
                slot, obs, score = observed
                slot.last_end = end
                if score is not None and value is not None:
                    self.scores.append(
                        ScoreRecord(
                            record.series, *meta, rule.name, record.label, end, value,
                            score, rule.threshold, self.partition,
                        )
                    )  # fmt: skip
                self._step(rule, key, slot, obs, end, score, out)
        return out

    def take_scores(self) -> list[ScoreRecord]:
        """The detector scores made since the last call (the partition stores them)."""
        scores, self.scores = self.scores, []
        return scores

    def sample(
        self, series: str, kind: str, service: str, name: str, *, ts: int, value: float, now_ms: int
    ) -> list[Alert]:
        """Evaluate the rules that watch raw samples of this series."""
        self._now = now_ms
        out: list[Alert] = []
        meta = (kind, service, name)
        for rule in self._rules_for(series, *meta):
            if rule.window is not None:
                continue
            key = (rule.name, series)
            observed = self._observe(rule, key, self.slots.get(key), meta, value, ts)
            if observed is not None:
                slot, obs, score = observed
                slot.data_end = max(ts, slot.data_end or ts)
                self._step(rule, key, slot, obs, ts, score, out)
        return out

    def _observe(
        self,
        rule: Rule,
        key: tuple[str, str],
        slot: Slot | None,
        meta: tuple[str, str, str],
        value: float | None,
        at: int,
    ) -> tuple[Slot, Observation, float | None] | None:
        """The observation of a threshold rule or detector, and the slot that keeps it;
        None when there is nothing to remember (or no room for another model)."""
        if rule.type == "detector":
            slot = slot or self._detector_slot(key, meta)
            if slot is None:
                return None
            score = self._score(slot, value, at)
            return slot, Observation(score >= rule.threshold, value), score
        firing = slot is not None and slot.state.status == "firing"
        active = rule.active(value, firing=firing)
        if slot is None and not active:
            return None  # never held here: costs nothing
        return slot or self._slot(key, meta), Observation(active, value), None

    def advance(self, watermark: int | None, *, now_ms: int) -> list[Alert]:
        """Every window that closed up to ``watermark`` without data for a live slot's
        series is an observation: clear for threshold rules and detectors, active for
        absence rules. Slots with nothing left to remember are dropped."""
        self._now = now_ms
        out: list[Alert] = []
        if watermark is None:
            return out
        for key in list(self._live):
            slot = self.slots[key]
            rule = self._by_name[key[0]]
            if rule.window is None:
                self._stale(rule, key, slot, watermark, out)
            else:
                self._missing(rule, key, slot, watermark, out)
            state = slot.state
            if rule.type == "absence":
                if slot.data_end is not None and watermark - slot.data_end > FORGET_ABSENT_MS:
                    self._drop(key)
            elif state.status in ("inactive", "resolved"):
                recent = [t for t in state.fired_at if watermark - t < rule.policy.flap_window_ms]
                if not recent:
                    self._live.discard(key)
                    if rule.type == "threshold":
                        self._drop(key)
        return out

    def _missing(
        self, rule: Rule, key: tuple[str, str], slot: Slot, upto: int, out: list[Alert]
    ) -> None:
        """Step through the windows ending after ``slot.last_end`` and up to ``upto`` that
        the series did not have, until the outcome cannot change any more."""
        hop = rule.hop_ms
        if slot.last_end is None or not hop:
            return
        end = slot.last_end + hop
        while end <= upto:
            status = slot.state.status
            if rule.type == "absence":
                if status == "firing":
                    break
                silent_s = (end - (slot.data_end or end)) / 1000
                obs = Observation(True, silent_s)
            else:
                if status in ("inactive", "resolved"):
                    break
                obs = Observation(False, None)
            slot.last_end = end
            self._step(rule, key, slot, obs, end, None, out)
            end += hop
        if end <= upto:
            slot.last_end = upto - upto % hop  # nothing changes: the last closed window end

    def _stale(
        self, rule: Rule, key: tuple[str, str], slot: Slot, upto: int, out: list[Alert]
    ) -> None:
        """A pending or firing sample rule whose series sent nothing for
        ``SAMPLE_STALE_MS`` up to ``upto`` observes clear then, and again once its hold
        (``keep_firing_for``, flap damping) is over; the times depend only on the data."""
        if slot.data_end is None:
            return
        at = slot.data_end + SAMPLE_STALE_MS
        while at <= upto and slot.state.status in ("pending", "firing"):
            self._step(rule, key, slot, Observation(False, None), at, None, out)
            policy, state = rule.policy, slot.state
            if state.status != "firing" or state.last_active_at is None:
                return
            keep = policy.keep_firing_for_ms
            holds = (keep, max(keep, policy.flap_hold_ms))  # flapping or not
            later = [state.last_active_at + h for h in holds if state.last_active_at + h > at]
            if not later:
                return
            at = min(later)

    # -- slots and transitions ---------------------------------------------------------------
    def _slot(self, key: tuple[str, str], meta: tuple[str, str, str]) -> Slot:
        slot = self.slots[key] = Slot(meta)
        return slot

    def _detector_slot(self, key: tuple[str, str], meta: tuple[str, str, str]) -> Slot | None:
        if self._detected >= self.max_detected:
            self.counts["detector_series_refused"] += 1
            return None
        self._detected += 1
        slot = self.slots[key] = Slot(meta, detector=default_detector())
        return slot

    def _drop(self, key: tuple[str, str]) -> None:
        slot = self.slots.pop(key, None)
        self._live.discard(key)
        if slot is not None and slot.detector is not None:
            self._detected -= 1

    @staticmethod
    def _score(slot: Slot, value: float | None, at: int) -> float:
        detector = slot.detector
        if value is None or detector is None:
            return 0.0
        score = detector.score_one(value, at)
        detector.learn_one(value, at)
        return score

    def _step(
        self,
        rule: Rule,
        key: tuple[str, str],
        slot: Slot,
        obs: Observation,
        at: int,
        score: float | None,
        out: list[Alert],
    ) -> None:
        state, transition = step(slot.state, obs, at, rule.policy)
        slot.state = state
        if state.status != "inactive" or rule.type == "absence":
            self._live.add(key)
        if transition is not None:
            self._emit(rule, key, slot, transition, at, score, out)

    def _emit(
        self,
        rule: Rule,
        key: tuple[str, str],
        slot: Slot,
        transition: Transition,
        at: int,
        score: float | None,
        out: list[Alert],
    ) -> None:
        self.seq += 1
        kind, service, name = slot.meta
        series = key[1]
        fp = fingerprint(rule.name, series)
        # What the alert and its annotation templates share (rules.TEMPLATE_FIELDS).
        shared: dict[str, Any] = {
            "rule": rule.name,
            "series": series,
            "kind": kind,
            "service": service,
            "name": name,
            "value": transition.value,
            "threshold": rule.threshold,
            "score": score,
            "op": rule.op,
            "severity": rule.severity,
        }
        annotations = {}
        if rule.annotations:
            annotations = rule.render(
                {
                    **shared,
                    "step": SeriesKey.of(series, kind, service, name).step or "",
                    "window": rule.window or "sample",
                    "labels": dict(rule.labels),
                }
            )
        out.append(
            Alert(
                **shared,
                id=f"{fp}-{self.seq}",
                fingerprint=fp,
                partition=self.partition,
                seq=self.seq,
                type=rule.type,
                state=transition.to,
                previous=transition.previous,
                at=at,
                started_at=transition.started_at,
                window=rule.window,
                labels=alert_labels(rule, service, series),
                annotations=annotations,
                channels=list(rule.channels) if rule.channels is not None else None,
                flapping=transition.flapping,
                evaluated_at=self._now,
            )
        )

    def reload(self, rules: RuleSet, *, now_ms: int) -> list[Alert]:
        """Evaluate ``rules`` from now on. An alert of a rule whose definition is the same
        keeps its state (pending, firing, acknowledged, its detector's model); an alert
        of a rule that changed or went away ends: firing, it resolves (the transition is
        returned, at the last window it saw); pending, it is dropped as when it clears."""
        old = self._by_name
        self.rules, self._by_name = rules, {r.name: r for r in rules.rules}
        self._matched.clear()
        self._named.clear()
        self._now = now_ms
        out: list[Alert] = []
        for key, slot in list(self.slots.items()):
            before, after = old[key[0]], self._by_name.get(key[0])
            if after is not None and after.same_as(before):
                continue
            at = slot.last_end or slot.state.last_active_at or now_ms
            transition = retire(slot.state, at)
            if transition is not None:
                self._emit(before, key, slot, transition, at, None, out)
            self._drop(key)
            self.counts["slots_of_changed_rules"] += 1
        return out

    # -- what people look at, and persistence ----------------------------------------------
    def alerts(self) -> list[dict[str, Any]]:
        """Alerts that are pending or firing, as the API serves them, by rule and series.

        Read from the live slots only (a pending or firing one is always live): every
        slot was 80,000 at 100,000 series, read again at each poll of the stats page,
        4% of the worker's main thread in ``bench.pipeline`` (py-spy, one run)."""
        out = []
        for name, series in sorted(self._live):
            slot = self.slots[(name, series)]
            state = slot.state
            if state.status in ("pending", "firing"):
                rule = self._by_name[name]
                out.append(
                    {
                        "fingerprint": fingerprint(name, series),
                        "rule": name,
                        "type": rule.type,
                        "series": series,
                        "partition": self.partition,
                        "severity": rule.severity,
                        "labels": alert_labels(rule, slot.meta[1], series),
                        "status": state.status,
                        "started_at": state.started_at,
                        "value": state.value,
                        "acked_by": state.acked_by,
                        "acked_at": state.acked_at,
                    }
                )
        return out

    def acknowledge(self, fingerprint_: str, started_at: int, by: str, at: int) -> bool:
        """Acknowledge the firing episode ``started_at`` of an alert held here."""
        for key in self._live:
            slot = self.slots[key]
            if slot.state.started_at == started_at and fingerprint(*key) == fingerprint_:
                try:
                    slot.state = acknowledge(slot.state, by, at)
                except ValueError:
                    return False  # resolved meanwhile
                return True
        return False

    def snapshot(self, rows: Callable[[Iterator[Any]], Any] = list) -> dict[str, Any]:
        """The state as JSON-safe data; ``rows`` makes the list of slots from its rows
        (as :meth:`streams.windows.Windows.snapshot`)."""
        return {
            "seq": self.seq,
            "slots": rows(
                [
                    rule,
                    series,
                    *slot.meta,
                    slot.state.to_json(),
                    slot.last_end,
                    slot.data_end,
                    modelbase.thin(slot.detector.to_json()) if slot.detector is not None else None,
                ]
                for (rule, series), slot in self.slots.items()
            ),
        }

    @classmethod
    def restore(
        cls, data: dict[str, Any], rules: RuleSet, partition: int, **kwargs: Any
    ) -> Evaluation:
        """From :meth:`snapshot`; slots of rules no longer configured are dropped."""
        e = cls(rules, partition, **kwargs)
        e.seq = data["seq"]
        for name, series, kind, service, nm, state, last_end, data_end, det in data["slots"]:
            rule = e._by_name.get(name)
            if rule is None:
                e.counts["slots_of_removed_rules"] += 1
                continue
            detector = None
            if rule.type == "detector":
                detector = restore_detector(det) if det is not None else default_detector()
                e._detected += 1
            slot = Slot((kind, service, nm), AlertState.from_json(state), detector=detector)
            slot.last_end, slot.data_end = last_end, data_end
            e.slots[(name, series)] = slot
            if slot.state.status != "inactive" or rule.type == "absence":
                e._live.add((name, series))
        return e
