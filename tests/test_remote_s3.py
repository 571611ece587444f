"""Push and pull through an S3 remote: moto's standalone S3 server on
127.0.0.1 (started and stopped by the `s3_server` fixture), reached
through fsspec's s3fs with `endpoint-url`."""

from __future__ import annotations

import hashlib
import time

import pytest
from remote_servers import s3_server, s3_server_auth  # noqa: F401
from remote_util import check_fetched, fresh_clone, machine, pin_data


def _client(server):
    import boto3

    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")


@pytest.fixture
def two(s3_server, tmp_path):  # noqa: F811
    bucket = f"gage-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    s3_server.make_bucket(bucket)
    cfg = '"$remote" = "s3"\n' + s3_server.table("s3", f"s3://{bucket}/team")
    return machine(tmp_path, "a", cfg), machine(tmp_path, "b", cfg), bucket


def _make_runs(m):
    m.gage("run", "prep", "-y", "-q", N_SMALL="20")
    m.gage("run", "train", "lr=0.2", "-y", "-q")
    return {r["op"]: r for r in m.runs()}


def _keys(server, bucket: str) -> list[str]:
    pages = _client(server).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_s3_round_trip(two, s3_server):  # noqa: F811
    a, b, bucket = two
    runs_a = _make_runs(a)
    plan = a.gage_json("push", "-y")
    keys = _keys(s3_server, bucket)
    objects = [k for k in keys if k.startswith("team/objects/sha256/")]
    assert len(objects) == plan["objects"] > 20
    assert sorted(k for k in keys if k.startswith("team/runs/")) == sorted(
        f"team/runs/{r['id']}.json" for r in runs_a.values()
    )
    # Every object is named by its sha256.
    client = _client(s3_server)
    for key in objects:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(data).hexdigest() == "".join(key.split("/")[-2:])
    t0 = time.monotonic()
    assert a.gage_json("push", "-y")["objects"] == 0
    assert time.monotonic() - t0 < 10
    b.gage("pull", "-y")
    assert {r["id"] for r in b.runs()} == {r["id"] for r in runs_a.values()}
    for r in b.runs():
        b.gage("check", r["id"])


def test_s3_tampered_object_refused(two, s3_server):  # noqa: F811
    a, b, bucket = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    client = _client(s3_server)
    import json

    body = client.get_object(
        Bucket=bucket, Key=f"team/runs/{runs_a['train']['id']}.json"
    )
    entry = json.loads(body["Body"].read())
    [digest] = [f[1] for f in entry["files"] if f[0] == "model.txt"]
    key = f"team/objects/sha256/{digest[:2]}/{digest[2:]}"
    client.put_object(Bucket=bucket, Key=key, Body=b"forged model")
    p = b.gage("pull", "-y", runs_a["train"]["id"], check=False)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert "(model.txt)" in line and "does not match its sha256" in line, line
    assert b.runs() == []
    client.delete_object(Bucket=bucket, Key=key)
    p = b.gage("pull", "-y", runs_a["train"]["id"], check=False)
    assert p.returncode == 1 and "(model.txt)" in p.stderr and "is missing" in p.stderr


def test_s3_missing_bucket(s3_server, tmp_path):  # noqa: F811
    cfg = s3_server.table("s3", "s3://no-such-bucket/x")
    m = machine(tmp_path, "a", cfg)
    p = m.gage("runs", "--remote", "s3", check=False)
    assert p.returncode == 1
    assert p.stderr == (
        "gage: remote 's3' (s3://no-such-bucket/x): bucket missing: no-such-bucket: "
        "create it or fix the url\n"
    )


def test_s3_unreachable(tmp_path):
    pytest.importorskip("s3fs")
    from remote_servers import free_port

    port = free_port()
    cfg = (
        f'["$remotes".s3]\nurl = "s3://b/x"\nendpoint-url = "http://127.0.0.1:{port}"\n'
        "timeout = 3\n"
    )
    m = machine(tmp_path, "a", cfg)
    t0 = time.monotonic()
    p = m.gage(
        "push",
        "--remote",
        "s3",
        check=False,
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
    )
    assert time.monotonic() - t0 < 60
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert line.startswith("gage: remote 's3' (s3://b/x): cannot reach"), line


def test_s3_bad_credentials(s3_server_auth, tmp_path):  # noqa: F811
    cfg = s3_server_auth.table("s3", "s3://bucket/x")
    m = machine(tmp_path, "a", cfg)
    p = m.gage(
        "runs",
        "--remote",
        "s3",
        check=False,
        AWS_ACCESS_KEY_ID="nobody",
        AWS_SECRET_ACCESS_KEY="wrong",
    )
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert line.startswith(
        "gage: remote 's3' (s3://bucket/x): access refused at bucket: "
    ), line
    assert "bad credentials or no permission" in line


def test_s3_fetch_pinned_file(s3_server, tmp_path):  # noqa: F811
    """A fresh clone (no data) stages prep with its pinned data.bin from
    the S3 remote's objects."""
    bucket = f"gage-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    s3_server.make_bucket(bucket)
    cfg = s3_server.table("s3", f"s3://{bucket}/team")
    a = machine(tmp_path, "a", cfg)
    digest = pin_data(a.project)
    a.gage("run", "prep", "-y", "-q")
    a.gage("push", "-y", "--remote", "s3")
    b = fresh_clone(tmp_path, "b", a, cfg)
    check_fetched(b, digest, "s3")
