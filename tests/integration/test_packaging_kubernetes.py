"""The Kubernetes manifests of packaging/kubernetes, checked without a cluster: every document
parses, has a known kind and apiVersion, the kustomization lists every file, every volume mount
names a volume (and every volume is mounted), ConfigMaps and secrets referenced are defined (the
issuer secret by its cert-manager Certificate), the DaemonSet's arguments are real meshtls-agent
flags (from the built agent's --help) pointing into mounted paths, the scrape annotations match
the metrics port, and the packaged configurations are accepted by the built programs."""

import glob
import os
import re
import subprocess

import yaml

from harness import AGENT, MESHTLS, Mesh, base_env, check, main, wait_agent_ready

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(SOURCE, "packaging", "kubernetes")
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "DaemonSet": "apps/v1",
    "Deployment": "apps/v1",
    "Certificate": "cert-manager.io/v1",
    "Issuer": "cert-manager.io/v1",
}
SOCKET_DIR = "/run/meshtls"


def load():
    documents = {}
    for path in sorted(glob.glob(os.path.join(MANIFESTS, "*.yaml"))):
        with open(path) as f:
            text = f.read()
        check(text.startswith("#"), f"{os.path.basename(path)} does not open with a comment")
        try:
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as error:
            check(False, f"{os.path.basename(path)} does not parse: {error}")
        check(loaded, f"{os.path.basename(path)} holds no document")
        documents[os.path.basename(path)] = loaded
    return documents


def check_kustomization(documents):
    (kustomization,) = documents.pop("kustomization.yaml")
    check(kustomization.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and
          kustomization.get("kind") == "Kustomization", f"kustomization: {kustomization}")
    listed = kustomization.get("resources", [])
    check(len(listed) == len(set(listed)), f"kustomization lists a file twice: {listed}")
    check(sorted(listed) == sorted(documents),
          f"kustomization lists {sorted(listed)}, the directory holds {sorted(documents)}")


def index(documents):
    objects = {}
    for name, docs in documents.items():
        for doc in docs:
            kind = doc.get("kind")
            check(kind in API_VERSIONS, f"{name}: unexpected kind {kind}")
            check(doc.get("apiVersion") == API_VERSIONS[kind],
                  f"{name}: {kind} has apiVersion {doc.get('apiVersion')}, "
                  f"expected {API_VERSIONS[kind]}")
            metadata = doc.get("metadata") or {}
            check(metadata.get("name"), f"{name}: a {kind} has no name")
            namespace = metadata.get("namespace", "" if kind == "Namespace" else None)
            check(namespace is not None, f"{name}: {kind}/{metadata['name']} has no namespace")
            key = (kind, namespace, metadata["name"])
            check(key not in objects, f"{name}: {key} is defined twice")
            objects[key] = doc
    for (kind, namespace, name) in objects:
        check(namespace == "" or ("Namespace", "", namespace) in objects,
              f"{kind}/{name} is in namespace {namespace}, which is not defined")
    return objects


