"""SQL on the embedded store while a worker runs: ClickHouse's HTTP interface, read-only,
the API token as password, asked by two clients Vigil did not write: clickhouse-connect
(Python) and the official JavaScript client ``@clickhouse/client`` (Node.js)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from producers.client import Client

pytestmark = pytest.mark.integration

N = 500

QUERY_JS = r"""
const { createClient } = require("@clickhouse/client");
const [url, password] = process.argv.slice(2);
(async () => {
  const client = createClient({ url, username: "default", password });
  const out = {};
  const rows = await client.query({
    query: "SELECT kind, count() AS n FROM vigil.events GROUP BY kind ORDER BY kind",
    format: "JSONEachRow",
  });
  out.rows = await rows.json();
  try {
    await client.command({ query: "DROP TABLE vigil.events" });
    out.write = "accepted";
  } catch (err) {
    out.write = String(err.code);
  }
  const denied = createClient({ url, username: "default", password: "wrong" });
  try {
    await denied.query({ query: "SELECT 1", format: "JSONEachRow" });
    out.denied = "accepted";
  } catch (err) {
    out.denied = String(err.code);
  }
  await client.close();
  await denied.close();
  console.log(JSON.stringify(out));
})();
"""


async def test_two_clickhouse_clients_query_a_running_workers_store_and_cannot_write(
    kafka_settings, start_worker, tmp_path, clickhouse_js
):
    worker = start_worker()
    await asyncio.to_thread(worker.wait_until, lambda s: bool(s.get("assigned")), 60)
    now = int(time.time() * 1000)
    async with Client(kafka_settings) as client:
        for i in range(N):
            client.publish(
                {"kind": "metric", "ts": now - i, "service": "api", "name": "lat", "value": i}
            )
        assert await client.flush(30)
    await asyncio.to_thread(worker.wait_until, lambda s: s.get("raw_rows") == N, 60)
    port = int(worker.env["VIGIL_SQL_PORT"])

    ch = clickhouse_connect.get_client(
        host="127.0.0.1", port=port, username="default", password=worker.token
    )
    try:
        assert ch.query("SELECT count(), sum(value) FROM vigil.events").result_rows == [
            (N, float(sum(range(N))))
        ]
        with pytest.raises(DatabaseError, match="Code: 164"):
            ch.command("DROP TABLE vigil.events")
        with pytest.raises(DatabaseError, match="Code: 164"):
            ch.insert("vigil.events", [[1]], column_names=["idx"])
    finally:
        ch.close()
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(
            host="127.0.0.1", port=port, username="default", password="wrong"
        )

    script = tmp_path / "query.js"
    script.write_text(QUERY_JS)
    done = await asyncio.to_thread(
        subprocess.run,
        [clickhouse_js.node, str(script), f"http://127.0.0.1:{port}", worker.token],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NODE_PATH": str(clickhouse_js.modules)},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"rows": [{"kind": "metric", "n": N}], "write": "164", "denied": "516"}
    # Still all there, and the worker still writing to it.
    assert (worker.stats() or {}).get("raw_rows") == N
