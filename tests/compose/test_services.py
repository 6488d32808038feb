"""Properties of compose.yaml, read from `docker-compose config` (the file
normalized: anchors merged, ${VAR:-default} resolved with an empty
environment, paths absolute). `docker-compose config -q` in
scripts/check-compose.sh already rejects an invalid file, undeclared named
volumes and depends_on on unknown services."""
import re
from pathlib import Path

from helpers import (ROOT, as_words, depends_on, host_path, image_version, named_volume_targets,
                     published_ports, volumes, writable_named_volumes)

# What the stack promises (README, "Running with Docker Compose").
PUBLISHED = {("ingest", 8080), ("grafana", 3000), ("prometheus", 9090)}
PROFILES = {"k6": "load", "loadgen": "loadgen", "test": "test"}
PROCESSOR_REPLICAS = 2
MIN_NATS_VERSION = (2, 10)  # the first with `sync_interval: always`
POSTGRES_MAJOR = 16
HEALTH_CHECKED = ("nats", "postgres", "ingest", "prometheus", "grafana")
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKENS?|API_KEYS?)$", re.IGNORECASE)


def default_services(services):
    return {name for name, service in services.items() if not service.get("profiles")}


# --- profiles ------------------------------------------------------------------

def test_the_profiles_are_exactly_load_loadgen_and_test(profiles):
    assert profiles == set(PROFILES.values()), f"docker-compose config --profiles lists {sorted(profiles)}"


def test_each_tool_is_in_its_own_profile_only(services):
    got = {name: services.get(name, {}).get("profiles") for name in PROFILES}
    assert got == {name: [profile] for name, profile in PROFILES.items()}, f"profiles of the tools: {got}"


def test_services_started_by_default_depend_on_no_profiled_service(services):
    default = default_services(services)
    wrong = {name: sorted(set(depends_on(services[name])) - default) for name in default}
    assert not any(wrong.values()), f"`docker compose up` services that wait for a profiled one: {wrong}"


# --- ports and networks ------------------------------------------------------

def test_only_ingest_grafana_and_prometheus_publish_ports(services):
    published = {(name, target) for name, service in services.items()
                 for _, target in published_ports(service)}
    assert published == PUBLISHED, f"published (service, container port): {sorted(published)}"


def test_ports_are_published_on_loopback_by_default(services):
    addresses = {(name, host_ip) for name, service in services.items()
                 for host_ip, _ in published_ports(service)}
    assert {host_ip for _, host_ip in addresses} == {"127.0.0.1"}, \
        f"without PUBLISH_ADDRESS the ports should listen on 127.0.0.1 only: {sorted(addresses)}"


def internal_networks(config):
    return {name for name, spec in (config.get("networks") or {}).items() if (spec or {}).get("internal")}


def test_there_is_an_internal_network(config):
    assert internal_networks(config), f"no network is internal: {config.get('networks')}"


def test_every_networked_service_is_on_an_internal_network(config, services):
    internal = internal_networks(config)
    outside = [name for name, service in services.items() if "network_mode" not in service
               and not set(service.get("networks") or {"default": None}) & internal]
    assert not outside, f"not on the internal network(s) {sorted(internal)}: {outside}"


def test_only_services_that_publish_a_port_join_a_non_internal_network(config, services):
    internal = internal_networks(config)
    publishers = {name for name, _ in PUBLISHED}
    open_ = {name: sorted(set(service.get("networks") or {"default": None}) - internal)
             for name, service in services.items() if "network_mode" not in service}
    wrong = {name: networks for name, networks in open_.items() if networks and name not in publishers}
    assert not wrong, f"on a network with a way out, but publishing nothing: {wrong}"


def test_network_mode_is_none_or_a_service_with_its_own_network(services):
    # service:X shares X's network namespace (the load tools use ingest's).
    def allowed(mode):
        if mode == "none":
            return True
        other = mode[len("service:"):] if mode.startswith("service:") else None
        return other in services and "network_mode" not in services[other]
    wrong = {name: s["network_mode"] for name, s in services.items()
             if "network_mode" in s and not allowed(s["network_mode"])}
    assert not wrong, f"network_mode other than none or service:<networked service>: {wrong}"


# --- health checks and start order -------------------------------------------

def test_the_long_running_services_have_health_checks(services):
    missing = [name for name in HEALTH_CHECKED if not services.get(name, {}).get("healthcheck")]
    assert not missing, f"no healthcheck: {missing}"


def test_service_healthy_conditions_wait_for_a_health_check(services):
    wrong = [(name, other) for name, service in services.items()
             for other, condition in depends_on(service).items()
             if condition == "service_healthy" and not services[other].get("healthcheck")]
    assert not wrong, f"(service, dependency) waiting for health that is never checked: {wrong}"


def test_service_completed_successfully_conditions_wait_for_a_service_that_does_not_restart(services):
    wrong = [(name, other, services[other].get("restart")) for name, service in services.items()
             for other, condition in depends_on(service).items()
             if condition == "service_completed_successfully"
             and services[other].get("restart", "no") not in ("no", None)]
    assert not wrong, f"(service, dependency, restart) waiting for a completion that restarts: {wrong}"


