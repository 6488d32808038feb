#!/usr/bin/env python3
"""Checks compose.yaml, the Dockerfile and every file they use, without a
container engine. scripts/check-compose.sh runs it (CTest label `compose`).

    check_compose.py BUILD_DIR

BUILD_DIR holds the built ingest and processor: their shared libraries are
compared with scripts/packages-runtime.txt. Prints `ok:` per passed group,
`FAIL:` per problem, and exits 1 when anything failed.
"""
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
PACKAGES = "scripts/packages.txt"  # what `make deps` installs
RUNTIME_PACKAGES = "scripts/packages-runtime.txt"
TEST_PACKAGES = "scripts/packages-test.txt"  # what `make test` adds; the test stage alone

# What the issue asks of compose.yaml.
PUBLISHED = {("ingest", 8080), ("grafana", 3000), ("prometheus", 9090)}
PROFILES = {"k6": "load", "loadgen": "loadgen", "test": "test"}
PROCESSOR_REPLICAS = 2
MIN_NATS_VERSION = (2, 10)
POSTGRES_MAJOR = 16
# The block of the nats config that only newer servers than Debian's 2.9 know.
NATS_BLOCK_BEGIN = "# BEGIN newer-server options"
NATS_BLOCK_END = "# END newer-server options"

# Files compose or the Dockerfile need that another issue is still writing,
# as {path: why it is missing}: while one is missing the check only notes it.
# Remove an entry once the file exists; from then on a missing file fails the
# check. Build outputs are relative to the build directory, the others to the
# repository. Nothing is pending now: every such file exists.
PENDING_BUILD_OUTPUTS = {}
PENDING_FILES = {}

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL: {message}", flush=True)


def ok(message, since=None):
    """Prints message unless a check failed after failures had length since."""
    if since is None or len(failures) == since:
        print(f"ok:   {message}", flush=True)


def note(message):
    print(f"note: {message}", flush=True)


def missing(path, message):
    """Fails with message, or only notes it for a pending file."""
    pending = PENDING_FILES.get(rel(path))
    if pending:
        note(f"{message}: {pending}")
    else:
        fail(message)


def rel(path):
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --- compose ---------------------------------------------------------------

def docker_compose(*args, env_file):
    """Runs docker-compose on compose.yaml with an empty environment and
    env file, so that nothing of the caller's shell or .env leaks in."""
    command = ["docker-compose", "-f", str(COMPOSE), "--project-directory", str(ROOT),
               "--env-file", env_file, *args]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def load_compose():
    """Returns (resolved config, the file as written, profiles)."""
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty_env:
        result = docker_compose("config", "-q", env_file=empty_env.name)
        if result.returncode != 0:
            fail(f"docker-compose config -q rejects compose.yaml:\n{result.stderr.strip()}")
            return None, None, None
        ok("compose.yaml parses and is valid (docker-compose config -q)")
        outputs = [docker_compose(*args, env_file=empty_env.name)
                   for args in (["config"], ["config", "--profiles"])]
    for result in outputs:
        if result.returncode != 0:
            fail(f"docker-compose {' '.join(result.args[7:])} failed:\n{result.stderr.strip()}")
            return None, None, None
    # The file as written (YAML anchors resolved, ${...} not), for what must
    # not be in it.
    raw = yaml.safe_load(COMPOSE.read_text())
    return yaml.safe_load(outputs[0].stdout), raw, set(outputs[1].stdout.split())


def parse_volume(entry):
    """(source, target, is_bind) of a volume entry in short or long syntax."""
    if isinstance(entry, dict):
        return entry.get("source"), entry.get("target"), entry.get("type") == "bind"
    parts = entry.split(":")
    if len(parts) == 1:
        return None, parts[0], False
    return parts[0], parts[1], parts[0].startswith(("/", "."))


def depends_on(service):
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def check_profiles(services, profiles):
    since = len(failures)
    if profiles != set(PROFILES.values()):
        fail(f"docker-compose reports the profiles {sorted(profiles)}, expected "
             f"{sorted(set(PROFILES.values()))}")
    for name, profile in PROFILES.items():
        got = services.get(name, {}).get("profiles")
        if got != [profile]:
            fail(f"service {name} should be in profile {profile} only, has {got}")
    default = {name for name, service in services.items() if not service.get("profiles")}
    for name in sorted(default):
        for other in depends_on(services[name]):
            if other not in default:
                fail(f"service {name} starts by default but depends on {other}, which is in a profile")
    ok(f"profiles {sorted(profiles)}; `docker compose up` starts {sorted(default)}", since)
    return default


