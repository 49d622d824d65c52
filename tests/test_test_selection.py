"""The second CI pass (on PostgreSQL and Redis) runs only the tests that touch them."""

import subprocess
import sys

import pytest

SAMPLE = ["tests/hubsite/test_health.py", "tests/hubsite/test_security_headers.py"]


def collected(*options: str) -> set[str]:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, *options, *SAMPLE],
        capture_output=True,
        text=True,
        check=True,
    )
    return {line for line in result.stdout.splitlines() if "::" in line}


# About 10 s: two test collections in processes of their own.
@pytest.mark.slow
def test_services_only_keeps_database_tests_and_leaves_out_pure_ones():
    everything = collected()
    services = collected("--services-only")

    health = {name for name in everything if "test_health.py" in name}
    headers = {name for name in everything if "test_check_deploy_is_clean" in name}
    assert health and headers
    # Every health check test asks the database; the deploy check reads settings only.
    assert health <= services
    assert not headers & services
    assert services < everything
