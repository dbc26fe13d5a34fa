"""meshtls-injector, the mutating admission webhook, against real AdmissionReview documents
(tests/data/k8s): a Deployment's pod with init containers, named probe ports, its own env,
LD_PRELOAD and volumes; a pod with no volumes, env or annotations at all; a musl pod with its own
ConfigMap; a disabled pod, an already injected pod, a pod with skipped containers. Each answer's
JSON Patch is applied with jsonpatch and the result checked field by field and against the
Kubernetes API models. Pods that ask for the mesh but cannot have it are denied with the reason;
malformed reviews get 400 with what is wrong, oversized ones 413. The certificate is replaced
under the running webhook (as a cert-manager Secret volume swaps its files) and served without a
restart; a pair that does not load is refused and the previous one kept. Start-up errors name the
flag or file."""

import copy
import json
import os
import shutil
import subprocess
import time

from harness import Mesh, base_env, check, free_port, main, wait_for
from injector_common import (INJECTOR, Injector, apply, decoded_patch, load_fixture,
                             make_certificate, validate_pod)

GLIBC_PRELOAD = "/var/lib/meshtls/lib/libmeshtls-preload.so"
MUSL_PRELOAD = "/var/lib/meshtls/lib/libmeshtls-preload-musl.so"
NODE_CONFIG = "/var/lib/meshtls/workload.conf"
MAP_CONFIG = "/etc/meshtls/workload/meshtls.conf"
OURS = {"meshtls-socket": "/run/meshtls", "meshtls-lib": "/var/lib/meshtls"}


def pod_of(review):
    return review["request"]["object"]


def containers(pod):
    """(kind, container) of every init container and container."""
    spec = pod["spec"]
    return [(k, c) for k in ("initContainers", "containers") for c in spec.get(k, [])]


def by_name(pod, name):
    for _, container in containers(pod):
        if container["name"] == name:
            return container
    check(False, f"no container {name} in the patched pod")


def check_volumes(original, patched, config_map=None):
    before = original["spec"].get("volumes", [])
    after = patched["spec"]["volumes"]
    check(after[:len(before)] == before, f"the pod's own volumes changed: {after}")
    added = {v["name"]: v for v in after[len(before):]}
    expected = {name: {"name": name, "hostPath": {"path": path, "type": "Directory"}}
                for name, path in OURS.items()}
    if config_map:
        expected["meshtls-config"] = {"name": "meshtls-config", "configMap": {
            "name": config_map, "items": [{"key": "meshtls.conf", "path": "meshtls.conf"}]}}
    check(added == expected, f"volumes added: {added}, expected {expected}")


def check_annotations(original, patched):
    before = original["metadata"].get("annotations", {})
    after = patched["metadata"]["annotations"]
    check(after == {**before, "meshtls.io/injected": "true"},
          f"annotations after the patch: {after} (before: {before})")
    rest = {k: v for k, v in patched["metadata"].items() if k != "annotations"}
    check(rest == {k: v for k, v in original["metadata"].items() if k != "annotations"},
          "metadata other than annotations changed")