def mounts(service):
    """{target: (source, is_bind)} of a service."""
    result = {}
    for entry in service.get("volumes") or []:
        source, target, is_bind = parse_volume(entry)
        result[target] = (source, is_bind)
    return result


def host_path(service, container_path):
    """The host file a bind mount of the service puts at container_path."""
    for target, (source, is_bind) in mounts(service).items():
        if is_bind and (container_path == target or container_path.startswith(target.rstrip("/") + "/")):
            return Path(source) / os.path.relpath(container_path, target)
    return None


def check_mounts(config):
    since = len(failures)
    services, named = config["services"], set((config.get("volumes") or {}).keys())
    count = 0
    for name, service in services.items():
        for target, (source, is_bind) in mounts(service).items():
            if not is_bind:
                if source is not None and source not in named:
                    fail(f"service {name} mounts volume {source}, which is not declared")
                continue
            count += 1
            path = Path(source)
            if not path.exists():
                missing(path, f"service {name} mounts {rel(path)} at {target}, and it does not exist")
            elif ROOT not in path.resolve().parents and path.resolve() != ROOT:
                fail(f"service {name} mounts {path}, which is outside the repository")
        # Files that commands name inside bind mounts (scripts, configs).
        for word in _as_list(service.get("entrypoint")) + _as_list(service.get("command")):
            for candidate in re.findall(r"(/[\w./-]+)", str(word)):
                source = host_path(service, candidate)
                if source is not None and not source.exists():
                    missing(source, f"service {name} runs with {candidate}, i.e. {rel(source)}, "
                                    f"which does not exist")
    ok(f"the {count} bind mounts and the files commands name in them are checked", since)


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else str(value).split()


def check_ports(services):
    since = len(failures)
    published = set()
    for name, service in services.items():
        for port in service.get("ports") or []:
            target = port.get("target") if isinstance(port, dict) else int(
                str(port).split("/")[0].rsplit(":", 1)[-1])
            published.add((name, int(target)))
    if published != PUBLISHED:
        fail(f"published ports are {sorted(published)}, expected exactly {sorted(PUBLISHED)}")
    else:
        ok(f"only {sorted(published)} are published", since)


def check_networks(config):
    since = len(failures)
    services, networks = config["services"], config.get("networks") or {}
    internal = {name for name, spec in networks.items() if (spec or {}).get("internal")}
    if not internal:
        fail("compose.yaml declares no internal network")
        return
    publishers = {name for name, _ in PUBLISHED}
    for name, service in services.items():
        mode = service.get("network_mode")
        if mode == "none":
            continue
        if mode is not None:
            # service:X shares X's network namespace (the load tools use ingest's).
            if not (mode.startswith("service:") and mode[8:] in services
                    and "network_mode" not in services[mode[8:]]):
                fail(f"service {name} uses network_mode {mode}")
            continue
        joined = set(service.get("networks") or {"default": None})
        if not joined & internal:
            fail(f"service {name} is not on the internal network ({', '.join(sorted(internal))})")
        if joined - internal and name not in publishers:
            fail(f"service {name} is on a non-internal network but publishes nothing")
    ok(f"services talk on the internal network {', '.join(sorted(internal))}", since)


def check_health_and_order(services):
    since = len(failures)
    for name, service in services.items():
        for other, condition in depends_on(service).items():
            if other not in services:
                fail(f"service {name} depends on unknown service {other}")
            elif condition == "service_healthy" and not services[other].get("healthcheck"):
                fail(f"service {name} waits for {other} to be healthy, but {other} has no health check")
            elif condition == "service_completed_successfully" and \
                    services[other].get("restart", "no") not in ("no", None):
                fail(f"service {name} waits for {other} to complete, but {other} restarts")
    for name in ("ingest", "processor"):
        conditions = depends_on(services.get(name, {}))
        for other in ("nats", "postgres"):
            if conditions.get(other) != "service_healthy":
                fail(f"service {name} should wait for {other} to be healthy")
    for name in ("nats", "postgres", "ingest", "prometheus", "grafana"):
        if not services.get(name, {}).get("healthcheck"):
            fail(f"service {name} has no health check")
    ok("health checks exist and depends_on brings the stack up in order", since)


