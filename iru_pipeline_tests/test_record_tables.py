"""Contacts and conversations pages as Arrow tables: the column-wise fast paths give exactly
the value-by-value result on the fake's (adversarial) records, odd values are coerced as the
PII policy and the table contract say, and worker processes build the same tables."""

from __future__ import annotations

import hmac
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline.intercom_records.table_workers import TableWorkerError, TableWorkers, array_pieces
from iru_pipeline.intercom_records.tables import (
    CONTACTS,
    CONVERSATIONS,
    TableSpec,
    col,
    contacts_table,
    conversations_table,
)
from iru_pipeline.intercom_records.transforms import content_hash
from iru_pipeline_tests.helpers import TEST_PII_KEY

PSEUDO = Pseudonymizer(TEST_PII_KEY, "ws", internal_domains=("example-corp.com",))


@pytest.fixture(scope="module")
def records() -> dict[str, list[dict]]:
    with FakeIntercom(seed=7, regions=("us", "eu"), contacts=1500, conversations=1000) as fake:
        # As the client hands them over: decoded from the API's JSON.
        return {table: [orjson.loads(orjson.dumps(r)) for region in fake.regions
                        for r in getattr(fake.workspace(region), table)()]
                for table in ("contacts", "conversations")}


def test_fast_and_value_by_value_paths_agree_on_the_fakes_records(records: dict[str, list[dict]]) -> None:
    contacts, conversations = records["contacts"], records["conversations"]
    assert contacts_table(contacts, "us", "ws", PSEUDO).equals(
        contacts_table(contacts, "us", "ws", PSEUDO, vectorized=False))
    assert conversations_table(conversations, "us", "ws").equals(
        conversations_table(conversations, "us", "ws", vectorized=False))


@pytest.mark.parametrize("spec", [CONTACTS, CONVERSATIONS], ids=lambda s: s.name)
def test_records_decoded_from_json_give_the_same_table(records: dict[str, list[dict]], spec: TableSpec) -> None:
    """The typed decoding keeps only the fields the columns read: every column must name them."""
    items = records[spec.name]
    pseudo = PSEUDO if spec is CONTACTS else None
    decoded = spec.decode(orjson.dumps(items), pseudo)
    assert decoded.typed
    assert spec.table_of(decoded, "us", "ws").equals(spec.table(items, "us", "ws", pseudo))


def test_a_record_of_another_shape_falls_back_to_dicts_with_the_same_table() -> None:
    items = [{"id": "1", "location": "Paris", "updated_at": 1700000000}, 7,
             {"id": "2", "tags": {"data": "none"}, "custom_attributes": [1], "location": {"country": "FR"}}]
    decoded = CONTACTS.decode(orjson.dumps(items), PSEUDO)
    assert not decoded.typed, "a string where an object is expected"
    assert CONTACTS.table_of(decoded, "us", "ws").equals(
        contacts_table([i for i in items if isinstance(i, dict)], "us", "ws", PSEUDO, vectorized=False))
    with pytest.raises(ValueError):
        CONTACTS.decode(b'[{"id": "1", "updated_at": 1e400}]')


def test_a_field_read_both_as_a_value_and_as_an_object_is_refused() -> None:
    spec = TableSpec("odd", (col("source", "text"), col("source_type", "text", "source", "type")))
    with pytest.raises(ValueError, match="source is read both as a value and as an object"):
        spec.decode(b"[]")


def test_batched_pseudonyms_are_hmac_sha256() -> None:
    values = ["a@example.com", "ünïcødé@example.com", None, "", "+4930123456", "x" * 200]
    key = PSEUDO._key
    expected = [hmac.new(key, f"email:{v}".encode(), "sha256").hexdigest()[:32] if v else None for v in values]
    assert PSEUDO.digests("email", values) == expected
    assert PSEUDO.digests("email", values)[0] == PSEUDO.email("A@Example.com ")


def join_arrays(arrays: list[bytes]) -> bytes:
    """What a worker reads of a task: the pieces, one after the other."""
    return b"".join(array_pieces(arrays))


