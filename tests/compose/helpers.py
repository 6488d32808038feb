"""Small readers shared by the compose tests: docker-compose's normalized
config, the Dockerfile's stages, and the Debian packages behind binaries."""
import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


# --- compose (input: the output of `docker-compose config`) -------------------

def docker_compose_config(compose_file, *args):
    """Runs `docker-compose -f FILE config ARGS` with an empty environment
    and an empty env file, so that neither the caller's shell nor a .env
    beside compose.yaml changes what the tests see: every ${VAR:-default}
    resolves to the default written in the file."""
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty_env:
        result = subprocess.run(
            ["docker-compose", "-f", str(compose_file), "--project-directory", str(ROOT),
             "--env-file", empty_env.name, "config", *args],
            cwd=ROOT, capture_output=True, text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")})
    assert result.returncode == 0, f"docker-compose config {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def load_config(compose_file):
    return yaml.safe_load(docker_compose_config(compose_file))


def volumes(service):
    """[(source, target, is_bind)] of a service. docker-compose config writes
    every entry in the short syntax SOURCE:TARGET:MODE, with bind-mount
    sources made absolute; an anonymous volume is the target alone."""
    result = []
    for entry in service.get("volumes") or []:
        parts = entry.split(":")
        if len(parts) == 1:
            result.append((None, parts[0], False))
        else:
            result.append((parts[0], parts[1], parts[0].startswith("/")))
    return result


def named_volume_targets(service):
    return [target for source, target, is_bind in volumes(service) if source and not is_bind]


def writable_named_volumes(service):
    return {entry.split(":")[0] for entry in service.get("volumes") or []
            if not entry.startswith("/") and ":" in entry and not entry.endswith(":ro")}


def host_path(service, container_path):
    """The host path a bind mount of the service shows at container_path."""
    for source, target, is_bind in volumes(service):
        if is_bind and (container_path == target or container_path.startswith(target.rstrip("/") + "/")):
            return Path(source) / os.path.relpath(container_path, target)
    return None


def depends_on(service):
    """{service: condition} (docker-compose config writes the long form)."""
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def published_ports(service):
    """[(host_ip, target)] of the normalized HOST_IP:PUBLISHED:TARGET/PROTO
    (or PUBLISHED:TARGET/PROTO) entries."""
    result = []
    for entry in service.get("ports") or []:
        parts = str(entry).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        result.append((host_ip, int(parts[-1])))
    return result


def as_words(value):
    if value is None:
        return []
    return [str(word) for word in value] if isinstance(value, list) else str(value).split()


def image_version(image):
    """(major, minor) of an image's tag: nats:2.10-alpine -> (2, 10)."""
    name = image.split("/")[-1]
    tag = name.split(":", 1)[1] if ":" in name else ""
    return tuple(int(number) for number in re.findall(r"\d+", tag.split("-")[0])[:2])


# --- Dockerfile --------------------------------------------------------------
# A reader for the subset of the Dockerfile syntax our Dockerfile uses (a test
# checks that it uses no other): `FROM [--flags] IMAGE [AS NAME]` starts a
# stage, `\` at the end of a line continues an instruction (the default
# escape character), `#` starts a comment line, and there are no heredocs.

FROM = re.compile(r"FROM\s+(?:--\S+\s+)*(?P<base>\S+)(?:\s+AS\s+(?P<name>\S+))?\s*", re.IGNORECASE)


class Stage:
    def __init__(self, base, name):
        self.base, self.name, self.instructions = base, name, []

    def arguments(self, *keywords):
        return [argument for keyword, argument in self.instructions if keyword in keywords]


def instructions(text):
    """(KEYWORD, argument) of each instruction, continuation lines joined."""
    result, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue  # also a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current = (current + line).strip()
        if current:
            keyword, _, argument = current.partition(" ")
            result.append((keyword.upper(), argument.strip()))
        current = ""
    return result


def parse_dockerfile(path):
    stages = []
    for keyword, argument in instructions(Path(path).read_text()):
        if keyword == "FROM":
            match = FROM.fullmatch("FROM " + argument)
            assert match, f"{path}: cannot read `FROM {argument}`"
            stages.append(Stage(match["base"], match["name"]))
        else:
            assert stages, f"{path}: {keyword} before the first FROM"
            stages[-1].instructions.append((keyword, argument))
    return stages


def stage_chain(stages, stage):
    """The stage and the stages it builds on, the first FROM first."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    return list(reversed(chain))


DEPS_RUN = re.compile(r"\S*scripts/deps\.sh((?:[ \t]+[^\s;&|]+)*)")


def deps_calls(stages):
    """The argument tuples of every scripts/deps.sh a RUN of the stages calls;
    () is deps.sh without a list, as `make deps` runs it."""
    return [tuple(args.split()) for stage in stages for argument in stage.arguments("RUN")
            for args in DEPS_RUN.findall(argument)]


def copy_sources(argument):
    """The build-context sources of a COPY or ADD (none with --from)."""
    words = argument.split()
    if any(word.startswith("--from") for word in words):
        return []
    words = [word for word in words if not word.startswith("--")]
    if words and words[0].startswith("["):
        words = yaml.safe_load(" ".join(words))  # the JSON form
    return words[:-1]


# --- Debian packages of shared libraries ------------------------------------

def assert_built(binaries):
    missing = [str(path) for path in binaries if not path.is_file()]
    assert not missing, (f"{', '.join(missing)} not found: build first (cmake --build BUILD_DIR), "
                         f"or fix the Dockerfile's /build/ paths")



def linked_libraries(binary):
    """(NEEDED sonames, {soname: path} of everything the loader maps)."""
    readelf = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf.stdout)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    loaded = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd.stdout, re.MULTILINE))
    return needed, loaded


def owning_packages(paths):
    """{path: Debian package or None}, one `dpkg -S` for all paths. Debian 12
    merges /lib into /usr/lib, and dpkg knows a file under the name its
    package ships, so each path is also tried with and without /usr and
    with its symlinks resolved."""
    candidates = {}
    for path in paths:
        names = {path, os.path.realpath(path)}
        names |= {name[4:] if name.startswith("/usr/") else "/usr" + name for name in list(names)}
        candidates[path] = names
    everything = sorted(set().union(*candidates.values())) if candidates else []
    result = subprocess.run(["dpkg", "-S", *everything], capture_output=True, text=True)
    owner = {}
    for line in result.stdout.splitlines():
        if line.startswith("diversion "):
            continue
        packages, _, name = line.partition(": ")
        owner[name.strip()] = packages.split(",")[0].split(":")[0].strip()
    return {path: next((owner[n] for n in sorted(names) if n in owner), None)
            for path, names in candidates.items()}


def package_sections(path):
    """{section: {package}} of a package list with `# [section]` headers."""
    sections, current = {}, None
    for line in Path(path).read_text().splitlines():
        header = re.fullmatch(r"#\s*\[(\w+)\].*", line.strip())
        if header:
            current = sections.setdefault(header.group(1), set())
        elif line.strip() and not line.strip().startswith("#"):
            assert current is not None, f"{path}: package {line.strip()} before any `# [section]` line"
            current.add(line.strip())
    return sections