def image_version(image):
    tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
    return tuple(int(part) for part in re.findall(r"\d+", tag.split("-")[0])[:2])


def check_services(services):
    since = len(failures)
    nats, postgres = services.get("nats", {}), services.get("postgres", {})
    if not nats.get("image", "").startswith("nats:") or image_version(nats["image"]) < MIN_NATS_VERSION:
        fail(f"nats should use the official nats image, {'.'.join(map(str, MIN_NATS_VERSION))} or "
             f"newer, uses {nats.get('image')}")
    if not postgres.get("image", "").startswith("postgres:") or \
            image_version(postgres["image"])[:1] != (POSTGRES_MAJOR,):
        fail(f"postgres should use postgres:{POSTGRES_MAJOR}, uses {postgres.get('image')}")
    data = mounts(postgres).get("/var/lib/postgresql/data")
    if not data or data[1]:
        fail("postgres should keep /var/lib/postgresql/data on a named volume")
    replicas = (services.get("processor", {}).get("deploy") or {}).get("replicas")
    if replicas != PROCESSOR_REPLICAS:
        fail(f"processor should run {PROCESSOR_REPLICAS} replicas (deploy.replicas), has {replicas}")
    grafana_env = services.get("grafana", {}).get("environment") or {}
    if str(grafana_env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() != "true" or \
            grafana_env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer":
        fail("grafana should give anonymous users the Viewer role")
    ok(f"images (nats {nats.get('image')}, postgres {postgres.get('image')}), named volumes, "
       f"{replicas} processors, anonymous Grafana viewers", since)


SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKENS?|API_KEYS?)$", re.IGNORECASE)
NO_DEFAULT = re.compile(r"^\$\{\w+(:?-|:?\?[^}]*)?\}$")


def check_no_passwords(raw_services):
    """No password in compose.yaml: secret-looking variables are either file
    paths (*_FILE) or references to the caller's environment with no default."""
    since = len(failures)
    for name, service in raw_services.items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
        for key, value in environment.items():
            if not SECRET_NAME.search(key) or key.endswith("_FILE") or value in (None, ""):
                continue
            if not NO_DEFAULT.match(str(value)):
                fail(f"service {name} sets {key} in compose.yaml; take it from a file or the environment")
    ok("no password or token is written in compose.yaml", since)


# --- nats config -----------------------------------------------------------

def check_nats_config(service):
    since = len(failures)
    command = _as_list(service.get("command"))
    config = next((command[i + 1] for i, word in enumerate(command[:-1])
                   if word in ("-c", "--config")), None)
    source = host_path(service, config) if config else None
    if source is None or not source.is_file():
        fail(f"the nats service should run with --config <file mounted from the repository>, runs {command}")
        return
    text = source.read_text()
    lines = text.splitlines()
    begins = [i for i, line in enumerate(lines) if line.strip() == NATS_BLOCK_BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == NATS_BLOCK_END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        fail(f"{rel(source)} should have one block from '{NATS_BLOCK_BEGIN}' to '{NATS_BLOCK_END}'")
        return
    block = [line.split("#", 1)[0].strip() for line in lines[begins[0] + 1:ends[0]]]
    kept = lines[:begins[0]] + lines[ends[0] + 1:]
    if not any(re.fullmatch(r"sync_interval\s*[:=]?\s*\"?always\"?", option) for option in block):
        fail(f"{rel(source)}: the marked block should set `sync_interval: always`")
    if any("sync_interval" in line.split("#", 1)[0] for line in kept):
        fail(f"{rel(source)}: sync_interval outside the marked block")
    store = re.search(r"^\s*store_dir\s*[:=]\s*\"?([^\"\s]+)", text, re.MULTILINE)
    named = [target for target, (_, is_bind) in mounts(service).items() if not is_bind]
    if not store or not any(store.group(1) == t or store.group(1).startswith(t.rstrip("/") + "/")
                            for t in named):
        fail(f"{rel(source)}: jetstream store_dir should lie on a named volume of the nats service "
             f"({named})")
    with tempfile.TemporaryDirectory() as tmp:
        stripped = Path(tmp) / "nats.conf"
        stripped.write_text("\n".join(kept) + "\n")
        result = subprocess.run(["nats-server", "-t", "-c", str(stripped)], capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().replace(str(stripped), rel(source))
        fail(f"nats-server -t rejects {rel(source)} (without its newer-server block):\n{output}")
        return
    version = subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout.strip()
    ok(f"{rel(source)} passes `nats-server -t` ({version}) without its newer-server block "
       f"({', '.join(o for o in block if o)})", since)


# --- Dockerfile -------------------------------------------------------------

class Stage:
    def __init__(self, base, name):
        self.base, self.name, self.instructions = base, name, []


def parse_dockerfile(path):
    """The stages of a Dockerfile: base image or stage, name, instructions
    as (keyword, argument text) with continuation lines joined."""
    stages, logical, current = [], [], ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#"):
            continue  # comments, also inside a continued instruction
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    for instruction in logical:
        keyword, _, argument = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in argument.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, argument.strip()))
    return stages


