"""Sizing thread pools by the CPUs a process may really use."""

from __future__ import annotations

from imgsearch.config.cpus import usable_cpus


def test_usable_cpus_follow_a_container_cpu_limit(tmp_path):
    host = usable_cpus(tmp_path / "missing")
    assert host >= 1
    limit = tmp_path / "cpu.max"
    limit.write_text("150000 100000\n")  # 1.5 CPUs: a search pool gets at most 2
    assert usable_cpus(limit) == min(host, 2)
    limit.write_text("max 100000\n")
    assert usable_cpus(limit) == host
    limit.write_text("garbage\n")
    assert usable_cpus(limit) == host
