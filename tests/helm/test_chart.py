"""The carbon-jupyterhub chart, rendered with real Helm and validated object by object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import values_schema
import yaml
from chartlib import (
    ARGOCD_APPLICATION,
    CHART,
    EXAMPLES,
    GOLDEN,
    Obj,
    by_kind,
    deep_merge,
    load_values,
    merged_values,
    one,
    render,
    render_files,
    shared_schemas,
)

CASES = [None, *EXAMPLES]
IDS = ["default", *[p.stem for p in EXAMPLES]]
CRD_SCHEMAS = {
    "ServiceMonitor": "monitoring.coreos.com-servicemonitor_v1.json",
    "PodMonitor": "monitoring.coreos.com-podmonitor_v1.json",
    "PrometheusRule": "monitoring.coreos.com-prometheusrule_v1.json",
    "Application": "argoproj.io-application_v1alpha1.json",
}
AUTH_STATE_SCOPE = "admin:auth_state!user"


@pytest.fixture(scope="module")
def sdk() -> dict[str, Any]:
    return values_schema.sdk_schema()


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[str, Obj, list[Obj]]:
    values = load_values(request.param)
    name = "default" if request.param is None else request.param.stem
    return name, values, render(values)


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"minimal", "production", "gpu"}


def test_renders(case: tuple[str, Obj, list[Obj]]) -> None:
    _, _, objects = case
    kinds = {o["kind"] for o in objects}
    assert {"ConfigMap", "NetworkPolicy", "LimitRange"} <= kinds
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "carbon"


@pytest.mark.parametrize("values_file", CASES, ids=IDS)
def test_helm_lint_has_no_errors(values_file: Path | None) -> None:
    import helm_python

    report = helm_python.lint(os.fspath(CHART), load_values(values_file) or None)
    errors = [m for m in report["messages"] if m["severity"] >= 3]
    assert not errors and not report["errors"], report
    # The one expected warning: the subchart is not downloaded (`helm dependency build`).
    warnings = [m["error"] for m in report["messages"] if m["severity"] == 2]
    assert all("missing these dependencies: jupyterhub" in w for w in warnings), warnings


@pytest.mark.parametrize("kube_version", ["1.32.0", "1.34.0"])
def test_core_objects_valid_strict(case: tuple[str, Obj, list[Obj]], kube_version: str) -> None:
    import kubernetes_validate

    _, _, objects = case
    core = [o for o in objects if o["kind"] not in CRD_SCHEMAS]
    assert core
    for obj in core:
        kubernetes_validate.validate(obj, kube_version, strict=True)


def _validate_crd(obj: Obj) -> None:
    schema = json.loads((shared_schemas() / CRD_SCHEMAS[obj["kind"]]).read_text())
    # No meta-schema check: the published CRD schemas carry Go regexes (`^(?i)...`) that Python's
    # re refuses; they are compiled only if the object uses that field.
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
    assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"


def test_crd_objects_valid(case: tuple[str, Obj, list[Obj]]) -> None:
    _, _, objects = case
    for obj in objects:
        if obj["kind"] in CRD_SCHEMAS:
            _validate_crd(obj)


def test_monitoring_objects_rendered_by_default() -> None:
    objects = render()
    assert by_kind(objects, "ServiceMonitor") and by_kind(objects, "PrometheusRule")
    rules = one(objects, "PrometheusRule", "carbon-jupyterhub")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "JupyterHubDown",
        "JupyterHubSpawnFailures",
        "JupyterHubSlowSpawns",
        "CarbonQuotaNearlyFull",
    }
    endpoint = one(objects, "ServiceMonitor", "carbon-jupyterhub-hub")["spec"]["endpoints"][0]
    assert endpoint["path"] == "/hub/metrics"
    assert endpoint["authorization"]["credentials"]["name"] == "carbon-hub-secrets"
    dashboard = one(objects, "ConfigMap", "carbon-jupyterhub-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    json.loads(dashboard["data"]["carbon-jupyterhub.json"])


def test_argocd_application_valid() -> None:
    app = yaml.safe_load(ARGOCD_APPLICATION.read_text())
    _validate_crd(app)
    assert app["spec"]["source"]["path"] == "helm/carbon-jupyterhub"


@pytest.mark.parametrize("values_file", CASES, ids=IDS)
def test_z2jh_values_valid_against_its_schema(values_file: Path | None) -> None:
    shared = shared_schemas()
    defaults = yaml.safe_load((shared / "z2jh-4.4.0-values.yaml").read_text())
    schema = yaml.safe_load((shared / "z2jh-4.4.0-values.schema.yaml").read_text())
    ours = merged_values(load_values(values_file))["jupyterhub"]
    jsonschema.validate(deep_merge(defaults, ours), schema, cls=jsonschema.Draft7Validator)


def test_values_schema_and_reference_generated_from_sdk(sdk: dict[str, Any]) -> None:
    cli = Path(sys.executable).with_name("carbon-sdk")
    out = subprocess.run(
        [str(cli), "config", "schema", "--json"], capture_output=True, text=True, check=True
    )
    # the generator reads the same document as the CLI prints
    assert json.loads(out.stdout) == json.loads(json.dumps(sdk))
    assert values_schema.main(["--check"]) == 0, "run: .venv/bin/python tests/helm/values_schema.py"


def test_values_schema_covers_every_sdk_field(sdk: dict[str, Any]) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    services = schema["properties"]["services"]["properties"]
    inline = schema["properties"]["secrets"]["properties"]["inline"]["properties"]
    for name, spec in sdk["services"].items():
        config = set(services[name]["properties"]["config"]["properties"])
        secret = set(inline.get(name, {}).get("properties", {}))
        assert config == {f["name"] for f in spec["fields"] if not f["secret"]}
        assert secret == {f["name"] for f in spec["fields"] if f["secret"]}


def test_renamed_sdk_field_fails_render(sdk: dict[str, Any]) -> None:
    import helm_python

    for name, spec in sdk["services"].items():
        field = next(f["name"] for f in spec["fields"] if f["required"] and not f["secret"])
        with pytest.raises(helm_python.HelmValuesError, match=f"{field}_renamed"):
            render({"services": {name: {"config": {f"{field}_renamed": "x"}}}})
        secret = [f["name"] for f in spec["fields"] if f["secret"]]
        if secret:  # a secret in the ConfigMap's values is refused
            with pytest.raises(helm_python.HelmValuesError):
                render({"services": {name: {"config": {secret[0]: "x"}}}})


def test_configmap_is_the_sdk_config_format(
    case: tuple[str, Obj, list[Obj]], tmp_path: Path, sdk: dict[str, Any]
) -> None:
    from carbon_sdk.settings.config_file import ConfigFile

    _, values, objects = case
    text = one(objects, "ConfigMap", "carbon-sdk-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    parsed = yaml.safe_load(text)
    merged = merged_values(values)["services"]
    expected = {n: s["config"] for n, s in merged.items() if s.get("enabled") and s.get("config")}
    assert parsed == expected
    ConfigFile.read(path).check_sections(sdk["services"])  # the SDK's own parser accepts it


def test_no_secret_value_in_configmaps_or_plain_env(sdk: dict[str, Any]) -> None:
    values = load_values(CHART / "examples" / "minimal.yaml")
    objects = render(values)
    merged = merged_values(values)
    secrets = [v for fields in merged["secrets"]["inline"].values() for v in fields.values()]
    secrets += list(merged["hubSecrets"]["inline"].values())
    assert secrets
    texts = [yaml.safe_dump(o) for o in by_kind(objects, "ConfigMap")]
    hub = merged["jupyterhub"]
    env_blocks = [
        hub["hub"].get("extraEnv", {}),
        hub["singleuser"].get("extraEnv", {}),
        hub.get("proxy", {}).get("chp", {}).get("extraEnv", {}),
    ]
    secret_envs = {
        name
        for spec in sdk["services"].values()
        for f in spec["fields"]
        if f["secret"]
        for name in (f["env_var"], *f["aliases"])
    }
    for block in env_blocks:
        for name, entry in block.items():
            if not isinstance(entry, dict):
                texts.append(f"{name}={entry}")
            assert name not in secret_envs or "valueFrom" in entry, name
    texts.append(yaml.safe_dump(hub))  # z2jh would render these into its own ConfigMap/Secret
    for secret in secrets:
        assert not any(secret in text for text in texts), "a secret value leaked"


def test_secret_keys_are_the_sdk_secret_file_names(sdk: dict[str, Any]) -> None:
    objects = render(load_values(CHART / "examples" / "minimal.yaml"))
    keys = set(one(objects, "Secret", "carbon-sdk-secrets")["data"])
    assert keys and keys <= set(values_schema.secret_keys(sdk))
    assert not [o for o in render() if o["kind"] == "Secret"], "production default renders none"


def test_user_pods_mount_config_and_secrets_at_sdk_paths(sdk: dict[str, Any]) -> None:
    su = merged_values()["jupyterhub"]["singleuser"]
    mounts = {m["name"]: m for m in su["storage"]["extraVolumeMounts"]}
    volumes = {v["name"]: v for v in su["storage"]["extraVolumes"]}
    locations = sdk["locations"]
    assert mounts["carbon-config"]["mountPath"] == locations["system_config"]["default"]
    assert mounts["carbon-secrets"]["mountPath"] == locations["secrets_dir"]["default"]
    assert all(m["readOnly"] for m in mounts.values())
    assert volumes["carbon-config"]["configMap"]["name"] == "carbon-sdk-config"
    assert volumes["carbon-secrets"]["secret"]["secretName"] == "carbon-sdk-secrets"
    # root-owned files, group fsGid: readable by uid 1000 / gid 100, by nobody else
    assert volumes["carbon-secrets"]["secret"]["defaultMode"] == 0o440
    assert (su["uid"], su["fsGid"]) == (1000, 100)
    assert su["extraEnv"][locations["system_config"]["env"]] == mounts["carbon-config"]["mountPath"]
    assert su["extraEnv"][locations["secrets_dir"]["env"]] == mounts["carbon-secrets"]["mountPath"]


def test_user_pods_mount_an_optional_private_ca() -> None:
    """docs/security.md#tls: the operator's ConfigMap carbon-ca, at the path ca_bundle names."""
    su = merged_values()["jupyterhub"]["singleuser"]
    mounts = {m["name"]: m for m in su["storage"]["extraVolumeMounts"]}
    volumes = {v["name"]: v for v in su["storage"]["extraVolumes"]}
    assert volumes["carbon-ca"]["configMap"] == {
        "name": "carbon-ca",
        "optional": True,
        "defaultMode": 0o444,
    }
    assert mounts["carbon-ca"] == {
        "name": "carbon-ca",
        "mountPath": "/etc/carbon/ca",
        "readOnly": True,
    }
    assert not [o for o in render() if o["metadata"]["name"] == "carbon-ca"], "the operator's"