def dockerignore_patterns(context):
    path = context / ".dockerignore"
    if not path.exists():
        return []
    return [line.strip().lstrip("/") for line in path.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def ignored(relative, patterns):
    """Docker's rule, simplified: the last matching pattern wins, and a
    pattern matches a path or any of its parents."""
    parts = Path(relative).parts
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
            result = not negate
    return result


def copy_sources(argument):
    """The build-context sources of a COPY or ADD (none for COPY --from)."""
    words = argument.split()
    if any(word.startswith("--from") for word in words):
        return []
    words = [word for word in words if not word.startswith("--")]
    if words and words[0].startswith("["):
        words = yaml.safe_load(" ".join(words))  # JSON form
    return words[:-1]


DEPS_RUN = re.compile(r"(\S*scripts/deps\.sh)((?:[ \t]+[^\s;&|]+)*)")
OTHER_INSTALLERS = re.compile(r"\b(?:(?:apt-get|apt|aptitude)\s+(?:-\S+\s+)*install|dpkg\s+(?:-i|--install)"
                              r"|apk\s+add|pip3?\s+install)\b")
BUILDS = re.compile(r"\b(cmake|make|ninja|g\+\+)\b")


def stage_chain(stages, stage):
    by_name = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    return list(reversed(chain))


def package_lists(chain):
    """The package lists the RUN lines of a chain of stages install."""
    lists = []
    for stage in chain:
        for keyword, argument in stage.instructions:
            if keyword == "RUN":
                for _, args in DEPS_RUN.findall(argument):
                    lists.append(tuple(args.split()) or (PACKAGES,))
    return lists


def check_dockerfile(dockerfile, context, targets, runtime_targets):
    since = len(failures)
    stages = parse_dockerfile(dockerfile)
    names = {stage.name for stage in stages}
    for target in targets:
        if target not in names:
            fail(f"compose builds target {target}, which {rel(dockerfile)} does not define")
    patterns = dockerignore_patterns(context)
    for stage in stages:
        label = f"{rel(dockerfile)} stage {stage.name or stage.base}"
        if stage.base not in names and not re.fullmatch(r"debian:(12|bookworm)(-slim)?", stage.base):
            fail(f"{label} starts from {stage.base}; images build on debian:12 and run on debian:12-slim")
        for keyword, argument in stage.instructions:
            if keyword in ("COPY", "ADD"):
                for source in copy_sources(argument):
                    matches = list(context.glob(source)) if source != "." else [context]
                    if not matches:
                        fail(f"{label} copies {source}, which does not exist")
                    elif source != "." and ignored(source, patterns):
                        fail(f"{label} copies {source}, which .dockerignore leaves out")
            if keyword == "RUN" and OTHER_INSTALLERS.search(argument):
                fail(f"{label} installs packages itself (`{OTHER_INSTALLERS.search(argument).group(0)}`); "
                     f"install them through scripts/deps.sh and a list in scripts/")
    # The toolchain: whatever compiles must have exactly `make deps`'s list.
    build_stages = [s for s in stages if any(BUILDS.search(argument) for keyword, argument in
                                             s.instructions if keyword in ("RUN", "CMD", "ENTRYPOINT"))]
    if not build_stages:
        fail(f"{rel(dockerfile)} has no stage that builds")
    for stage in build_stages:
        lists = [packages for packages in package_lists(stage_chain(stages, stage))
                 if not (stage.name == "test" and packages == (TEST_PACKAGES,))]
        if lists != [(PACKAGES,)]:
            fail(f"{rel(dockerfile)} stage {stage.name} builds with the package lists {lists}, "
                 f"expected exactly {PACKAGES} (what `make deps` installs)")
    for stage in stages:
        for packages in package_lists([stage]):
            if packages == (TEST_PACKAGES,) and stage.name == "test":
                continue
            if packages not in ((PACKAGES,), (RUNTIME_PACKAGES,)):
                fail(f"{rel(dockerfile)} stage {stage.name} installs {packages}: only {PACKAGES} "
                     f"(build) and {RUNTIME_PACKAGES} (runtime) are allowed")
    for target in runtime_targets & names:
        chain = stage_chain(stages, next(s for s in stages if s.name == target))
        users = [argument for s in chain for keyword, argument in s.instructions if keyword == "USER"]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            fail(f"{rel(dockerfile)} target {target} runs as root; it should run as a non-root user")
        if not chain[0].base.endswith("-slim"):
            fail(f"{rel(dockerfile)} target {target} should run on debian:12-slim, runs on {chain[0].base}")
        if package_lists(chain) != [(RUNTIME_PACKAGES,)]:
            fail(f"{rel(dockerfile)} target {target} should install exactly {RUNTIME_PACKAGES}")
    ok(f"{rel(dockerfile)}: builds with exactly {PACKAGES}, runs {sorted(runtime_targets)} as non-root "
       f"on debian:12-slim with {RUNTIME_PACKAGES}; every file it copies exists", since)
    return stages


def check_make_deps():
    """`make deps` installs scripts/packages.txt: it runs scripts/deps.sh
    without a list, and that is deps.sh's default."""
    since = len(failures)
    result = subprocess.run(["make", "-s", "-n", "deps"], cwd=ROOT, capture_output=True, text=True)
    commands = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or commands != ["scripts/deps.sh"]:
        fail(f"`make deps` should run exactly `scripts/deps.sh`, runs {commands} {result.stderr.strip()}")
    if f"lists=({PACKAGES})" not in (ROOT / "scripts/deps.sh").read_text():
        fail(f"scripts/deps.sh should install {PACKAGES} when given no list")
    ok(f"`make deps` and the Dockerfile's toolchain install the one list {PACKAGES}", since)


# --- runtime libraries --------------------------------------------------------

def read_sections(path):
    sections, current = {}, None
    for line in path.read_text().splitlines():
        header = re.match(r"#\s*\[(\w+)\]", line.strip())
        if header:
            current = header.group(1)
            sections.setdefault(current, set())
        elif line.strip() and not line.strip().startswith("#"):
            if current is None:
                fail(f"{rel(path)}: package {line.strip()} before any [section] line")
            else:
                sections[current].add(line.strip())
    return sections


def owning_package(library_path):
    path = Path(library_path)
    candidates = [str(path), os.path.realpath(path)]
    for candidate in list(candidates):
        candidates.append(candidate[4:] if candidate.startswith("/usr/") else "/usr" + candidate)
    for candidate in candidates:
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def needed_packages(binary):
    """{package: library} owning the shared libraries the binary asks for."""
    readelf = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf.stdout)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd.stdout, re.MULTILINE))
    result = {}
    for library in needed:
        path = paths.get(library)
        if path is None:
            fail(f"{rel(binary)} needs {library}, which ldd cannot find")
            continue
        package = owning_package(path)
        if package is None:
            fail(f"{rel(binary)} needs {path}, which no Debian package owns")
        else:
            result.setdefault(package, library)
    return result


