"""Fixtures of the compose tests (scripts/check-compose.sh runs them).

    python3 -m pytest tests/compose [--build-dir DIR] [--compose-file FILE]

--build-dir (or PIPELINE_BUILD_DIR) holds the built binaries the runtime
images ship. Given explicitly, missing binaries fail the tests that need
them; without it (the repository's build/) they only skip them.
--compose-file checks another file than compose.yaml, e.g. a broken copy,
with the repository as project directory.
"""
import os
import re
from pathlib import Path

import pytest

from helpers import ROOT, docker_compose_config, load_config, parse_dockerfile


def pytest_addoption(parser):
    parser.addoption("--build-dir", default=os.environ.get("PIPELINE_BUILD_DIR"),
                     help="build directory with the binaries (default: build, skipped if missing)")
    parser.addoption("--compose-file", default=str(ROOT / "compose.yaml"),
                     help="the compose file to check (default: compose.yaml)")


@pytest.fixture(scope="session")
def compose_file(request):
    return Path(request.config.getoption("--compose-file")).resolve()


@pytest.fixture(scope="session")
def config(compose_file):
    return load_config(compose_file)


@pytest.fixture(scope="session")
def services(config):
    return config["services"]


@pytest.fixture(scope="session")
def profiles(compose_file):
    return set(docker_compose_config(compose_file, "--profiles").split())


@pytest.fixture(scope="session")
def builds(services):
    """{service: (context, dockerfile, target)} of the services compose builds."""
    result = {}
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = Path(build["context"])
            result[name] = (context, context / build.get("dockerfile", "Dockerfile"), build.get("target"))
    return result


@pytest.fixture(scope="session")
def dockerfile(builds):
    files = {dockerfile for _, dockerfile, _ in builds.values()}
    assert len(files) == 1, f"compose builds from {sorted(map(str, files))}; these tests expect one Dockerfile"
    return files.pop()


@pytest.fixture(scope="session")
def context(builds, dockerfile):
    contexts = {context for context, file, _ in builds.values() if file == dockerfile}
    assert len(contexts) == 1, f"{dockerfile} is built with the contexts {sorted(map(str, contexts))}"
    return contexts.pop()


@pytest.fixture(scope="session")
def stages(dockerfile):
    assert dockerfile.is_file(), f"compose builds from {dockerfile}, which does not exist"
    return parse_dockerfile(dockerfile)


@pytest.fixture(scope="session")
def runtime_targets(builds, services):
    """The targets compose runs as services (all but the test profile's)."""
    return {target for name, (_, _, target) in builds.items()
            if target and "test" not in (services[name].get("profiles") or [])}


@pytest.fixture(scope="session")
def binaries(request, stages):
    """The build outputs the Dockerfile copies into its images (its RUN lines
    name them as /build/<path>), in the build directory. Missing ones skip
    the tests by default; with a build directory given the tests fail (see
    helpers.assert_built)."""
    given = request.config.getoption("--build-dir")
    build_dir = Path(given).resolve() if given else ROOT / "build"
    outputs = sorted({output for stage in stages for argument in stage.arguments("RUN")
                      for output in re.findall(r"/build/([\w./-]+)", argument)})
    assert outputs, "the Dockerfile's RUN lines name no /build/<binary>"
    paths = [build_dir / output for output in outputs]
    if not given and not all(path.is_file() for path in paths):
        pytest.skip(f"no build directory given and {build_dir} lacks {', '.join(outputs)}")
    return paths