def check_injected(original_container, container, preload, config, probe_ports,
                   config_map=False):
    name = container["name"]
    unchanged = {k: v for k, v in container.items() if k not in ("env", "volumeMounts")}
    check(unchanged == {k: v for k, v in original_container.items()
                        if k not in ("env", "volumeMounts")},
          f"{name}: fields other than env and volumeMounts changed")
    # Mounts: the container's own first, then ours, read-only.
    before = original_container.get("volumeMounts", [])
    mounts = container["volumeMounts"]
    check(mounts[:len(before)] == before, f"{name}: its own volumeMounts changed: {mounts}")
    expected = [{"name": n, "mountPath": p, "readOnly": True} for n, p in OURS.items()]
    if config_map:
        expected.append({"name": "meshtls-config", "mountPath": "/etc/meshtls/workload",
                         "readOnly": True})
    check(mounts[len(before):] == expected, f"{name}: mounts added {mounts[len(before):]}")
    # Environment: the container's own entries kept in place (LD_PRELOAD prepended), ours after.
    env = {e["name"]: e for e in container["env"]}
    own = original_container.get("env", [])
    for index, entry in enumerate(own):
        if entry["name"] != "LD_PRELOAD":
            check(container["env"][index] == entry, f"{name}: its env {entry['name']} changed")
    own_preload = next((e.get("value", "") for e in own if e["name"] == "LD_PRELOAD"), "")
    wanted_preload = f"{preload}:{own_preload}" if own_preload else preload
    check(env["LD_PRELOAD"] == {"name": "LD_PRELOAD", "value": wanted_preload},
          f"{name}: LD_PRELOAD is {env['LD_PRELOAD']}, expected {wanted_preload}")
    check(env["MESHTLS_AGENT_SOCKET"]["value"] == "/run/meshtls/agent.sock",
          f"{name}: MESHTLS_AGENT_SOCKET {env['MESHTLS_AGENT_SOCKET']}")
    check(env["MESHTLS_CONFIG"]["value"] == config,
          f"{name}: MESHTLS_CONFIG {env['MESHTLS_CONFIG']}, expected {config}")
    check(env["MESHTLS_PROBE_SOURCES"] == {"name": "MESHTLS_PROBE_SOURCES", "valueFrom": {
              "fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}}},
          f"{name}: MESHTLS_PROBE_SOURCES {env['MESHTLS_PROBE_SOURCES']}")
    if probe_ports is None:
        check("MESHTLS_PROBE_PORTS" not in env, f"{name}: MESHTLS_PROBE_PORTS without probes")
    else:
        check(env.get("MESHTLS_PROBE_PORTS", {}).get("value") == probe_ports,
              f"{name}: MESHTLS_PROBE_PORTS {env.get('MESHTLS_PROBE_PORTS')}, "
              f"expected {probe_ports}")


def check_rest_of_spec(original, patched, skipped=()):
    """Nothing but volumes and the injected containers changed in the spec."""
    for key in set(original["spec"]) | set(patched["spec"]):
        if key not in ("volumes", "initContainers", "containers"):
            check(original["spec"].get(key) == patched["spec"].get(key), f"spec.{key} changed")
    for kind, container in containers(original):
        if container["name"] in skipped:
            check(by_name(patched, container["name"]) == container,
                  f"skipped container {container['name']} was changed")
    check([c["name"] for _, c in containers(original)] ==
          [c["name"] for _, c in containers(patched)], "containers were added or reordered")
    check(original.get("status") == patched.get("status"), "status changed")


def injected(injector, fixture):
    """(original pod, raw patch, patched pod) for a fixture that must be injected."""
    review = load_fixture(fixture)
    patch = decoded_patch(injector.review(review))
    check(patch is not None, f"{fixture}: no patch for a pod to inject")
    for operation in patch:
        check(operation["op"] in ("add", "replace"), f"{fixture}: operation {operation}")
    original = pod_of(review)
    patched = apply(original, patch)
    validate_pod(patched)
    return original, patch, patched


def unchanged(injector, fixture, document=None):
    review = document or load_fixture(fixture)
    check(decoded_patch(injector.review(review)) is None, f"{fixture}: patched, must not be")


def denied(injector, document, expected):
    response = injector.review(document)
    check(response.get("allowed") is False and "patch" not in response,
          f"not denied: {response}")
    message = response.get("status", {}).get("message", "")
    check(expected in message, f"denial message {message!r} lacks {expected!r}")


def test_deployment_pod(enabled, disabled):
    # No meshtls.io/inject: injected where the namespace selects pods (--inject-default enabled).
    original, patch, patched = injected(enabled, "review-deployment-pod.json")
    check_volumes(original, patched)
    check_annotations(original, patched)
    check_rest_of_spec(original, patched)
    # An annotation added into existing annotations: "/" in its key escaped (RFC 6901).
    check({"op": "add", "path": "/metadata/annotations/meshtls.io~1injected", "value": "true"}
          in patch, f"annotation not added by its escaped pointer: {patch}")
    check_injected(by_name(original, "migrate"), by_name(patched, "migrate"), GLIBC_PRELOAD,
                   NODE_CONFIG, None)
    # Named ports resolved: admin (liveness) 9901, http (readiness) and the startup probe 8080.
    check_injected(by_name(original, "web"), by_name(patched, "web"), GLIBC_PRELOAD,
                   NODE_CONFIG, "8080,9901")
    # The grpc probe's port; the exec probe has none. Its own MESHTLS_CONFIG wins.
    check_injected(by_name(original, "grpc-api"), by_name(patched, "grpc-api"), GLIBC_PRELOAD,
                   "/etc/api/meshtls.conf", "50051")
    # The same pod where no namespace default applies.
    unchanged(disabled, "review-deployment-pod.json")


def test_bare_pod(enabled):
    original, patch, patched = injected(enabled, "review-bare-pod.json")
    paths = [operation["path"] for operation in patch]
    for created in ("/spec/volumes", "/spec/containers/0/volumeMounts", "/spec/containers/0/env",
                    "/metadata/annotations"):
        check(created in paths, f"{created} not created whole in {paths}")
    check_volumes(original, patched)
    check_annotations(original, patched)
    check_rest_of_spec(original, patched)
    check_injected(by_name(original, "report"), by_name(patched, "report"), GLIBC_PRELOAD,
                   NODE_CONFIG, None)
    # A pod with no metadata.annotations and no metadata at all.
    review = load_fixture("review-bare-pod.json")
    del pod_of(review)["metadata"]
    patched = apply(pod_of(review), decoded_patch(enabled.review(review)))
    check(patched["metadata"] == {"annotations": {"meshtls.io/injected": "true"}},
          f"metadata made for a pod without: {patched['metadata']}")


def test_musl_pod(disabled):
    original, _, patched = injected(disabled, "review-musl-pod.json")
    check_volumes(original, patched, config_map="gateway-mesh")
    check_annotations(original, patched)
    check_rest_of_spec(original, patched)
    # Its LD_PRELOAD is empty: ours alone. The readiness probe's port is named https.
    check_injected(by_name(original, "gateway"), by_name(patched, "gateway"), MUSL_PRELOAD,
                   MAP_CONFIG, "8443", config_map=True)


def test_skip_containers(disabled):
    original, _, patched = injected(disabled, "review-skip-pod.json")
    check_rest_of_spec(original, patched, skipped=("wait-for-db", "cloud-sql-proxy"))
    check_injected(by_name(original, "seed"), by_name(patched, "seed"), GLIBC_PRELOAD,
                   NODE_CONFIG, None)
    check_injected(by_name(original, "orders"), by_name(patched, "orders"), GLIBC_PRELOAD,
                   NODE_CONFIG, "8000")


def test_not_injected(enabled, disabled):
    for injector in (enabled, disabled):
        unchanged(injector, "review-disabled-pod.json")
        unchanged(injector, "review-injected-pod.json")
    # Only a pod being created is patched.
    review = load_fixture("review-bare-pod.json")
    review["request"]["operation"] = "UPDATE"
    unchanged(enabled, "review-bare-pod.json (UPDATE)", review)


def test_denied(enabled):
    """Pods that want the mesh but cannot have it as they are: denied, never admitted plain."""
    def variant(fixture, change):
        review = load_fixture(fixture)
        change(pod_of(review))
        return review

    def annotate(key, value):
        return lambda pod: pod["metadata"].setdefault("annotations", {}).__setitem__(key, value)

    denied(enabled, variant("review-bare-pod.json", annotate("meshtls.io/inject", "yes")),
           'meshtls.io/inject: "yes" is neither enabled nor disabled')
    denied(enabled, variant("review-bare-pod.json", annotate("meshtls.io/libc", "uclibc")),
           'meshtls.io/libc: "uclibc" is neither musl nor glibc')
    denied(enabled, variant("review-bare-pod.json", annotate("meshtls.io/config-map", "Bad_Name")),
           'meshtls.io/config-map: "Bad_Name" is not a ConfigMap name')

    def preload_from_secret(pod):
        pod["spec"]["containers"][0]["env"] = [
            {"name": "LD_PRELOAD", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}]
    denied(enabled, variant("review-bare-pod.json", preload_from_secret),
           'container "report" takes LD_PRELOAD from valueFrom')

    def unknown_port(pod):
        pod["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"port": "metrics"}}
    denied(enabled, variant("review-bare-pod.json", unknown_port),
           'container "report": livenessProbe.httpGet.port "metrics" names no port')

    def taken_volume(pod):
        pod["spec"]["volumes"] = [{"name": "meshtls-lib", "emptyDir": {}}]
    denied(enabled, variant("review-bare-pod.json", taken_volume),
           'the pod already has a volume named "meshtls-lib"')

    def taken_path(pod):
        pod["spec"]["volumes"] = [{"name": "run", "emptyDir": {}}]
        pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "run",
                                                         "mountPath": "/run/meshtls"}]
    denied(enabled, variant("review-bare-pod.json", taken_path),
           'container "report" already mounts a volume at /run/meshtls')


def test_malformed(injector):
    good = load_fixture("review-bare-pod.json")

    def changed(change):
        review = copy.deepcopy(good)
        change(review)
        return json.dumps(review).encode()

    cases = [
        (b"this is not json", "the body is not JSON"),
        (b"", "the body is empty"),
        (json.dumps(good).encode()[:-10], "the body is not JSON: it ends inside a value"),
        # Strict json-c refuses what follows the document as it reads it.
        (json.dumps(good).encode() + b" {}", "the body is not JSON: unexpected character"),
        (b"[" * 200 + b"]" * 200, "the body is not JSON"),
        (b"[]", "the body is not a JSON object (an AdmissionReview)"),
        (changed(lambda r: r.__setitem__("apiVersion", "admission.k8s.io/v1beta1")),
         'apiVersion is "admission.k8s.io/v1beta1", not admission.k8s.io/v1'),
        (changed(lambda r: r.pop("apiVersion")), "apiVersion is missing"),
        (changed(lambda r: r.__setitem__("kind", "Pod")), 'kind is "Pod", not AdmissionReview'),
        (changed(lambda r: r.pop("request")), "request is missing or not an object"),
        (changed(lambda r: r["request"].pop("uid")), "request.uid is missing or empty"),
        (changed(lambda r: r["request"].__setitem__("uid", "")), "request.uid is missing or empty"),
        (changed(lambda r: r["request"].__setitem__(
            "kind", {"group": "apps", "version": "v1", "kind": "Deployment"})),
         'request.kind is "Deployment", not a Pod'),
        (changed(lambda r: r["request"].pop("object")),
         "request.object is missing or not an object (a Pod)"),
        (changed(lambda r: r["request"]["object"].__setitem__("kind", "Service")),
         'request.object is a "Service", not a Pod'),
    ]
    for body, expected in cases:
        status, content_type, answer = injector.request("POST", "/mutate", body)
        text = answer.decode(errors="replace")
        check(status == 400, f"{body[:80]!r}: answered {status}, not 400: {text}")
        check(expected in text, f"{body[:80]!r}: 400 says {text!r}, not {expected!r}")
        check("allowed" not in text, f"a 400 answer that looks like a review: {text}")
    status, _, answer = injector.request("POST", "/mutate", b" " * (4 * 1024 * 1024 + 1))
    check(status == 413, f"a 4 MiB + 1 byte body answered {status}: {answer[:200]!r}")
    status, _, answer = injector.request("GET", "/healthz")
    check(status == 200 and b"ok" in answer, f"GET /healthz: {status} {answer!r}")
    check(injector.request("GET", "/mutate")[0] == 405, "GET /mutate not refused with 405")
    check(injector.request("POST", "/validate", b"{}")[0] == 404, "an unknown path is not 404")


def serves(injector, cafile):
    """True when a new connection verifies the served certificate against cafile."""
    try:
        return injector.request("GET", "/healthz", cafile=cafile)[0] == 200
    except OSError:
        return False


def test_certificate_rotation(mesh):
    """The files swapped as a Secret volume swaps them (a symlinked directory replaced at once):
    new connections get the new certificate with no restart; a pair that does not load is
    refused and the one served kept."""
    secret = os.path.join(mesh.dir, "secret")
    os.mkdir(secret)
    first = os.path.join(secret, "..2026_01")
    second = os.path.join(secret, "..2026_02")
    broken = os.path.join(secret, "..2026_03")
    for directory in (first, second, broken):
        os.mkdir(directory)
    first_cert, _ = make_certificate(first, "tls")
    second_cert, _ = make_certificate(second, "tls")
    # A key that is not the certificate's.
    shutil.copy(second_cert, os.path.join(broken, "tls.crt"))
    make_certificate(broken, "other")
    os.rename(os.path.join(broken, "other.key"), os.path.join(broken, "tls.key"))
    data = os.path.join(secret, "..data")

    def point_to(directory):
        link = data + ".new"
        os.symlink(os.path.basename(directory), link)
        os.replace(link, data)

    point_to(first)
    injector = Injector(mesh, "injector-rotation", os.path.join(data, "tls.crt"),
                        os.path.join(data, "tls.key"), trusted=first_cert)
    check(serves(injector, first_cert), "the first certificate is not served")
    check(not serves(injector, second_cert), "the second certificate verifies before rotation")
    point_to(second)
    wait_for(lambda: serves(injector, second_cert), 15, "the new certificate to be served")
    check(not serves(injector, first_cert), "the old certificate is still served")
    check("serving the new certificate" in injector.process.stderr(),
          f"the rotation is not logged:\n{injector.process.stderr()}")
    point_to(broken)
    wait_for(lambda: "do not load" in injector.process.stderr(), 15,
             "the mismatched pair to be refused")
    check("do not match" in injector.process.stderr(),
          f"the refusal does not say why:\n{injector.process.stderr()}")
    check(serves(injector, second_cert), "the last good certificate is not served any more")
    check(injector.process.popen.poll() is None, "the webhook exited on a bad pair")
    injector.stop()


def test_start_errors(mesh, cert, key):
    def run(*args):
        result = subprocess.run([INJECTOR, *args], capture_output=True, text=True, timeout=30,
                                env=base_env())
        return result.returncode, result.stderr

    missing = os.path.join(mesh.dir, "missing.crt")
    other_cert, other_key = make_certificate(mesh.dir, "other")
    cases = [
        (["--tls-cert", missing, "--tls-key", key], 1,
         f"--tls-cert {missing}: No such file or directory"),
        (["--tls-cert", key, "--tls-key", key], 1,
         f'--tls-cert {key}: no PEM block with "CERTIFICATE-----"'),
        (["--tls-cert", cert, "--tls-key", cert], 1,
         f'--tls-key {cert}: no PEM block with "PRIVATE KEY-----"'),
        (["--tls-cert", cert, "--tls-key", other_key, "--listen", f"127.0.0.1:{free_port()}"], 1,
         "do not match"),
        (["--tls-cert", cert, "--tls-key", key, "--listen", "localhost:8443"], 1,
         '--listen "localhost:8443" is not a numeric host:port'),
        (["--tls-cert", cert, "--tls-key", key, "--inject-default", "yes"], 2,
         '--inject-default: "yes" is neither enabled nor disabled'),
        (["--tls-cert", cert], 2, "--tls-cert and --tls-key are required"),
        (["--tls-cert", cert, "--tls-key", key, "--bogus"], 2, "usage:"),
    ]
    for args, status, expected in cases:
        code, stderr = run(*args)
        check(code == status and expected in stderr,
              f"meshtls-injector {' '.join(args)}: exit {code}, expected {status} with "
              f"{expected!r}:\n{stderr}")
    code, stderr = run("--help")
    check(code == 0, f"--help exits {code}")
    del other_cert


def test():
    with Mesh("injector") as mesh:
        cert, key = make_certificate(mesh.dir, "injector")
        enabled = Injector(mesh, "injector-enabled", cert, key, inject_default="enabled")
        disabled = Injector(mesh, "injector-disabled", cert, key)
        test_deployment_pod(enabled, disabled)
        test_bare_pod(enabled)
        test_musl_pod(disabled)
        test_skip_containers(disabled)
        test_not_injected(enabled, disabled)
        test_denied(enabled)
        test_malformed(enabled)
        test_start_errors(mesh, cert, key)
        test_certificate_rotation(mesh)
        for injector in (enabled, disabled):
            check(injector.process.popen.poll() is None,
                  f"{injector.process.name} exited:\n{injector.process.stderr()}")
            injector.stop()
        log = enabled.process.stderr()
        check("shop/web-6d8f7c9b54-*: injected 3 containers (0 skipped, glibc preload)" in log,
              f"the injection is not logged:\n{log}")


if __name__ == "__main__":
    main(test)
