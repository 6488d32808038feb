"""The Dockerfile compose builds from, and its build context."""
import glob
import re
import subprocess

import pytest
# docker-py's .dockerignore matcher (python3-docker, which Debian's
# docker-compose depends on): the code that builds the context docker-compose
# sends, a port of moby's.
from docker.utils.build import PatternMatcher

from helpers import ROOT, copy_sources, deps_calls, instructions, stage_chain

BASES = re.compile(r"debian:(12|bookworm)(-slim)?")
RUNTIME_LIST = "scripts/packages-runtime.txt"
TEST_LIST = "scripts/packages-test.txt"  # the test stage adds it, as `make test` does
COMPILES = re.compile(r"\b(cmake|make|ninja|g\+\+)\b")
INSTALLERS = re.compile(r"\b(?:(?:apt-get|apt|aptitude)\s+(?:-\S+\s+)*install|dpkg\s+(?:-i|--install)"
                        r"|apk\s+add|pip3?\s+install)\b")


def label(stage):
    return stage.name or stage.base


def test_the_dockerfile_uses_only_syntax_the_tests_read(dockerfile):
    text = dockerfile.read_text()
    directives = re.findall(r"^#\s*escape\s*=.*$", text, re.MULTILINE | re.IGNORECASE)
    heredocs = [argument for _, argument in instructions(text) if re.search(r"<<-?\s*[\"']?\w+", argument)]
    assert not directives and not heredocs, \
        f"helpers.parse_dockerfile knows neither escape directives nor heredocs: {directives + heredocs}"


def test_the_targets_compose_builds_are_stages(builds, stages):
    names = {stage.name for stage in stages}
    missing = {service: target for service, (_, _, target) in builds.items() if target and target not in names}
    assert not missing, \
        f"(service: target) not defined in the Dockerfile (stages: {sorted(filter(None, names))}): {missing}"


def test_every_stage_starts_from_debian_12_or_another_stage(stages):
    names = {stage.name for stage in stages}
    wrong = {label(s): s.base for s in stages if s.base not in names and not BASES.fullmatch(s.base)}
    assert not wrong, f"stages on other bases than debian:12 / debian:12-slim: {wrong}"


def copied(stages):
    """[(stage, source)] of what the stages copy from the build context."""
    return [(label(stage), source) for stage in stages for argument in stage.arguments("COPY", "ADD")
            for source in copy_sources(argument)]


def test_every_copied_source_exists(stages, context):
    sources = copied(stages)
    assert sources, "the Dockerfile copies nothing from the build context"
    missing = [(stage, source) for stage, source in sources if not glob.glob(str(context / source))]
    assert not missing, f"(stage, source) copied but missing from {context}: {missing}"


@pytest.fixture(scope="module")
def dockerignore(context):
    """docker-compose's own matcher for the context's .dockerignore, with the
    patterns read as docker-py reads them."""
    path = context / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return PatternMatcher([line.strip() for line in lines if line.strip() and not line.strip().startswith("#")])


def test_dockerignore_keeps_the_files_the_dockerfile_names(stages, dockerignore):
    named = [(stage, source) for stage, source in copied(stages) if source not in (".", "./")]
    assert named, "the Dockerfile names no single file to copy"
    left_out = [(stage, source) for stage, source in named if dockerignore.matches(source)]
    assert not left_out, f"(stage, source) copied but left out by .dockerignore: {left_out}"


def test_dockerignore_keeps_every_tracked_file_for_copy_dot(stages, context, dockerignore):
    if not any(source in (".", "./") for _, source in copied(stages)):
        pytest.skip("the Dockerfile does not copy the whole context")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=context, capture_output=True, text=True, check=True)
    files = [name for name in tracked.stdout.split("\0") if name and (context / name).exists()]
    assert files, f"git ls-files lists nothing in {context}"
    left_out = [name for name in files if dockerignore.matches(name)]
    assert not left_out, f"`COPY .` sends the source tree, but .dockerignore leaves out tracked files: {left_out}"


# --- packages ------------------------------------------------------------------

def test_no_run_installs_packages_itself(stages):
    wrong = [(label(stage), INSTALLERS.search(argument).group(0)) for stage in stages
             for argument in stage.arguments("RUN") if INSTALLERS.search(argument)]
    assert not wrong, f"(stage, installer) bypassing scripts/deps.sh and the lists in scripts/: {wrong}"


@pytest.fixture(scope="module")
def make_deps_args():
    """The arguments `make deps` gives scripts/deps.sh."""
    result = subprocess.run(["make", "-s", "-n", "deps"], cwd=ROOT, capture_output=True, text=True)
    commands = [line.split() for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0 and len(commands) == 1 and commands[0][0] == "scripts/deps.sh", \
        f"`make deps` should run scripts/deps.sh once, runs {commands} {result.stderr}"
    return tuple(commands[0][1:])


def test_stages_that_compile_install_what_make_deps_installs(stages, make_deps_args):
    compiling = [s for s in stages if any(COMPILES.search(a) for a in s.arguments("RUN", "CMD", "ENTRYPOINT"))]
    assert compiling, "no stage of the Dockerfile compiles"
    wrong = {}
    for stage in compiling:
        calls = [args for args in deps_calls(stage_chain(stages, stage))
                 if not (stage.name == "test" and args == (TEST_LIST,))]
        if calls != [make_deps_args]:
            wrong[label(stage)] = calls
    assert not wrong, f"stage: deps.sh calls, expected exactly [{make_deps_args}] as `make deps`: {wrong}"


def test_deps_sh_installs_only_the_lists_of_scripts(stages, make_deps_args):
    allowed = {make_deps_args, (RUNTIME_LIST,)}
    wrong = [(label(stage), args) for stage in stages for args in deps_calls([stage])
             if args not in allowed and not (stage.name == "test" and args == (TEST_LIST,))]
    assert not wrong, f"(stage, deps.sh arguments) other than `make deps`'s or {RUNTIME_LIST}: {wrong}"


def test_runtime_targets_run_as_a_non_root_user(stages, runtime_targets):
    by_name = {stage.name: stage for stage in stages}
    users = {target: [u for s in stage_chain(stages, by_name[target]) for u in s.arguments("USER")]
             for target in sorted(runtime_targets) if target in by_name}
    root = {target: u for target, u in users.items() if not u or u[-1].split(":")[0] in ("root", "0")}
    assert not root, f"runtime targets running as root (USER instructions): {root}"


def test_runtime_targets_run_on_debian_12_slim(stages, runtime_targets):
    by_name = {stage.name: stage for stage in stages}
    bases = {target: stage_chain(stages, by_name[target])[0].base
             for target in sorted(runtime_targets) if target in by_name}
    assert bases and all(base.endswith("-slim") for base in bases.values()), f"runtime bases: {bases}"


def test_runtime_targets_install_exactly_the_runtime_list(stages, runtime_targets):
    by_name = {stage.name: stage for stage in stages}
    calls = {target: deps_calls(stage_chain(stages, by_name[target]))
             for target in sorted(runtime_targets) if target in by_name}
    assert calls and all(c == [(RUNTIME_LIST,)] for c in calls.values()), \
        f"deps.sh calls of the runtime targets, expected [({RUNTIME_LIST!r},)]: {calls}"

