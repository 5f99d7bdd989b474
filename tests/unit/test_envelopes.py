from producers.envelopes import EnvelopeBuilder, split


def test_envelope_closes_at_max_events():
    b = EnvelopeBuilder(max_events=3, max_bytes=10_000)
    assert b.add(1, b"a") is None and b.add(1, b"b") is None
    assert b.add(1, b"c") == (b"a\nb\nc", 3)
    assert b.pending == 0


def test_envelope_closes_before_exceeding_max_bytes():
    b = EnvelopeBuilder(max_events=100, max_bytes=10)
    assert b.add(0, b"12345") is None
    assert b.add(0, b"67890") == (b"12345", 1)  # 5+1 + 5+1 > 10: the first goes alone
    assert b.drain() == [(0, b"67890", 1)]


def test_partitions_are_buffered_separately():
    b = EnvelopeBuilder(max_events=2, max_bytes=1000)
    b.add(0, b"x")
    b.add(1, b"y")
    assert sorted(b.drain()) == [(0, b"x", 1), (1, b"y", 1)]
    assert b.drain() == [] and b.pending == 0


def test_an_oversized_line_travels_alone():
    b = EnvelopeBuilder(max_events=10, max_bytes=4)
    assert b.add(0, b"toolong") is None
    assert b.drain() == [(0, b"toolong", 1)]


def test_split_skips_blank_lines_and_keeps_bytes():
    assert split(b'{"a":1}\n\n  \n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']
