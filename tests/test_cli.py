"""The CLI against a database: keys are shown once, listed by prefix, revoked, topped up."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gateway_process import run_cli


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/cli.db"\n[[providers]]\nname = "local"\ntype = "local"\n[[models]]\nid = "gemma-3-270m"\nprovider = "local"\n')
    return cfg


def test_key_lifecycle(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    out = run_cli("keys", "create", "bob", "--models", "gemma-3-270m", "--budget-usd", "2.5", "--expires", "2030-01-01", config=cfg)
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("gg-") and len(key) > 30
    listed = json.loads(run_cli("keys", "list", "--json", config=cfg).stdout)
    assert listed == [{
        "name": "bob", "prefix": key[:10], "models": ["gemma-3-270m"], "expires_at": "2030-01-01T00:00:00+00:00",
        "revoked": False, "budget_usd": "2.500000000", "spent_usd": "0.000000000", "rpm": None,
    }]
    table = run_cli("keys", "list", config=cfg).stdout
    assert key not in table and key[:10] in table
    assert "budget 12.500000000" in run_cli("keys", "top-up", "bob", "10", config=cfg).stdout
    run_cli("keys", "revoke", key[:10], config=cfg)
    assert json.loads(run_cli("keys", "list", "--json", config=cfg).stdout)[0]["revoked"] is True


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    run_cli("keys", "create", "dup", config=cfg)
    again = run_cli("keys", "create", "dup", config=cfg, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = run_cli("keys", "revoke", "nobody", config=cfg, check=False)
    assert missing.returncode == 1 and "no key" in missing.stderr
    bad = run_cli("keys", "create", "x", "--budget-usd", "lots", config=cfg, check=False)
    assert bad.returncode == 2 and "not a decimal amount" in bad.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[server]\nport = 'eighty'\n")
    res = run_cli("keys", "list", config=broken, check=False)
    assert res.returncode == 2 and "server.port must be an integer" in res.stderr
    assert "Traceback" not in res.stderr


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    res = run_cli("serve", "--workers", "2", config=cfg, check=False)
    assert res.returncode == 2
    assert "[redis]" in res.stderr and "one worker" in res.stderr
    assert "Traceback" not in res.stderr