def test_hub_auth_state_and_roles() -> None:
    hub = merged_values()["jupyterhub"]["hub"]
    assert hub["config"]["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert hub["config"]["Authenticator"]["enable_auth_state"] is True
    assert hub["extraEnv"]["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"]
    for role in ("user", "server"):
        assert AUTH_STATE_SCOPE in hub["loadRoles"][role]["scopes"]
    assert hub["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_profiles_storage_culling_security() -> None:
    jh = merged_values()["jupyterhub"]
    su = jh["singleuser"]
    profiles = {p["slug"]: p["kubespawner_override"] for p in su["profileList"]}
    assert set(profiles) == {"standard", "large", "gpu"}
    assert (profiles["standard"]["cpu_guarantee"], profiles["standard"]["cpu_limit"]) == (2, 4)
    assert (profiles["standard"]["mem_guarantee"], profiles["standard"]["mem_limit"]) == (
        "8G",
        "16G",
    )
    assert profiles["gpu"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert profiles["gpu"]["image"].endswith("-gpu")
    assert su["storage"]["capacity"] == "10Gi"
    assert jh["cull"]["enabled"] is True
    assert su["cloudMetadata"]["blockWithIptables"] is False  # no privileged init container
    rules = su["networkPolicy"]["egressAllowRules"]
    assert not (rules["cloudMetadataServer"] or rules["nonPrivateIPs"] or rules["privateIPs"])
    ctx = jh["hub"]["config"]["KubeSpawner"]["container_security_context"]
    assert ctx["runAsNonRoot"] and not ctx["allowPrivilegeEscalation"]
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


def test_network_policy_opens_each_enabled_service() -> None:
    values = load_values(CHART / "examples" / "production.yaml")
    policy = one(render(values), "NetworkPolicy", "carbon-singleuser-egress")
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {8443, 443, 5432, 5000, 8080, 10001, 8265, 9092, 9093, 9094, 9095} <= ports
    assert policy["spec"]["podSelector"]["matchLabels"]["component"] == "singleuser-server"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"jupyterhub": {"hub": {"config": {"GenericOAuthenticator": {"token_url": "x"}}}}},
            "token_url must be",
        ),
        ({"cloudflareAccess": {"team": "other"}}, "authorize_url must be"),
        (
            {"jupyterhub": {"singleuser": {"storage": {"extraVolumes": []}}}},
            "needs the volume carbon-config",
        ),
        ({"secrets": {"existingSecret": "", "inline": {}}}, "set existingSecret"),
    ],
)
def test_guards_refuse_inconsistent_values(override: Obj, message: str) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmError, match=message):
        render(override)


def test_chart_lock_in_sync_with_chart_yaml() -> None:
    import helm_python

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["dependencies"] == [
        {
            "name": "jupyterhub",
            "version": "4.4.0",
            "repository": "https://hub.jupyter.org/helm-chart/",
        }
    ]
    # `helm dependency build` checks the lock digest first, then downloads (unreachable here).
    with pytest.raises(helm_python.HelmError) as info:
        helm_python.dependency_build(os.fspath(CHART))
    assert "out of sync" not in str(info.value)


def test_golden(case: tuple[str, Obj, list[Obj]]) -> None:
    name, values, _ = case
    text = "".join(
        f"# Source: {path}\n{body.strip()}\n---\n"
        for path, body in sorted(render_files(values).items())
        if body.strip()
    )
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"{golden} missing: UPDATE_GOLDEN=1 .venv/bin/pytest tests/helm"
    assert text == golden.read_text(), (
        f"rendered manifests differ from {golden.name}: review, then UPDATE_GOLDEN=1"
    )
