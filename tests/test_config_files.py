"""Configuration files are checked against their schema: one clear line naming the field, exit 4."""

from __future__ import annotations

import json

import pytest

from harness.cli.main import main
from harness.verdict.result import EXIT_USAGE

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("target, named", [
    ({"base_url": "http://127.0.0.1:9", "recipts_dir": "/tmp"}, "recipts_dir: unknown field"),
    ({"base_url": "http://127.0.0.1:9", "signing": {"salt_index": "one"}}, "signing.salt_index: Input should be a valid integer"),
    ({"signing": {}}, "base_url: Field required"),
    ({"base_url": "http://127.0.0.1:9", "version": 7}, "version: unsupported target version 7"),
])
def test_a_target_file_with_a_mistake_is_refused_naming_the_field(tmp_path, capsys, target, named):
    path = tmp_path / "target.json"
    path.write_text(json.dumps(target))
    assert main(["run", "--quiet", "--target-file", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert named in err and str(path) in err


def test_a_wrong_secret_in_a_target_file_is_named_but_never_printed(tmp_path, capsys):
    path = tmp_path / "target.json"
    path.write_text(json.dumps({"base_url": "http://127.0.0.1:9", "signing": {"salt_key": ["s3cr3t-salt"]}}))
    assert main(["run", "--quiet", "--target-file", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "signing.salt_key" in err and "s3cr3t-salt" not in err


@pytest.mark.parametrize("entry, named", [
    ({"name": "fast", "metric": "processing_ms_p95", "le": "quick"}, "targets.0.le: Input should be a valid number"),
    ({"name": "fast", "metric": "processing_ms_p95"}, "has no bound"),
    ({"name": "fast", "metrc": "processing_ms_p95", "le": 1}, "targets.0.metrc: unknown field"),
])
def test_a_targets_file_with_a_mistake_is_refused_naming_the_field(tmp_path, capsys, entry, named):
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"version": 1, "targets": [entry]}))
    assert main(["run", "--quiet", "--target", "http://127.0.0.1:9", "--targets", str(path)]) == EXIT_USAGE
    assert named in capsys.readouterr().err