def check_pod(objects, kind, namespace, name, workload):
    """Mounts against volumes, referenced ConfigMaps and secrets, labels against the selector."""
    template = workload["spec"]["template"]
    selector = workload["spec"]["selector"]["matchLabels"]
    labels = template["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in selector.items()),
          f"{kind}/{name}: selector {selector} does not match the pod labels {labels}")
    for key, value in (template["metadata"].get("annotations") or {}).items():
        check(isinstance(value, str), f"{kind}/{name}: annotation {key} is not a string")
    pod = template["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    check(len(volumes) == len(pod.get("volumes", [])), f"{kind}/{name}: duplicate volume names")
    mounted = set()
    mounts = {}
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            check(mount["name"] in volumes,
                  f"{kind}/{name}: container {container['name']} mounts {mount['name']}, "
                  f"which is not a volume (volumes: {sorted(volumes)})")
            check(mount["mountPath"].startswith("/"), f"{kind}/{name}: relative mount path")
            mounted.add(mount["name"])
            mounts[mount["mountPath"]] = volumes[mount["name"]]
    check(mounted == set(volumes), f"{kind}/{name}: volumes never mounted: "
                                   f"{sorted(set(volumes) - mounted)}")
    for volume in volumes.values():
        if "configMap" in volume:
            check(("ConfigMap", namespace, volume["configMap"]["name"]) in objects,
                  f"{kind}/{name}: ConfigMap {volume['configMap']['name']} is not defined")
        if "secret" in volume:
            secret = volume["secret"]["secretName"]
            check(any(k[0] == "Certificate" and k[1] == namespace and
                      d["spec"]["secretName"] == secret for k, d in objects.items()),
                  f"{kind}/{name}: no Certificate in {namespace} makes the secret {secret}")
    socket_volume = mounts.get(SOCKET_DIR)
    check(socket_volume is not None and socket_volume.get("hostPath", {}).get("path") ==
          SOCKET_DIR, f"{kind}/{name}: {SOCKET_DIR} is not the hostPath {SOCKET_DIR}")
    return pod, mounts


def under_mount(path, mounts):
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def agent_flags():
    result = subprocess.run([AGENT, "--help"], capture_output=True, text=True, env=base_env())
    check(result.returncode == 0, f"meshtls-agent --help failed: {result.stderr}")
    flags = set(re.findall(r"^\s+(--[a-z][a-z-]*)", result.stdout, re.MULTILINE))
    check("--issuer-dir" in flags and "--metrics-address" in flags,
          f"unexpected meshtls-agent --help output:\n{result.stdout}")
    return flags


def check_daemonset(objects):
    daemonsets = [k for k in objects if k[0] == "DaemonSet"]
    check(len(daemonsets) == 1, f"expected one DaemonSet, found {daemonsets}")
    key = daemonsets[0]
    daemonset = objects[key]
    pod, mounts = check_pod(objects, *key, daemonset)
    (container,) = pod["containers"]
    args = container.get("args", [])
    flags = agent_flags()
    values = {}
    i = 0
    while i < len(args):
        flag = args[i]
        check(flag.startswith("--") and "=" not in flag, f"DaemonSet: unexpected argument {flag}")
        check(flag in flags, f"DaemonSet: meshtls-agent has no flag {flag} (it has "
                             f"{sorted(flags)})")
        check(i + 1 < len(args), f"DaemonSet: {flag} has no value")
        values[flag] = args[i + 1]
        i += 2
    check(values.get("--socket") == f"{SOCKET_DIR}/agent.sock",
          f"DaemonSet: --socket {values.get('--socket')}")
    check(values.get("--metrics-address") == "0.0.0.0:4191",
          f"DaemonSet: --metrics-address {values.get('--metrics-address')}")
    check(values.get("--issuer-dir") == "/etc/meshtls/issuer" and
          "secret" in mounts.get("/etc/meshtls/issuer", {}),
          "DaemonSet: the issuer secret is not mounted at /etc/meshtls/issuer for --issuer-dir")
    for flag in ("--socket", "--state-dir", "--config", "--issuer-dir"):
        check(flag in values and under_mount(values[flag], mounts),
              f"DaemonSet: {flag} {values.get(flag)} is not on a mounted volume")
    annotations = daemonset["spec"]["template"]["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true" and
          annotations.get("prometheus.io/port") == "4191",
          f"DaemonSet: scrape annotations {annotations}")
    ports = [p["containerPort"] for p in container.get("ports", [])]
    check(4191 in ports, f"DaemonSet: container ports {ports} lack 4191")
    check(pod.get("hostPID") is True, "DaemonSet: attestation needs hostPID")

    # The issuer secret comes from a CA Certificate whose issuerRef is defined, and is projected
    # 0400: the agent refuses a tls.key that group or others can read (the kubelet's default is
    # 0644), and an fsGroup would add group read again.
    secret = mounts["/etc/meshtls/issuer"]["secret"]["secretName"]
    mode = mounts["/etc/meshtls/issuer"]["secret"].get("defaultMode")
    check(mode is not None and mode & 0o077 == 0,
          f"DaemonSet: the issuer secret's defaultMode is {mode if mode is None else oct(mode)}; "
          f"the agent refuses a tls.key readable by group or others (set defaultMode: 0400)")
    check("fsGroup" not in (pod.get("securityContext") or {}),
          "DaemonSet: an fsGroup makes the issuer's tls.key group-readable")
    (certificate,) = [d for k, d in objects.items()
                      if k[0] == "Certificate" and d["spec"]["secretName"] == secret]
    spec = certificate["spec"]
    check(spec.get("isCA") is True, f"Certificate for {secret} is not a CA")
    ref = spec.get("issuerRef", {})
    check((ref.get("kind", "Issuer"), key[1], ref.get("name")) in objects or
          ref.get("kind") == "ClusterIssuer", f"Certificate for {secret}: issuerRef {ref} "
                                              f"is not defined")
    return values, key[1]


def check_deployment(objects):
    deployments = [k for k in objects if k[0] == "Deployment"]
    check(len(deployments) == 1, f"expected one example Deployment, found {deployments}")
    key = deployments[0]
    pod, mounts = check_pod(objects, *key, objects[key])
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    command = container.get("command", [])
    check("LD_PRELOAD" in env or (command and command[0].endswith("meshtls-entrypoint")),
          f"Deployment: neither LD_PRELOAD nor the entrypoint: {command} {env}")
    check(container.get("args"), "Deployment: no program to run")
    socket = env.get("MESHTLS_AGENT_SOCKET", f"{SOCKET_DIR}/agent.sock")
    check(os.path.dirname(socket) == SOCKET_DIR, f"Deployment: socket {socket}")
    config = env.get("MESHTLS_CONFIG")
    check(config is None or under_mount(config, mounts),
          f"Deployment: MESHTLS_CONFIG {config} is not on a mounted volume")
    return env, mounts, key[1]


def config_text(objects, namespace, mounts, path):
    volume = [v for m, v in mounts.items() if path.startswith(m.rstrip("/") + "/")][0]
    data = objects[("ConfigMap", namespace, volume["configMap"]["name"])]["data"]
    return data[os.path.basename(path)]


def test():
    documents = load()
    check_kustomization(documents)
    objects = index(documents)
    agent_values, agent_namespace = check_daemonset(objects)
    workload_env, workload_mounts, workload_namespace = check_deployment(objects)
    daemonset = [d for k, d in objects.items() if k[0] == "DaemonSet"][0]
    agent_mounts = {m["mountPath"]: v for m in daemonset["spec"]["template"]["spec"]
                    ["containers"][0]["volumeMounts"]
                    for v in daemonset["spec"]["template"]["spec"]["volumes"]
                    if v["name"] == m["name"]}

    with Mesh("packaging-kubernetes") as mesh:
        # The workload configuration from its ConfigMap loads.
        if workload_env.get("MESHTLS_CONFIG"):
            path = os.path.join(mesh.dir, "meshtls.conf")
            with open(path, "w") as f:
                f.write(config_text(objects, workload_namespace, workload_mounts,
                                    workload_env["MESHTLS_CONFIG"]))
            result = subprocess.run([MESHTLS, "config", "check", path], capture_output=True,
                                    text=True, env=base_env())
            check(result.returncode == 0, f"the Deployment's meshtls.conf does not load:\n"
                                          f"{result.stdout}{result.stderr}")
        # The agent starts with the configuration from its ConfigMap.
        path = os.path.join(mesh.dir, "agent.conf")
        with open(path, "w") as f:
            f.write(config_text(objects, agent_namespace, agent_mounts, agent_values["--config"]))
        sock = os.path.join(mesh.dir, "agent.sock")
        agent = mesh.spawn("agent", [AGENT, "--socket", sock, "--state-dir",
                                     os.path.join(mesh.dir, "state"), "--config", path,
                                     "--metrics-address", "off"])
        wait_agent_ready(agent, sock, "the agent with the DaemonSet's configuration")
    print(f"{sum(len(d) for d in documents.values())} documents in {len(documents)} files: "
          f"kinds {sorted({k[0] for k in objects})}; DaemonSet flags {sorted(agent_values)}")


if __name__ == "__main__":
    main(test)