def check_runtime_packages(stages, build_dir):
    since = len(failures)
    outputs = sorted({match for stage in stages for keyword, argument in stage.instructions
                      if keyword == "RUN" for match in re.findall(r"/build/([\w./-]+)", argument)})
    binaries = []
    for output in outputs:
        path = build_dir / output
        if path.is_file():
            binaries.append(path)
        elif output in PENDING_BUILD_OUTPUTS:
            note(f"the Dockerfile builds {output}, not checked: {PENDING_BUILD_OUTPUTS[output]} "
                 f"(its image cannot be built until then)")
        else:
            fail(f"{path} does not exist: build first (cmake --build {build_dir}), or fix the "
                 f"Dockerfile's path /build/{output}")
    if not binaries:
        fail(f"no binary of the Dockerfile found under {build_dir}")
        return
    needed = {}
    for binary in binaries:
        for package, library in needed_packages(binary).items():
            needed.setdefault(package, f"{library} of {binary.name}")
    sections = read_sections(ROOT / RUNTIME_PACKAGES)
    listed = sections.get("libraries", set())
    for package in sorted(set(needed) - listed):
        fail(f"{RUNTIME_PACKAGES} lacks {package} under [libraries] (it provides {needed[package]})")
    for package in sorted(listed - set(needed)):
        fail(f"{RUNTIME_PACKAGES} lists {package} under [libraries], but no binary needs it: "
             f"remove it, or move it to [tools] if the image needs it for something else")
    ok(f"{RUNTIME_PACKAGES} [libraries] is exactly what {', '.join(b.name for b in binaries)} need "
       f"({len(needed)} packages); [tools]: {', '.join(sorted(sections.get('tools', [])))}", since)


