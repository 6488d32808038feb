"""scripts/packages-runtime.txt against the binaries the runtime images ship:
readelf's NEEDED entries, resolved by ldd and mapped to Debian packages with
dpkg -S, on this (Debian 12) machine, the images' distribution."""
import functools

import pytest

from helpers import ROOT, assert_built, linked_libraries, owning_packages, package_sections

RUNTIME_LIST = ROOT / "scripts/packages-runtime.txt"


@functools.lru_cache(maxsize=None)
def linkage(binaries):
    """({soname: (binary, path)} needed directly, {package: soname} of every
    library the loader maps, {path: package})."""
    needed, loaded = {}, {}
    for binary in binaries:
        names, paths = linked_libraries(binary)
        for name in names:
            needed.setdefault(name, (binary.name, paths.get(name)))
        loaded.update(paths)
    owners = owning_packages(sorted(set(loaded.values())))
    return needed, {owners[path]: name for name, path in loaded.items() if owners[path]}, owners


@pytest.fixture(scope="module")
def listed():
    sections = package_sections(RUNTIME_LIST)
    assert sections.get("libraries"), f"{RUNTIME_LIST} has no `# [libraries]` section"
    return sections["libraries"]


def test_the_binaries_of_the_images_are_built(binaries):
    assert_built(binaries)
    names = {path.name for path in binaries}
    assert {"ingest", "processor"} <= names, f"the Dockerfile ships {sorted(names)}, not ingest and processor"


def test_every_needed_library_is_found_and_owned_by_a_debian_package(binaries):
    assert_built(binaries)
    needed, _, owners = linkage(tuple(binaries))
    unfound = {name: binary for name, (binary, path) in needed.items() if path is None}
    assert not unfound, f"libraries ldd cannot find (library: binary): {unfound}"
    unowned = {name: path for name, (_, path) in needed.items() if owners.get(path) is None}
    assert not unowned, f"libraries no Debian package owns (dpkg -S): {unowned}"


def test_the_runtime_list_has_every_package_a_binary_needs(binaries, listed):
    assert_built(binaries)
    needed, _, owners = linkage(tuple(binaries))
    packages = {owners.get(path): f"{name} of {binary}" for name, (binary, path) in needed.items()}
    missing = {package: why for package, why in packages.items() if package and package not in listed}
    assert not missing, f"{RUNTIME_LIST.name} [libraries] lacks (package: what needs it): {missing}"


def test_the_runtime_list_has_only_packages_the_binaries_need(binaries, listed):
    # Needed directly: a package that a needed library pulls in (libfmt9
    # through libspdlog1.10) comes with it and is not listed.
    assert_built(binaries)
    needed, _, owners = linkage(tuple(binaries))
    stale = sorted(listed - {owners.get(path) for _, path in needed.values()})
    assert not stale, (f"{RUNTIME_LIST.name} [libraries] lists packages no binary needs directly: {stale}; "
                       f"remove them, or move them to [tools] if the image needs them for something else")