def test_ingest_and_processor_wait_for_healthy_nats_and_postgres(services):
    got = {name: {other: depends_on(services.get(name, {})).get(other) for other in ("nats", "postgres")}
           for name in ("ingest", "processor")}
    expected = {name: {"nats": "service_healthy", "postgres": "service_healthy"} for name in got}
    assert got == expected, f"depends_on conditions: {got}"


# --- images, replicas, volumes -----------------------------------------------

def test_nats_runs_the_official_image_2_10_or_newer(services):
    image = services.get("nats", {}).get("image", "")
    assert image.startswith("nats:") and image_version(image) >= MIN_NATS_VERSION, \
        f"nats should run nats:{'.'.join(map(str, MIN_NATS_VERSION))} or newer, runs {image!r}"


def test_postgres_runs_postgres_16(services):
    image = services.get("postgres", {}).get("image", "")
    assert image.startswith("postgres:") and image_version(image)[:1] == (POSTGRES_MAJOR,), \
        f"postgres should run postgres:{POSTGRES_MAJOR}, runs {image!r}"


def test_postgres_keeps_its_data_on_a_named_volume(services):
    assert "/var/lib/postgresql/data" in named_volume_targets(services.get("postgres", {})), \
        f"postgres volumes: {services.get('postgres', {}).get('volumes')}"


def test_two_processor_replicas(services):
    replicas = (services.get("processor", {}).get("deploy") or {}).get("replicas")
    assert replicas == PROCESSOR_REPLICAS, f"processor deploy.replicas is {replicas}"


def test_grafana_lets_anonymous_users_view(services):
    environment = services.get("grafana", {}).get("environment") or {}
    got = (environment.get("GF_AUTH_ANONYMOUS_ENABLED"), environment.get("GF_AUTH_ANONYMOUS_ORG_ROLE"))
    assert got == ("true", "Viewer"), f"GF_AUTH_ANONYMOUS_ENABLED, GF_AUTH_ANONYMOUS_ORG_ROLE: {got}"


# --- passwords -------------------------------------------------------------------

def test_no_password_or_token_is_written_in_the_file(services):
    # With an empty environment every secret-looking variable resolves to
    # what the file itself says: nothing (${VAR}, ${VAR:-}), else it holds a
    # password, written literally or as a default.
    written = {(name, key): value for name, service in services.items()
               for key, value in (service.get("environment") or {}).items()
               if SECRET_NAME.search(key) and value not in (None, "")}
    assert not written, f"secrets written in the compose file (service, variable): {written}"


def test_password_files_lie_on_a_volume_a_completed_service_filled(services):
    # POSTGRES_PASSWORD_FILE, GF_SECURITY_ADMIN_PASSWORD__FILE: the file is on
    # a named volume that a service writes and the reader waits to complete.
    checked, wrong = 0, []
    for name, service in services.items():
        for key, path in (service.get("environment") or {}).items():
            if not re.search(r"(PASSWORD|SECRET|TOKEN)_+FILE$", key):
                continue
            checked += 1
            volume = next((source for source, target, is_bind in volumes(service) if not is_bind
                           and source and str(path).startswith(target.rstrip("/") + "/")), None)
            writers = {other for other, condition in depends_on(service).items()
                       if condition == "service_completed_successfully"
                       and volume in writable_named_volumes(services[other])}
            if volume is None or not writers:
                wrong.append(f"{name} {key}={path} (volume {volume}, writers waited for: {sorted(writers)})")
    assert checked, "no service reads a password from a *_FILE variable"
    assert not wrong, "password files nobody is known to have written: " + "; ".join(wrong)


# --- files from the repository ---------------------------------------------

def test_every_bind_mount_source_exists(services):
    missing = [(name, source) for name, service in services.items()
               for source, _, is_bind in volumes(service) if is_bind and not Path(source).exists()]
    assert not missing, f"(service, host path) mounted but missing: {missing}"


def test_every_bind_mount_source_is_in_the_repository(services):
    outside = [(name, source) for name, service in services.items()
               for source, _, is_bind in volumes(service)
               if is_bind and Path(source).resolve() != ROOT and ROOT not in Path(source).resolve().parents]
    assert not outside, f"(service, host path) mounted from outside {ROOT}: {outside}"


def test_files_that_commands_name_in_bind_mounts_exist(services):
    named, missing = 0, []
    for name, service in services.items():
        for word in as_words(service.get("entrypoint")) + as_words(service.get("command")):
            for candidate in re.findall(r"/[\w./-]+", word):
                source = host_path(service, candidate)
                if source is not None:
                    named += 1
                    if not source.exists():
                        missing.append(f"{name} runs with {candidate}, i.e. {source}")
    assert named, "no entrypoint or command names a file of a bind mount (nats.conf, init.sh)"
    assert not missing, "; ".join(missing)