# --- monitoring -----------------------------------------------------------------

def check_monitoring(services):
    since = len(failures)
    prometheus, grafana = services.get("prometheus", {}), services.get("grafana", {})
    flag = next((w.split("=", 1)[1] for w in _as_list(prometheus.get("command"))
                 if w.startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
    config_path = host_path(prometheus, flag)
    if config_path is None or not config_path.is_file():
        fail(f"prometheus reads {flag}, which no bind mount of the repository provides")
    else:
        config = yaml.safe_load(config_path.read_text()) or {}
        hosts = set()
        for job in config.get("scrape_configs") or []:
            for static in job.get("static_configs") or []:
                hosts.update(target.rsplit(":", 1)[0] for target in static.get("targets") or [])
            for dns in job.get("dns_sd_configs") or []:
                hosts.update(dns.get("names") or [])
        unknown = hosts - set(services) - {"localhost"}
        if unknown:
            fail(f"{rel(config_path)} scrapes {sorted(unknown)}, which are not compose services")
        if "ingest" not in hosts:
            fail(f"{rel(config_path)} does not scrape ingest")
        if shutil.which("promtool"):
            result = subprocess.run(["promtool", "check", "config", str(config_path)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                fail(f"promtool rejects {rel(config_path)}:\n{(result.stdout + result.stderr).strip()}")
        ok(f"{rel(config_path)} scrapes {sorted(hosts)}"
           + ("" if shutil.which("promtool") else " (promtool not installed: not run)"), since)
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    if provisioning is None or not provisioning.is_dir():
        fail("grafana should mount its provisioning folder at /etc/grafana/provisioning")
        return
    for path in sorted(provisioning.glob("*/*.y*ml")):
        document = yaml.safe_load(path.read_text()) or {}
        for provider in document.get("providers") or []:
            folder = (provider.get("options") or {}).get("path")
            source = host_path(grafana, folder) if folder else None
            if source is None or not source.is_dir():
                fail(f"{rel(path)}: dashboards path {folder} is not a folder mounted into grafana")
        for source in document.get("datasources") or []:
            host = re.sub(r"^\w+://", "", source.get("url", "")).split(":")[0].split("/")[0]
            if host not in services:
                fail(f"{rel(path)}: data source {source.get('name')} points at {host}, not a compose service")
    ok("grafana provisioning points at mounted dashboards and at compose's prometheus", since)


def main():
    build_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build").resolve()
    resolved, raw, profiles = load_compose()
    if resolved is None:
        return 1
    services = resolved["services"]
    check_profiles(services, profiles)
    check_mounts(resolved)
    check_ports(services)
    check_networks(resolved)
    check_health_and_order(services)
    check_services(services)
    check_no_passwords(raw["services"])
    check_nats_config(services.get("nats", {}))
    check_monitoring(services)
    check_make_deps()
    by_dockerfile = {}
    for name, service in services.items():
        build = service.get("build")
        if not build:
            continue
        context = Path(build["context"] if isinstance(build, dict) else build)
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        if not dockerfile.is_file():
            fail(f"service {name} builds from {rel(dockerfile)}, which does not exist")
            continue
        entry = by_dockerfile.setdefault(dockerfile, (context, set(), set()))
        target = build.get("target") if isinstance(build, dict) else None
        if target:
            entry[1].add(target)
            if "test" not in (service.get("profiles") or []):
                entry[2].add(target)
    for dockerfile, (context, targets, runtime_targets) in by_dockerfile.items():
        stages = check_dockerfile(dockerfile, context, targets, runtime_targets)
        check_runtime_packages(stages, build_dir)
    if failures:
        print(f"\ncheck-compose: {len(failures)} problem(s), see FAIL lines above", file=sys.stderr)
        return 1
    print("check-compose: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