def test_pages_join_into_one_array() -> None:
    pages = [b'[{"id": 1}]', b"[]", b" [ ] ", b'[\n {"id": 2},{"id": 3} ]\n', b"\t[\x0c" + b" " * 200 + b"]\r\n"]
    assert orjson.loads(join_arrays(pages)) == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert join_arrays([b"[]"]) == b"[]"
    # whitespace runs longer than the tails read at a time, around and inside the brackets
    padded = b" " * 150 + b"[" + b"\n" * 130 + b'{"id": 4}' + b" " * 140 + b"]" + b"\n" * 129
    assert join_arrays([padded, b'[{"id": 5}]']) == b'[{"id": 4},{"id": 5}]'
    for page in pages + [padded]:  # the same elements as stripping copies
        assert join_arrays([page]) == (b"[" + page.strip()[1:-1].strip() + b"]")


def test_contact_identifiers_are_pseudonymised_and_flags_kept(records: dict[str, list[dict]]) -> None:
    contacts = records["contacts"][:300]
    rows = contacts_table(contacts, "us", "ws", PSEUDO).to_pylist()
    for item, row in zip(contacts, rows):
        assert row["email_hmac"] == PSEUDO.email(item.get("email"))
        assert row["phone_hmac"] == PSEUDO.phone(item.get("phone"))
        assert row["external_id_hmac"] == PSEUDO.external_id(item.get("external_id"))
        assert row["has_email"] is bool(item.get("email"))
        assert set(row) == set(CONTACTS.schema.names)
        assert not item.get("email") or item["email"] not in orjson.dumps(row, default=str).decode()


def test_odd_values_are_coerced_not_fatal() -> None:
    items = [
        {"id": 17, "role": "user", "email": "  QA.Bob+test@Example-Corp.com ", "owner_id": 0, "updated_at": 1700000000,
         "created_at": 0, "last_seen_at": "1700000001", "signed_up_at": 40_000_000_000, "has_hard_bounced": 1,
         "tags": {"data": [{"id": 3}, {"id": "2"}, {"id": 3}], "has_more": True},
         "custom_attributes": {"plan": "pro", "empty": "", "mrr": 0}, "location": {"country_code": "DEU"}},
        {"id": " c2 ", "owner_id": "42", "updated_at": 1700000000.7, "email": 5, "name": {"first": "x"}},
    ]
    for vectorized in (True, False):
        first, second = contacts_table(items, "eu", "ws", PSEUDO, vectorized=vectorized).to_pylist()
        assert (first["id"], second["id"]) == ("17", "c2")
        assert (first["owner_id"], second["owner_id"]) == (None, "42"), "0 means unassigned"
        assert first["updated_at"] == datetime.fromtimestamp(1700000000, UTC)
        assert second["updated_at"] == datetime.fromtimestamp(1700000000.7, UTC)
        assert first["created_at"] is None and first["signed_up_at"] is None, "0 and years past 3000 are no dates"
        assert first["last_seen_at"] == datetime.fromtimestamp(1700000001, UTC)
        assert first["has_hard_bounced"] is True
        assert (first["tag_ids"], first["tags_truncated"]) == ('["2","3"]', True)
        assert first["custom_attribute_keys"] == '["mrr","plan"]', "keys with a value; never the values"
        assert first["email_domain"] == "example-corp.com" and first["is_internal_domain"] is True
        assert first["email_has_plus_tag"] is True and first["email_looks_test"] is True
        assert first["country_code"] == "DEU"
        assert second["email_hmac"] is None and second["has_email"] is False and second["has_name"] is False


def test_conversation_statistics_and_nested_ids() -> None:
    items = [{"id": "9", "admin_assignee_id": 0, "team_assignee_id": 5, "statistics": {"count_reopens": 2**64,
              "time_to_admin_reply": 30, "last_closed_by_id": 7}, "source": {"author": {"id": 12, "type": "user"}},
              "tags": {"tags": [{"id": 1, "name": "dsar"}, {"id": 2, "name": "dsar"}, "junk"]},
              "conversation_rating": {"rating": "5", "teammate": {"id": 4}}}]
    for vectorized in (True, False):
        (row,) = conversations_table(items, "us", "ws", vectorized=vectorized).to_pylist()
        assert (row["admin_assignee_id"], row["team_assignee_id"]) == (None, "5")
        assert row["count_reopens"] is None, "beyond BIGINT: dropped, not fatal"
        assert (row["time_to_admin_reply"], row["last_closed_by_id"]) == (30, "7")
        assert (row["source_author_id"], row["source_author_type"]) == ("12", "user")
        assert (row["tag_ids"], row["tag_names"]) == ('["1","2"]', '["dsar"]')
        assert (row["rating_score"], row["rating_teammate_id"]) == (5, "4")
        assert set(row) == set(CONVERSATIONS.schema.names)


