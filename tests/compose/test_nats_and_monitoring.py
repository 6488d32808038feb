"""The configuration files compose mounts: nats-server's and the monitoring's."""
import re
import shutil
import subprocess

import pytest
import yaml

from helpers import as_words, host_path, named_volume_targets

# nats.conf marks the options only servers newer than Debian's 2.9 know, so
# that Debian's nats-server can check the rest (`nats-server -t`).
BLOCK_BEGIN = "# BEGIN newer-server options"
BLOCK_END = "# END newer-server options"


@pytest.fixture(scope="module")
def nats_conf(services):
    """(host path, lines) of the file the nats service runs with --config."""
    service = services.get("nats", {})
    command = as_words(service.get("command"))
    config = next((command[i + 1] for i, word in enumerate(command[:-1]) if word in ("-c", "--config")), None)
    source = host_path(service, config) if config else None
    assert source is not None and source.is_file(), \
        f"nats should run with --config <a file bind-mounted from the repository>, runs {command}"
    return source, source.read_text().splitlines()


def newer_server_block(nats_conf):
    """(option lines inside the marked block, the lines outside it)."""
    path, lines = nats_conf
    begins = [i for i, line in enumerate(lines) if line.strip() == BLOCK_BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == BLOCK_END]
    assert len(begins) == 1 and len(ends) == 1 and begins[0] < ends[0], \
        f"{path} should have one block from {BLOCK_BEGIN!r} to {BLOCK_END!r}"
    block = [line.split("#", 1)[0].strip() for line in lines[begins[0] + 1:ends[0]]]
    return [option for option in block if option], lines[:begins[0]] + lines[ends[0] + 1:]


def test_nats_syncs_every_message_to_disk_in_the_newer_server_block(nats_conf):
    block, _ = newer_server_block(nats_conf)
    assert any(re.fullmatch(r'sync_interval\s*[:=]?\s*"?always"?', option) for option in block), \
        f"{nats_conf[0]}: the marked block should set `sync_interval: always`, has {block}"


def test_nats_sets_sync_interval_only_inside_the_block(nats_conf):
    _, outside = newer_server_block(nats_conf)
    stray = [line for line in outside if "sync_interval" in line.split("#", 1)[0]]
    assert not stray, f"{nats_conf[0]}: sync_interval outside the marked block: {stray}"


def test_jetstream_stores_on_a_named_volume_of_nats(nats_conf, services):
    path, lines = nats_conf
    store = re.search(r'^\s*store_dir\s*[:=]\s*"?([^"\s]+)', "\n".join(lines), re.MULTILINE)
    named = named_volume_targets(services["nats"])
    assert store and any(store.group(1) == t or store.group(1).startswith(t.rstrip("/") + "/") for t in named), \
        f"{path}: store_dir {store and store.group(1)} should lie on a named volume of nats ({named})"


def test_debians_nats_server_accepts_the_config_without_the_newer_block(nats_conf, tmp_path):
    assert shutil.which("nats-server"), "nats-server not found (make deps installs it)"
    _, outside = newer_server_block(nats_conf)
    stripped = tmp_path / "nats.conf"
    stripped.write_text("\n".join(outside) + "\n")
    result = subprocess.run(["nats-server", "-t", "-c", str(stripped)], capture_output=True, text=True)
    assert result.returncode == 0, f"nats-server -t rejects {nats_conf[0]}:\n{result.stdout}{result.stderr}"


# --- Prometheus and Grafana --------------------------------------------------

@pytest.fixture(scope="module")
def prometheus_config(services):
    service = services.get("prometheus", {})
    flag = next((word.split("=", 1)[1] for word in as_words(service.get("command"))
                 if word.startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
    path = host_path(service, flag)
    assert path is not None and path.is_file(), f"prometheus reads {flag}, which no bind mount provides"
    return path


def scraped_hosts(path):
    config = yaml.safe_load(path.read_text()) or {}
    hosts = set()
    for job in config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            hosts.update(target.rsplit(":", 1)[0] for target in static.get("targets") or [])
        for dns in job.get("dns_sd_configs") or []:
            hosts.update(dns.get("names") or [])
    return hosts


def test_prometheus_scrapes_only_compose_services(prometheus_config, services):
    unknown = scraped_hosts(prometheus_config) - set(services) - {"localhost"}
    assert not unknown, f"{prometheus_config} scrapes hosts that are not compose services: {sorted(unknown)}"


def test_prometheus_scrapes_ingest_and_processor(prometheus_config):
    hosts = scraped_hosts(prometheus_config)
    assert {"ingest", "processor"} <= hosts, f"{prometheus_config} scrapes {sorted(hosts)}"


def test_promtool_accepts_the_prometheus_config(prometheus_config):
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (scripts/packages-test.txt: prometheus)")
    result = subprocess.run(["promtool", "check", "config", str(prometheus_config)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"promtool rejects {prometheus_config}:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def grafana_provisioning(services):
    """[(file, document)] of grafana's provisioning folder."""
    folder = host_path(services.get("grafana", {}), "/etc/grafana/provisioning")
    assert folder is not None and folder.is_dir(), \
        "grafana should mount its provisioning folder from the repository at /etc/grafana/provisioning"
    files = sorted(folder.glob("*/*.y*ml"))
    assert files, f"{folder} holds no */*.yml"
    return [(path, yaml.safe_load(path.read_text()) or {}) for path in files]


def test_grafana_dashboard_providers_read_mounted_folders(grafana_provisioning, services):
    folders = [(path.name, (provider.get("options") or {}).get("path"))
               for path, document in grafana_provisioning for provider in document.get("providers") or []]
    assert folders, "no dashboard provider"
    sources = [(file, folder, folder and host_path(services["grafana"], folder)) for file, folder in folders]
    unmounted = [(file, folder) for file, folder, source in sources if source is None or not source.is_dir()]
    assert not unmounted, f"(file, dashboards path) not mounted into grafana from the repository: {unmounted}"


def test_grafana_data_sources_point_at_compose_services(grafana_provisioning, services):
    hosts = [(path.name, re.sub(r"^\w+://", "", source.get("url", "")).split("/")[0].split(":")[0])
             for path, document in grafana_provisioning for source in document.get("datasources") or []]
    assert hosts, "no data source"
    unknown = [(file, host) for file, host in hosts if host not in services]
    assert not unknown, f"(file, host) of data sources that are not compose services: {unknown}"
