"""Checks of the Helm chart without a cluster.

The real Helm library (helm-python-sdk) lints the chart strictly and renders it with every values
file in helm/streamd/ci/; kubernetes-validate checks each rendered object against the Kubernetes
1.30 schemas (offline, strict: unknown fields fail). Then the wiring Kubernetes does not check:
selectors, ports, the peer addresses the nodes dial, and the values the schema must refuse.
"""

from __future__ import annotations

import pathlib
import tomllib

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent / "streamd"
VALUES_FILES = sorted((CHART / "ci").glob("*.yaml"))
KUBE_VERSION = "1.30.0"
RELEASE = "streamd"
NAMESPACE = "data"
# Custom resources kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {"ServiceMonitor"}


def load_values(path: pathlib.Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict, name: str = RELEASE) -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=name, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_lint_is_clean_in_strict_mode():
    for values_file in [None, *VALUES_FILES]:
        values = load_values(values_file) if values_file else None
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not report["errors"] and not problems, (values_file, report)


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.stem)
def test_every_object_is_valid_kubernetes(values_file):
    for obj in render(load_values(values_file)):
        if obj["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.stem)
def test_wiring(values_file):
    values = load_values(values_file)
    with helm.Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
    objects = render(values)
    sts = one(objects, "StatefulSet")
    pod = sts["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    container = one_container(pod)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "grpc": merged["ports"]["grpc"],
        "kinesis": merged["ports"]["kinesis"],
        "admin": merged["ports"]["admin"],
    }

    # The StatefulSet's selector picks its own pods, and so does every Service and the PDB.
    assert_selects(sts["spec"]["selector"]["matchLabels"], pod_labels)
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True, (
        "peers must resolve before they are ready: readiness needs a formed cluster"
    )
    for svc in services.values():
        assert_selects(svc["spec"]["selector"], pod_labels)
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, port
            assert port["port"] == ports[port["targetPort"]], port
    client = next(s for name, s in services.items() if name != headless["metadata"]["name"])
    assert {p["name"] for p in client["spec"]["ports"]} == {"grpc", "kinesis", "admin"}
    assert sts["spec"]["podManagementPolicy"] == "Parallel"

    # Probes hit the admin port: liveness /healthz, readiness /readyz.
    for probe, path in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ]:
        get = container[probe]["httpGet"]
        assert (get["path"], ports.get(get["port"], get["port"])) == (
            path,
            merged["ports"]["admin"],
        ), probe

    # The PDB never allows more than one node down, and never blocks a one-pod release forever.
    pdbs = by_kind(objects, "PodDisruptionBudget")
    if merged["podDisruptionBudget"]["enabled"]:
        (pdb,) = pdbs
        assert_selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
        assert pdb["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in pdb["spec"]
    else:
        assert not pdbs

    # Every volume the container mounts exists (the data volume comes from the claim template).
    volumes = {v["name"] for v in pod["spec"].get("volumes", [])}
    volumes |= {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, mount
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == merged["persistence"]["size"]

    check_node_configs(objects, sts, headless, merged, container)
    check_secrets(container, pod, merged)
    check_placement(pod["spec"], pod_labels, merged)

    monitors = by_kind(objects, "ServiceMonitor")
    if merged["serviceMonitor"]["enabled"]:
        (monitor,) = monitors
        assert_selects(monitor["spec"]["selector"]["matchLabels"], headless["metadata"]["labels"])
        assert not selects(monitor["spec"]["selector"]["matchLabels"], client["metadata"]["labels"]), (
            "the ServiceMonitor must scrape each pod once, through the headless service"
        )
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in headless["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
    else:
        assert not monitors


def check_node_configs(objects, sts, headless, merged, container):
    """The per-pod config files: one per pod, ids unique, the first initialMembers form the
    cluster and list each other by the names the headless service gives them, the rest join
    through those, and every node advertises its own stable name."""
    (config_map,) = by_kind(objects, "ConfigMap")
    mounted = {
        m["mountPath"]: m["name"] for m in container["volumeMounts"] if m["name"] == "config"
    }
    (mount_path,) = mounted
    (arg,) = container["args"]
    assert arg == f"--config={mount_path}/$(POD_NAME).toml"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"]
    )

    name = sts["metadata"]["name"]
    replicas = sts["spec"]["replicas"]
    initial = merged["initialMembers"]
    domain = f"{headless['metadata']['name']}.{NAMESPACE}.svc.{merged['clusterDomain']}"
    grpc = merged["ports"]["grpc"]
    expected_pods = [f"{name}-{i}" for i in range(replicas)]
    assert sorted(config_map["data"]) == sorted(f"{p}.toml" for p in expected_pods)
    configs = [tomllib.loads(config_map["data"][f"{p}.toml"]) for p in expected_pods]

    ids = [c["node_id"] for c in configs]
    assert len(set(ids)) == len(ids), ids
    for i, c in enumerate(configs):
        assert c["node_id"] == int(merged["nodeIds"].get(str(i), i + 1))
        assert c["advertise_addr"] == f"{name}-{i}.{domain}:{grpc}"
        assert c["grpc_addr"].endswith(f":{grpc}")
        assert c["kinesis_addr"].endswith(f":{merged['ports']['kinesis']}")
        assert c["admin_addr"].endswith(f":{merged['ports']['admin']}")
        assert c["data_dir"] in {m["mountPath"] for m in container["volumeMounts"]}
    members = {
        int(k): v for k, v in (e.split("=", 1) for e in configs[0]["initial_cluster"].split(","))
    }
    assert members == {configs[i]["node_id"]: configs[i]["advertise_addr"] for i in range(initial)}
    for i, c in enumerate(configs):
        if i < initial:
            assert "join" not in c
            assert c["initial_cluster"] == configs[0]["initial_cluster"]
        else:
            assert "initial_cluster" not in c
            assert c["join"].split(",") == list(members.values())


def check_secrets(container, pod, merged):
    env = {e["name"]: e for e in container["env"]}
    auth = merged["kinesis"]["auth"]
    if auth["existingSecret"]:
        ref = env["STREAMD_KINESIS_AUTH_KEYS"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": auth["existingSecret"], "key": auth["key"]}
    else:
        assert "STREAMD_KINESIS_AUTH_KEYS" not in env
    tls = merged["kinesis"]["tls"]["existingSecret"]
    secret_volumes = [v for v in pod["spec"]["volumes"] if "secret" in v]
    if tls:
        (vol,) = secret_volumes
        assert vol["secret"]["secretName"] == tls
    else:
        assert not secret_volumes


def check_placement(spec, pod_labels, merged):
    anti = spec.get("affinity", {}).get("podAntiAffinity", {})
    mode = merged["podAntiAffinity"]
    if mode == "required":
        (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    elif mode == "preferred":
        (weighted,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        term = weighted["podAffinityTerm"]
    else:
        assert not anti
        term = None
    if term:
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert_selects(term["labelSelector"]["matchLabels"], pod_labels)
    spread = spec.get("topologySpreadConstraints", [])
    if merged["zoneSpread"]["enabled"]:
        (constraint,) = spread
        assert constraint["topologyKey"] == merged["zoneSpread"]["topologyKey"]
        assert_selects(constraint["labelSelector"]["matchLabels"], pod_labels)
    else:
        assert not spread


def one_container(pod: dict) -> dict:
    (container,) = pod["spec"]["containers"]
    return container


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def assert_selects(selector: dict, labels: dict):
    assert selector and selects(selector, labels), (selector, labels)


@pytest.mark.parametrize(
    "values",
    [
        {"replicas": "three"},
        {"replicas": 0},
        {"podDisruptionBudget": {"maxUnavailable": 2}},
        {"podAntiAffinity": "sometimes"},
        {"config": {"shardLimits": "aws"}},
        {"config": {"listenAddress": "10.0.0.1"}},
        {"ports": {"grpc": 70000, "kinesis": 4567, "admin": 9090}},
        {"persistence": {"size": "lots"}},
        {"nodeIds": {"one": 5}},
        {"nodeIds": {"3": 0}},
        {"replica": 3},
        {"kinesis": {"auth": {"secret": "x"}}},
    ],
    ids=lambda v: yaml.safe_dump(v, default_flow_style=True).strip(),
)
def test_schema_rejects_wrong_values(values):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(chart.merge_values(values))
        with pytest.raises(helm.HelmError):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] or any(m["severity"] >= 3 for m in report["messages"]), report


def test_fewer_pods_than_founding_members_is_refused():
    with pytest.raises(helm.HelmRenderError, match="at least initialMembers"):
        render({"replicas": 2, "initialMembers": 3})


def test_names_fit_dns_labels():
    long_release = "a-very-long-release-name-for-streamd-in-production-x"
    objects = render({}, name=long_release)
    sts = one(objects, "StatefulSet")
    # <fullname>-<ordinal> is a pod's hostname; the StatefulSet controller adds a 10-character
    # revision hash label too.
    assert len(sts["metadata"]["name"]) + len("-99") <= 63
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