# --------------------------------------------------------------------------- worker processes


def _pages(records: list[dict], size: int = 150) -> list[bytes]:
    return [orjson.dumps(records[i:i + size]) for i in range(0, len(records), size)]


def test_worker_processes_build_the_same_tables_and_report_each_record(records: dict[str, list[dict]]) -> None:
    contacts = records["contacts"]
    hash_from = sorted(c["updated_at"] for c in contacts)[len(contacts) // 2]
    pages = _pages(contacts)
    tasks = [pages[i:i + 3] for i in range(0, len(pages), 3)]  # several pages per task
    with TableWorkers(CONTACTS, "updated_at", "us", "ws", pii_key=TEST_PII_KEY,
                      internal_domains=("example-corp.com",), processes=2) as workers:
        built = [b for task in tasks for b in workers.submit(task, hash_from)]
        built += workers.drain()
    table = pa.concat_tables([b[0] for b in built])
    assert table.equals(contacts_table(contacts, "us", "ws", PSEUDO))
    assert [k for b in built for k in b[1]] == [str(c["id"]) for c in contacts]
    assert [c for b in built for c in b[2]] == [c["updated_at"] for c in contacts]
    hashes = [h for b in built for h in b[3]]
    assert hashes == [content_hash(c) if c["updated_at"] >= hash_from else None for c in contacts]
    assert any(hashes) and not all(hashes), "only records that may be in the overlap are hashed"


def test_records_a_worker_cannot_decode_are_an_error_not_a_crash() -> None:
    with TableWorkers(CONVERSATIONS, "updated_at", "us", "ws", processes=1) as workers:
        with pytest.raises(TableWorkerError, match="could not be decoded"):
            list(workers.submit([b'[{"id": "1", "updated_at": 1e400}]'], 0)) + list(workers.drain())
        # The worker lives on: the next page is built.
        (table, keys, _, _), = list(workers.submit([b'[{"id": "2", "updated_at": 1700000000}]'], 0)) + \
            list(workers.drain())
        assert keys == ["2"] and table.num_rows == 1


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with TableWorkers(CONVERSATIONS, "updated_at", "us", "ws", processes=1) as workers:
        os.kill(workers._workers[0]._proc.pid, signal.SIGKILL)
        with pytest.raises(TableWorkerError, match="ended unexpectedly"):
            for _ in range(50):
                list(workers.submit([b'[{"id": "2"}]'], 0))
            list(workers.drain())


def test_workers_get_the_pii_key_through_a_pipe_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRU_PII_KEY", TEST_PII_KEY)
    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN_US", "tok-us-secret")
    with TableWorkers(CONTACTS, "updated_at", "us", "ws", pii_key=TEST_PII_KEY, processes=1) as workers:
        list(workers.submit([orjson.dumps([{"id": "1", "email": "a@b.co"}])], 0)) + list(workers.drain())
        pid = workers._workers[0]._proc.pid
        for what in ("cmdline", "environ"):
            text = Path(f"/proc/{pid}/{what}").read_bytes()
            assert TEST_PII_KEY.encode() not in text and b"tok-us-secret" not in text


def test_a_newest_cursor_seen_first_spares_older_hashes_and_never_skips_wrongly() -> None:
    from iru_pipeline.intercom_source.helpers import OverlapFilter

    t = 1_700_000_000  # cursor values before 2000 are unreadable, so the times are real ones
    state = {"overlap_hashes": {"old": [t + 1_000, "h-old"]}}
    overlap = OverlapFilter(state, "updated_at", 900)
    assert overlap.hash_floor == t + 100
    overlap.saw(t + 50_000)
    assert overlap.hash_floor == t + 49_100, "records more than the overlap older than the newest need no hash"
    # A remembered record reported without a hash (it was older than the floor) is loaded.
    assert overlap.keep_rows(["old", "new"], [t + 1_000, t + 49_500], [None, "h-new"].__getitem__) == [True, True]
    overlap.prune()
    assert set(state["overlap_hashes"]) == {"new"}
