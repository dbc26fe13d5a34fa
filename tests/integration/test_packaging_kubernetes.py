"""The Kubernetes manifests of packaging/kubernetes, checked without a cluster, as `kubectl apply -k`
would send them: rendered with `kubectl kustomize`, then

  - every rendered object is deserialized into the V1 model class of its kind from Debian's
    python3-kubernetes with client-side validation (required fields, enums), and every key of it
    is one the model knows (a misspelt key would be dropped by the API server without a word);
    cert-manager's Certificate and Issuer are checked structurally;
  - consistency: every volume mount names a volume (containers and init containers) and every
    volume is mounted, ConfigMaps and secrets referenced are generated or defined (the issuer
    secret by its cert-manager Certificate), selectors match pod labels, the DaemonSet's
    arguments are real meshtls-agent flags (from the built agent's --help) pointing into mounted
    paths, the scrape annotations match the metrics port;
  - the contract with the injector and the pod attestor: the hostPaths /run/meshtls and
    /var/lib/meshtls, the init container installing both preloads and workload.conf, the kubelet
    flags with NODE_IP from status.hostIP, the API server flags (the service address from the
    environment, the same token and CA), the RBAC that reaches the kubelet's /pods and lists and
    watches pods and services, nothing else, Pod Security labels, the webhook (v1 reviews, no side effects, the namespace selector,
    its service and path, the cert-manager CA injection matching the serving certificate);
  - the probes of the agent really ask the agent: the exec command, run here against a real agent,
    exits 0, and exits non-zero against a socket nobody serves;
  - the node-wide workload.conf is accepted by the built `meshtls config check`, and `meshtls
    config decide` shows what it says: the API server's address and port 443 untouched, DNS
    skipped, everything else decided by the mesh membership ("auto"), inbound strict;
  - the example workload asks for injection by annotation alone (no volumes, no entrypoint, no
    LD_PRELOAD of its own);
  - an `images:` override renders into every container that uses the image.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import yaml
from kubernetes import client as k8s

from harness import AGENT, MESHTLS, Mesh, base_env, check, main, wait_agent_ready

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(SOURCE, "packaging", "kubernetes")
SYSTEM_NAMESPACE = "meshtls-system"
SOCKET_DIR = "/run/meshtls"
LIB_DIR = "/var/lib/meshtls"
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# Kinds the manifests may hold: apiVersion and the python3-kubernetes model (None: cert-manager,
# checked structurally).
KINDS = {
    "Namespace": ("v1", "V1Namespace"),
    "ConfigMap": ("v1", "V1ConfigMap"),
    "Service": ("v1", "V1Service"),
    "ServiceAccount": ("v1", "V1ServiceAccount"),
    "DaemonSet": ("apps/v1", "V1DaemonSet"),
    "Deployment": ("apps/v1", "V1Deployment"),
    "PodDisruptionBudget": ("policy/v1", "V1PodDisruptionBudget"),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "V1ClusterRole"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "V1ClusterRoleBinding"),
    "MutatingWebhookConfiguration": ("admissionregistration.k8s.io/v1",
                                     "V1MutatingWebhookConfiguration"),
    "Certificate": ("cert-manager.io/v1", None),
    "Issuer": ("cert-manager.io/v1", None),
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
# ConfigMaps the cluster makes in every namespace (Kubernetes 1.21+), not the manifests.
CLUSTER_CONFIG_MAPS = {"kube-root-ca.crt"}


# --- rendering and the API models ---------------------------------------------------------------

def kubectl():
    path = shutil.which("kubectl")
    check(path is not None, "no kubectl on PATH (packaging/install-deps.sh installs Debian's "
                            "kubernetes-client where none is)")
    return path


def render(directory):
    result = subprocess.run([kubectl(), "kustomize", directory], capture_output=True, text=True,
                            timeout=120)
    check(result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


class Response:
    """What ApiClient.deserialize reads: the JSON text of an object."""

    def __init__(self, document):
        self.data = json.dumps(document)


def unknown_keys(data, type_name, where):
    """Keys of data that the model type_name does not have, recursively ("path.key")."""
    if data is None:
        return []
    match = re.fullmatch(r"list\[(.*)\]", type_name)
    if match:
        return [u for i, item in enumerate(data)
                for u in unknown_keys(item, match.group(1), f"{where}[{i}]")]
    match = re.fullmatch(r"dict\(str, (.*)\)", type_name)
    if match:
        return [u for key, item in data.items()
                for u in unknown_keys(item, match.group(1), f"{where}.{key}")]
    model = getattr(k8s, type_name, None)
    if model is None:  # str, int, bool, object (IntOrString, free-form)
        return []
    json_to_attribute = {v: k for k, v in model.attribute_map.items()}
    found = []
    for key, value in data.items():
        if key not in json_to_attribute:
            found.append(f"{where}.{key}")
            continue
        found += unknown_keys(value, model.openapi_types[json_to_attribute[key]],
                              f"{where}.{key}")
    return found


def validate_model(document):
    kind = document["kind"]
    api_version, model = KINDS[kind]
    name = f"{kind}/{document['metadata']['name']}"
    try:
        k8s.ApiClient().deserialize(Response(document), model)
    except (ValueError, TypeError) as error:
        check(False, f"{name} is not a valid {model}: {error}")
    unknown = unknown_keys(document, model, name)
    check(not unknown, f"{name}: keys the {model} model does not have: {unknown}")


CERTIFICATE_KEYS = {"secretName", "isCA", "commonName", "dnsNames", "duration", "renewBefore",
                    "privateKey", "usages", "issuerRef"}
CERTIFICATE_USAGES = {"signing", "digital signature", "content commitment", "key encipherment",
                      "key agreement", "data encipherment", "cert sign", "crl sign",
                      "encipher only", "decipher only", "any", "server auth", "client auth",
                      "code signing", "email protection", "s/mime", "ipsec end system",
                      "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
                      "microsoft sgc", "netscape sgc"}


def validate_cert_manager(document, objects):
    kind, name = document["kind"], document["metadata"]["name"]
    spec = document.get("spec") or {}
    if kind == "Issuer":
        check(len(spec) == 1 and next(iter(spec)) in ("selfSigned", "ca"),
              f"Issuer/{name}: expected exactly one of selfSigned, ca: {spec}")
        if "ca" in spec:
            secret = spec["ca"].get("secretName")
            check(any(k[0] == "Certificate" and d["spec"]["secretName"] == secret
                      for k, d in objects.items()),
                  f"Issuer/{name}: no Certificate makes its CA secret {secret}")
        return
    check(set(spec) <= CERTIFICATE_KEYS,
          f"Certificate/{name}: unknown keys {sorted(set(spec) - CERTIFICATE_KEYS)}")
    check(isinstance(spec.get("secretName"), str) and spec["secretName"],
          f"Certificate/{name}: no secretName")
    check(spec.get("commonName") or spec.get("dnsNames"),
          f"Certificate/{name}: neither commonName nor dnsNames")
    usages = spec.get("usages", [])
    check(set(usages) <= CERTIFICATE_USAGES, f"Certificate/{name}: unknown usages {usages}")
    key = spec.get("privateKey", {})
    check(set(key) <= {"algorithm", "size", "rotationPolicy", "encoding"} and
          key.get("algorithm", "RSA") in ("RSA", "ECDSA", "Ed25519"),
          f"Certificate/{name}: privateKey {key}")
    ref = spec.get("issuerRef", {})
    check((ref.get("kind", "Issuer"), document["metadata"]["namespace"], ref.get("name"))
          in objects or ref.get("kind") == "ClusterIssuer",
          f"Certificate/{name}: issuerRef {ref} is not defined")


def index(documents):
    objects = {}
    for document in documents:
        kind = document.get("kind")
        check(kind in KINDS, f"unexpected kind {kind}")
        check(document.get("apiVersion") == KINDS[kind][0],
              f"{kind} has apiVersion {document.get('apiVersion')}, expected {KINDS[kind][0]}")
        metadata = document.get("metadata") or {}
        check(metadata.get("name"), f"a {kind} has no name")
        namespace = metadata.get("namespace", "" if kind in CLUSTER_SCOPED else None)
        check(namespace is not None, f"{kind}/{metadata['name']} has no namespace")
        check(kind not in CLUSTER_SCOPED or namespace == "", f"{kind} is cluster-scoped")
        key = (kind, namespace, metadata["name"])
        check(key not in objects, f"{key} is defined twice")
        objects[key] = document
    for (kind, namespace, name) in objects:
        check(namespace == "" or ("Namespace", "", namespace) in objects,
              f"{kind}/{name} is in namespace {namespace}, which is not defined")
    return objects


def the(objects, kind, name):
    found = [d for k, d in objects.items() if k[0] == kind and k[2] == name]
    check(len(found) == 1, f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def check_kustomization():
    with open(os.path.join(MANIFESTS, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = kustomization.get("resources", [])
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MANIFESTS, "*.yaml"))
                   if not p.endswith("kustomization.yaml"))
    check(sorted(listed) == files, f"kustomization lists {sorted(listed)}, the directory holds "
                                   f"{files}")
    for path in files:
        with open(os.path.join(MANIFESTS, path)) as f:
            check(f.read().startswith("#"), f"{path} does not open with a comment")


# --- pods ----------------------------------------------------------------------------------------

def check_pod(objects, kind, namespace, name, workload):
    """Mounts against volumes, referenced ConfigMaps and secrets, labels against the selector.
    Returns the pod spec and {mountPath: volume} of each container (by name)."""
    template = workload["spec"]["template"]
    selector = workload["spec"]["selector"]["matchLabels"]
    labels = template["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in selector.items()),
          f"{kind}/{name}: selector {selector} does not match the pod labels {labels}")
    pod = template["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    check(len(volumes) == len(pod.get("volumes", [])), f"{kind}/{name}: duplicate volume names")
    mounted = set()
    mounts = {}
    for container in pod.get("initContainers", []) + pod["containers"]:
        mounts[container["name"]] = {}
        for mount in container.get("volumeMounts", []):
            check(mount["name"] in volumes,
                  f"{kind}/{name}: container {container['name']} mounts {mount['name']}, "
                  f"which is not a volume (volumes: {sorted(volumes)})")
            check(mount["mountPath"].startswith("/"), f"{kind}/{name}: relative mount path")
            mounted.add(mount["name"])
            mounts[container["name"]][mount["mountPath"]] = volumes[mount["name"]]
    check(mounted == set(volumes), f"{kind}/{name}: volumes never mounted: "
                                   f"{sorted(set(volumes) - mounted)}")

    def config_map_defined(config_map):
        return (config_map in CLUSTER_CONFIG_MAPS or
                ("ConfigMap", namespace, config_map) in objects)

    for volume in volumes.values():
        sources = volume.get("projected", {}).get("sources", []) + [volume]
        for source in sources:
            if "configMap" in source:
                check(config_map_defined(source["configMap"]["name"]),
                      f"{kind}/{name}: ConfigMap {source['configMap']['name']} is not defined")
            if "secret" in source:
                secret = source["secret"]["secretName"]
                check(any(k[0] == "Certificate" and k[1] == namespace and
                          d["spec"]["secretName"] == secret for k, d in objects.items()),
                      f"{kind}/{name}: no Certificate in {namespace} makes the secret {secret}")
    return pod, mounts


def under_mount(path, mounts):
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def host_path(mounts, path):
    return (mounts.get(path) or {}).get("hostPath", {}).get("path")


def agent_flags():
    result = subprocess.run([AGENT, "--help"], capture_output=True, text=True, env=base_env())
    check(result.returncode == 0, f"meshtls-agent --help failed: {result.stderr}")
    flags = set(re.findall(r"^\s+(--[a-z][a-z-]*)", result.stdout, re.MULTILINE))
    check("--issuer-dir" in flags and "--metrics-address" in flags,
          f"unexpected meshtls-agent --help output:\n{result.stdout}")
    return flags


KUBELET_FLAGS = {"--kubelet-url", "--kubelet-token-file", "--kubelet-ca-file"}


def check_daemonset(objects):
    daemonset = the(objects, "DaemonSet", "meshtls-agent")
    namespace = daemonset["metadata"]["namespace"]
    check(namespace == SYSTEM_NAMESPACE, f"the agent is in {namespace}")
    pod, mounts = check_pod(objects, "DaemonSet", namespace, "meshtls-agent", daemonset)
    (container,) = pod["containers"]
    agent_mounts = mounts[container["name"]]
    args = container.get("args", [])
    flags = agent_flags()
    # The kubelet flags belong to the pod attestor (the contract); an agent built without it yet
    # is checked against the contract's names instead of its --help.
    known = flags | (KUBELET_FLAGS if not flags & KUBELET_FLAGS else set())
    values = {}
    i = 0
    while i < len(args):
        flag = args[i]
        check(flag.startswith("--") and "=" not in flag, f"DaemonSet: unexpected argument {flag}")
        check(flag in known, f"DaemonSet: meshtls-agent has no flag {flag} (it has "
                             f"{sorted(flags)})")
        check(i + 1 < len(args), f"DaemonSet: {flag} has no value")
        values[flag] = args[i + 1]
        i += 2
    check(values.get("--socket") == f"{SOCKET_DIR}/agent.sock" and
          host_path(agent_mounts, SOCKET_DIR) == SOCKET_DIR,
          f"DaemonSet: --socket {values.get('--socket')} is not on the hostPath {SOCKET_DIR}")
    check(values.get("--metrics-address") == "0.0.0.0:4191",
          f"DaemonSet: --metrics-address {values.get('--metrics-address')}")
    check(values.get("--issuer-dir") == "/etc/meshtls/issuer" and
          "secret" in agent_mounts.get("/etc/meshtls/issuer", {}),
          "DaemonSet: the issuer secret is not mounted at /etc/meshtls/issuer for --issuer-dir")
    for flag in ("--socket", "--state-dir", "--config", "--issuer-dir", "--kubelet-token-file",
                 "--kubelet-ca-file"):
        check(flag in values and under_mount(values[flag], agent_mounts),
              f"DaemonSet: {flag} {values.get(flag)} is not on a mounted volume")

    # The kubelet: its URL from the node's IP, the service account's projected token, a CA.
    env = {e["name"]: e for e in container.get("env", [])}
    check(values.get("--kubelet-url") == "https://$(NODE_IP):10250" and
          env.get("NODE_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") ==
          "status.hostIP", f"DaemonSet: --kubelet-url {values.get('--kubelet-url')} with NODE_IP "
                           f"{env.get('NODE_IP')}")
    check(values.get("--kubelet-token-file") == TOKEN, f"DaemonSet: --kubelet-token-file "
                                                       f"{values.get('--kubelet-token-file')}")
    access = agent_mounts[os.path.dirname(TOKEN)].get("projected", {}).get("sources", [])
    check(any(s.get("serviceAccountToken", {}).get("path") == "token" for s in access),
          "DaemonSet: the token is not a projected service-account token")
    ca = os.path.basename(values["--kubelet-ca-file"])
    check(any(i.get("path") == ca for s in access for i in s.get("configMap", {}).get("items", [])),
          f"DaemonSet: --kubelet-ca-file {values['--kubelet-ca-file']} comes from no ConfigMap")
    # The API server: its service address from the environment, the same token, the cluster CA.
    check(values.get("--kube-api-url") ==
          "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)",
          f"DaemonSet: --kube-api-url {values.get('--kube-api-url')}")
    check(values.get("--kube-api-token-file") == TOKEN and
          values.get("--kube-api-ca-file") == values["--kubelet-ca-file"],
          f"DaemonSet: --kube-api-token-file {values.get('--kube-api-token-file')}, "
          f"--kube-api-ca-file {values.get('--kube-api-ca-file')}")
    check(pod.get("automountServiceAccountToken") is False,
          "DaemonSet: the token should reach the agent container alone (projected volume)")
    for other in pod.get("initContainers", []):
        check(not under_mount(TOKEN, mounts[other["name"]]),
              f"DaemonSet: init container {other['name']} gets the token")

    annotations = daemonset["spec"]["template"]["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true" and
          annotations.get("prometheus.io/port") == "4191",
          f"DaemonSet: scrape annotations {annotations}")
    ports = [p["containerPort"] for p in container.get("ports", [])]
    check(4191 in ports, f"DaemonSet: container ports {ports} lack 4191")
    check(pod.get("hostPID") is True, "DaemonSet: attestation needs hostPID")

    # The issuer secret: a CA Certificate's, projected 0400 (the agent refuses a tls.key that
    # group or others can read; an fsGroup would add group read again).
    issuer = agent_mounts["/etc/meshtls/issuer"]["secret"]
    mode = issuer.get("defaultMode")
    check(mode is not None and mode & 0o077 == 0,
          f"DaemonSet: the issuer secret's defaultMode is {mode if mode is None else oct(mode)}; "
          f"the agent refuses a tls.key readable by group or others (set defaultMode: 0400)")
    check("fsGroup" not in (pod.get("securityContext") or {}),
          "DaemonSet: an fsGroup makes the issuer's tls.key group-readable")
    (certificate,) = [d for k, d in objects.items()
                      if k[0] == "Certificate" and d["spec"]["secretName"] == issuer["secretName"]]
    check(certificate["spec"].get("isCA") is True, "the issuer Certificate is not a CA")

    # The probes ask the agent over its socket.
    for probe in ("readinessProbe", "livenessProbe"):
        command = container.get(probe, {}).get("exec", {}).get("command", [])
        check(command == ["meshtls", "status", "--socket", values["--socket"]],
              f"DaemonSet: {probe} {command} does not ask the agent")

    # The init container installs the node's files into the hostPath /var/lib/meshtls.
    (init,) = pod.get("initContainers", [])
    init_mounts = mounts[init["name"]]
    target = [m for m, v in init_mounts.items() if v.get("hostPath", {}).get("path") == LIB_DIR]
    check(len(target) == 1, f"DaemonSet: the init container does not mount {LIB_DIR}")
    check(init["image"] == container["image"],
          f"DaemonSet: the init container's image {init['image']} is not the agent's")
    script = "\n".join(init.get("command", []) + init.get("args", []))
    for name in ("lib/libmeshtls-preload.so", "lib/libmeshtls-preload-musl.so"):
        check(os.path.basename(name) in script and "lib/$library" in script,
              f"DaemonSet: the init container does not install {name}")
    workload_config = [v for m, v in init_mounts.items() if "configMap" in v]
    check(len(workload_config) == 1 and "workload.conf" in script,
          "DaemonSet: the init container does not install workload.conf from a ConfigMap")
    config_map = objects[("ConfigMap", namespace, workload_config[0]["configMap"]["name"])]
    check("workload.conf" in config_map.get("data", {}),
          f"ConfigMap {config_map['metadata']['name']} has no key workload.conf")

    # RBAC: the pod's service account may get nodes/pods and nodes/proxy, and nothing else.
    account = pod.get("serviceAccountName")
    check(("ServiceAccount", namespace, account) in objects,
          f"DaemonSet: service account {account} is not defined")
    bindings = [d for k, d in objects.items() if k[0] == "ClusterRoleBinding" and
                {"kind": "ServiceAccount", "name": account, "namespace": namespace}
                in d.get("subjects", [])]
    check(len(bindings) == 1, f"{len(bindings)} ClusterRoleBindings for {account}")
    role = the(objects, "ClusterRole", bindings[0]["roleRef"]["name"])
    granted = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"]))
                     for r in role["rules"])
    check(granted == [(("",), ("nodes/pods",), ("get",)), (("",), ("nodes/proxy",), ("get",)),
                      (("",), ("pods", "services"), ("get", "list", "watch"))],
          f"ClusterRole {role['metadata']['name']} grants {granted}; the kubelet's /pods needs "
          f"get on nodes/pods (nodes/proxy before fine-grained kubelet authorization), the "
          f"membership list and watch on pods and services, no more")
    return values, namespace, container, config_map


def check_namespaces(objects):
    system = the(objects, "Namespace", SYSTEM_NAMESPACE)["metadata"].get("labels", {})
    check(system.get("pod-security.kubernetes.io/enforce") == "privileged",
          f"{SYSTEM_NAMESPACE}: hostPID and hostPath need enforce=privileged, labels {system}")
    meshed = [k[2] for k, d in objects.items() if k[0] == "Namespace" and
              d["metadata"].get("labels", {}).get("meshtls.io/inject") == "enabled"]
    check(SYSTEM_NAMESPACE not in meshed and meshed, f"namespaces selected for injection: {meshed}")
    return meshed


def check_injector(objects):
    deployment = the(objects, "Deployment", "meshtls-injector")
    namespace = deployment["metadata"]["namespace"]
    pod, mounts = check_pod(objects, "Deployment", namespace, "meshtls-injector", deployment)
    check(deployment["spec"].get("replicas") == 2, "injector: expected 2 replicas")
    (container,) = pod["containers"]
    security = dict(pod.get("securityContext") or {}, **(container.get("securityContext") or {}))
    check(security.get("runAsNonRoot") is True and security.get("runAsUser", 0) != 0 and
          security.get("readOnlyRootFilesystem") is True and
          security.get("allowPrivilegeEscalation") is False,
          f"injector: not non-root with a read-only root filesystem: {security}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container.get(probe, {}).get("httpGet", {})
        check(get.get("path") == "/healthz" and get.get("scheme") == "HTTPS" and
              ports.get(get.get("port"), get.get("port")) == 8443,
              f"injector: {probe} {get}")
    args = container.get("args", [])
    options = dict(zip(args[::2], args[1::2]))
    check(options.get("--listen", "").endswith(":8443"), f"injector: --listen {options}")
    for flag in ("--tls-cert", "--tls-key"):
        check(under_mount(options.get(flag, ""), mounts[container["name"]]),
              f"injector: {flag} {options.get(flag)} is not on a mounted volume")
    tls_secret = [v["secret"]["secretName"] for m, v in mounts[container["name"]].items()
                  if "secret" in v and under_mount(options["--tls-cert"], [m])]

    service = objects[("Service", namespace, "meshtls-injector")]
    (port,) = service["spec"]["ports"]
    check(port["port"] == 443 and ports.get(port["targetPort"], port["targetPort"]) == 8443,
          f"injector Service: {port}")
    check(all(deployment["spec"]["template"]["metadata"]["labels"].get(k) == v
              for k, v in service["spec"]["selector"].items()),
          "injector Service: its selector does not select the injector's pods")

    (configuration,) = [d for k, d in objects.items() if k[0] == "MutatingWebhookConfiguration"]
    (webhook,) = configuration["webhooks"]
    check(webhook.get("admissionReviewVersions") == ["v1"] and
          webhook.get("sideEffects") == "None" and
          webhook.get("failurePolicy") in ("Fail", "Ignore") and
          webhook.get("reinvocationPolicy") in ("Never", "IfNeeded") and
          1 <= webhook.get("timeoutSeconds", 0) <= 30, f"webhook: {webhook}")
    reference = webhook["clientConfig"]["service"]
    check(reference == {"name": "meshtls-injector", "namespace": namespace, "path": "/mutate",
                        "port": 443}, f"webhook: clientConfig.service {reference}")
    check(any(r.get("operations") == ["CREATE"] and r.get("resources") == ["pods"] and
              r.get("apiGroups") == [""] for r in webhook["rules"]), f"webhook: rules "
                                                                     f"{webhook['rules']}")
    expressions = webhook["namespaceSelector"]["matchExpressions"]
    check({"key": "meshtls.io/inject", "operator": "In", "values": ["enabled"]} in expressions and
          {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
           "values": [SYSTEM_NAMESPACE]} in expressions,
          f"webhook: namespaceSelector {expressions}")
    inject_from = configuration["metadata"].get("annotations", {}).get(
        "cert-manager.io/inject-ca-from", "")
    certificate_namespace, _, certificate_name = inject_from.partition("/")
    certificate = objects.get(("Certificate", certificate_namespace, certificate_name))
    check(certificate is not None, f"webhook: cert-manager.io/inject-ca-from {inject_from!r} "
                                   f"names no Certificate")
    check(tls_secret == [certificate["spec"]["secretName"]],
          f"injector: serves {tls_secret}, the webhook trusts {certificate['spec']['secretName']}")
    check(f"meshtls-injector.{namespace}.svc" in certificate["spec"].get("dnsNames", []),
          f"injector certificate: dnsNames {certificate['spec'].get('dnsNames')}")


def check_example(objects, meshed):
    deployment = the(objects, "Deployment", "catalog")
    namespace = deployment["metadata"]["namespace"]
    check(namespace in meshed, f"the example is in {namespace}, not a meshed namespace")
    template = deployment["spec"]["template"]
    check(template["metadata"].get("annotations", {}).get("meshtls.io/inject") == "enabled",
          "the example does not ask for injection by annotation")
    pod = template["spec"]
    check(not pod.get("volumes"), f"the example makes volumes of its own: {pod.get('volumes')}")
    for container in pod["containers"]:
        names = [e["name"] for e in container.get("env", [])]
        check(not any(n == "LD_PRELOAD" or n.startswith("MESHTLS_") for n in names),
              f"the example sets {names} itself")
        check(not container.get("volumeMounts") and
              "meshtls" not in " ".join(container.get("command", []) + container.get("args", [])),
              f"the example container {container['name']} overrides the entrypoint or mounts")


# --- the programs -------------------------------------------------------------------------------

DECISIONS = [
    # (direction, address, expected line start) for the shipped workload.conf
    ("outbound", "10.96.0.1:443", "plain (outbound.rules[0]"),      # the API server
    ("outbound", "10.96.0.10:53", "plain (skip_ports)"),            # DNS
    ("outbound", "10.244.3.7:8080", "auto (outbound.default)"),     # a pod: by the membership
    ("outbound", "10.100.20.5:80", "auto (outbound.default)"),      # a service: the same
    ("outbound", "10.244.3.7:443", "plain (outbound.rules[1]"),     # HTTPS of its own
    ("outbound", "203.0.113.10:443", "plain (outbound.rules[1]"),   # outside, HTTPS
    ("outbound", "203.0.113.10:5432", "auto (outbound.default)"),   # outside: not a member
    ("inbound", "10.244.3.7:8080", "strict (inbound.default)"),     # a pod calling in
]


def check_workload_config(config_map, mesh):
    path = os.path.join(mesh.dir, "workload.conf")
    with open(path, "w") as f:
        f.write(config_map["data"]["workload.conf"])
    result = subprocess.run([MESHTLS, "config", "check", path], capture_output=True, text=True,
                            env=base_env())
    check(result.returncode == 0, f"workload.conf does not load:\n{result.stdout}"
                                  f"{result.stderr}")
    for direction, address, expected in DECISIONS:
        result = subprocess.run([MESHTLS, "config", "decide", path, direction, address],
                                capture_output=True, text=True, env=base_env())
        line = result.stdout.strip()
        check(result.returncode == 0 and line.split(": ", 1)[-1].startswith(expected),
              f"workload.conf: {direction} {address}: {line!r}{result.stderr}, expected "
              f"{expected}")


def check_agent_probe(objects, values, namespace, container, mesh):
    """The agent starts with its ConfigMap's configuration, and the probe's command answers 0
    against it and non-zero against a socket nobody serves."""
    config = container["volumeMounts"]
    (volume,) = [v for v in the(objects, "DaemonSet", "meshtls-agent")["spec"]["template"]
                 ["spec"]["volumes"] if any(m["name"] == v["name"] and
                                            values["--config"].startswith(m["mountPath"] + "/")
                                            for m in config)]
    data = objects[("ConfigMap", namespace, volume["configMap"]["name"])]["data"]
    path = os.path.join(mesh.dir, "agent.conf")
    with open(path, "w") as f:
        f.write(data[os.path.basename(values["--config"])])
    sock = os.path.join(mesh.dir, "agent.sock")
    agent = mesh.spawn("agent", [AGENT, "--socket", sock, "--state-dir",
                                 os.path.join(mesh.dir, "state"), "--config", path,
                                 "--metrics-address", "off"])
    wait_agent_ready(agent, sock, "the agent with the DaemonSet's configuration")
    command = container["readinessProbe"]["exec"]["command"]
    probe = [MESHTLS] + command[1:-1] + [sock]
    result = subprocess.run(probe, capture_output=True, text=True, env=base_env(), timeout=30)
    check(result.returncode == 0, f"the probe fails against a running agent:\n{result.stderr}")
    result = subprocess.run(probe[:-1] + [os.path.join(mesh.dir, "nobody.sock")],
                            capture_output=True, text=True, env=base_env(), timeout=30)
    check(result.returncode != 0, "the probe passes without an agent")


def check_images_override():
    with tempfile.TemporaryDirectory(prefix="meshtls-kustomize-") as directory:
        copy = os.path.join(directory, "kubernetes")
        shutil.copytree(MANIFESTS, copy)
        with open(os.path.join(copy, "kustomization.yaml")) as f:
            kustomization = yaml.safe_load(f)
        digest = "sha256:" + "ab" * 32
        kustomization["images"] = [
            {"name": "meshtls-agent", "newName": "registry.example.com/meshtls/agent",
             "newTag": "9.9.9"},
            {"name": "meshtls-injector", "newName": "registry.example.com/meshtls/injector",
             "digest": digest}]
        with open(os.path.join(copy, "kustomization.yaml"), "w") as f:
            yaml.safe_dump(kustomization, f)
        images = {}
        for document in render(copy):
            spec = document.get("spec", {}).get("template", {}).get("spec", {})
            for container in spec.get("initContainers", []) + spec.get("containers", []):
                images[(document["metadata"]["name"], container["name"])] = container["image"]
    expected = {("meshtls-agent", "install-node-files"): "registry.example.com/meshtls/agent:9.9.9",
                ("meshtls-agent", "agent"): "registry.example.com/meshtls/agent:9.9.9",
                ("meshtls-injector", "injector"):
                    f"registry.example.com/meshtls/injector@{digest}"}
    for key, image in expected.items():
        check(images.get(key) == image, f"images override: {key} runs {images.get(key)}, "
                                        f"expected {image}")
    check(not any("meshtls-agent:" in i or "meshtls-injector:" in i for i in images.values()),
          f"images override: an image was not replaced: {images}")


def test():
    check_kustomization()
    documents = render(MANIFESTS)
    objects = index(documents)
    for document in documents:
        if KINDS[document["kind"]][1] is None:
            validate_cert_manager(document, objects)
        else:
            validate_model(document)
    meshed = check_namespaces(objects)
    values, namespace, container, workload_config = check_daemonset(objects)
    check_injector(objects)
    check_example(objects, meshed)
    with Mesh("packaging-kubernetes") as mesh:
        check_workload_config(workload_config, mesh)
        check_agent_probe(objects, values, namespace, container, mesh)
    check_images_override()
    print(f"{len(documents)} objects rendered by {kubectl()}: kinds "
          f"{sorted({k[0] for k in objects})}; DaemonSet flags {sorted(values)}")


if __name__ == "__main__":
    main(test)
