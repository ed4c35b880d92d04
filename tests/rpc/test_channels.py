"""The one channel factory: limits, retries, balancing and address lists."""

from __future__ import annotations

import json

import pytest

from imgsearch.rpc.channels import channel_options, resolve_target


def test_channel_options_carry_limits_retries_balancing_and_wait_for_ready():
    opts = dict(channel_options(["imagesearch.v1.Query", "imagesearch.v1.Indexer"]))
    assert opts["grpc.max_receive_message_length"] == opts["grpc.max_send_message_length"] == 64 * 1024 * 1024
    assert opts["grpc.keepalive_time_ms"] > 0 and opts["grpc.enable_retries"] == 1
    assert opts["grpc.per_rpc_retry_buffer_size"] >= 32 * 1024 * 1024  # a 32-image batch can be retried
    config = json.loads(opts["grpc.service_config"])
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    method = config["methodConfig"][0]
    assert method["waitForReady"] is True
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert {n["service"] for n in method["name"]} == {"imagesearch.v1.Query", "imagesearch.v1.Indexer"}
    assert "healthCheckConfig" not in config


def test_health_checked_channels_skip_replicas_that_are_not_serving():
    config = json.loads(dict(channel_options(["x.E"], health_service="x.E"))["grpc.service_config"])
    assert config["healthCheckConfig"] == {"serviceName": "x.E"}


@pytest.mark.parametrize(
    ("given", "target"),
    [
        ("embedder:50051", "embedder:50051"),
        ("dns:///embedder:50051", "dns:///embedder:50051"),
        ("127.0.0.1:1,127.0.0.1:2", "ipv4:127.0.0.1:1,127.0.0.1:2"),
        (["localhost:5", " 127.0.0.1:6 "], "ipv4:127.0.0.1:5,127.0.0.1:6"),
        ("[::1]:7,[::1]:8", "ipv6:[::1]:7,[::1]:8"),
    ],
)
def test_address_lists_become_one_balanced_target(given, target):
    assert resolve_target(given) == target


def test_no_address_is_an_error():
    with pytest.raises(ValueError):
        resolve_target(" , ")
