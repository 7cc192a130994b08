"""The churn experiment's IP-identity model is not rigged: with no propagation delay it is exact."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _churn():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("churn", ROOT / "bench" / "churn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["churn"] = module
    spec.loader.exec_module(module)
    return module


def _args(churn, **overrides):  # type: ignore[no-untyped-def]
    ns = churn.argparse.Namespace(
        pods=8, ip_pool=10, churn_rate=2.0, delay_max=5.0, rate=5.0, authorised_share=0.5,
        duration=8.0, seed=3, out="unused", no_plot=True, quick=False,
    )  # fmt: skip
    for k, v in overrides.items():
        setattr(ns, k, v)
    return ns


def test_no_delay_means_no_wrong_verdicts_for_either() -> None:
    churn = _churn()
    r = churn.run(_args(churn, delay_max=0.0))
    assert r["ipid_false_allows"] == r["ipid_false_drops"] == 0
    assert r["warrant_false_allows"] == r["warrant_false_drops"] == 0
    assert r["pod_recreations"] > 5


def test_delay_with_recycled_addresses_misleads_ip_identity_only() -> None:
    churn = _churn()
    r = churn.run(_args(churn, delay_max=5.0))
    assert r["ipid_false_allows"] + r["ipid_false_drops"] > 0
    assert r["warrant_false_allows"] == r["warrant_false_drops"] == 0
