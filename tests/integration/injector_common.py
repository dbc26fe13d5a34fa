"""meshtls-injector for the tests: a test certificate made with openssl, the built webhook started
on loopback with it, AdmissionReviews posted over HTTPS (the certificate checked, as the API
server checks the webhook's caBundle), the returned JSON Patch applied with python3-jsonpatch, and
patched pods checked against the Kubernetes API models of python3-kubernetes."""

import base64
import http.client
import json
import os
import ssl
import subprocess

import jsonpatch
from kubernetes import client as kubernetes_client

from harness import ASAN_RUNTIME, BUILD, base_env, check, free_port, port_open, wait_for

INJECTOR = os.path.join(BUILD, "meshtls-injector")
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(SOURCE, "tests", "data", "k8s")


def make_certificate(directory, name, common_name="meshtls-injector.meshtls-system.svc"):
    """A self-signed P-256 certificate for 127.0.0.1 and the Service's DNS name; returns the
    paths of the certificate and of its key."""
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={common_name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:meshtls-injector.meshtls-system.svc"],
        capture_output=True, text=True, timeout=60)
    check(result.returncode == 0, f"openssl req failed: {result.stderr}")
    return cert, key


def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


class Injector:
    """A running meshtls-injector on 127.0.0.1 and a client that trusts its certificate."""

    def __init__(self, mesh, name, cert, key, inject_default="disabled", trusted=None):
        self.port = free_port()
        self.cert = cert
        self.trusted = trusted or cert
        env = base_env()
        if ASAN_RUNTIME:
            # It links the sanitizer runtime itself; its leaks are ours and fail stop().
            env.pop("LD_PRELOAD", None)
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        self.process = mesh.spawn(name, [INJECTOR, "--listen", f"127.0.0.1:{self.port}",
                                         "--tls-cert", cert, "--tls-key", key,
                                         "--inject-default", inject_default], env=env)
        wait_for(lambda: port_open(self.port) or self.process.popen.poll() is not None, 20,
                 f"{name} to listen on 127.0.0.1:{self.port}")
        check(self.process.popen.poll() is None, f"{name} exited:\n{self.process.stderr()}")

    def stop(self):
        """Ends it with SIGTERM: a clean exit (0), with no sanitizer report."""
        self.process.popen.terminate()
        status = self.process.wait(20)
        stderr = self.process.stderr()
        check(status == 0 and "Sanitizer" not in stderr,
              f"{self.process.name} exited {status} on SIGTERM:\n{stderr[-4000:]}")

    def context(self, cafile=None):
        context = ssl.create_default_context(cafile=cafile or self.trusted)
        return context

    def request(self, method, path, body=None, cafile=None):
        """(status, content type, body bytes) of one request on a new connection."""
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=20,
                                                 context=self.context(cafile))
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), response.read()
        finally:
            connection.close()

    def review(self, document):
        """The AdmissionReview answered for document (a dict), checked to be one."""
        status, content_type, body = self.request("POST", "/mutate", json.dumps(document))
        check(status == 200, f"POST /mutate answered {status}: {body[:500]!r}")
        check(content_type == "application/json", f"answer's Content-Type is {content_type}")
        answer = json.loads(body)
        check(answer.get("apiVersion") == "admission.k8s.io/v1" and
              answer.get("kind") == "AdmissionReview", f"not an AdmissionReview v1: {answer}")
        response = answer["response"]
        check(response["uid"] == document["request"]["uid"],
              f"response.uid {response['uid']} is not the request's {document['request']['uid']}")
        return response


def decoded_patch(response):
    """The JSON Patch of an allowed response, or None when it has none."""
    check(response.get("allowed") is True, f"pod not allowed: {response}")
    if "patch" not in response:
        check("patchType" not in response, f"patchType without a patch: {response}")
        return None
    check(response.get("patchType") == "JSONPatch", f"patchType is {response.get('patchType')}")
    return json.loads(base64.b64decode(response["patch"], validate=True))


def apply(pod, patch):
    """pod with patch applied (RFC 6902, jsonpatch); a patch that does not apply fails."""
    try:
        return jsonpatch.JsonPatch(patch).apply(pod, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        check(False, f"the patch does not apply: {error}\npatch: {json.dumps(patch, indent=1)}")


class _Response:
    """What ApiClient.deserialize reads: a body in .data."""

    def __init__(self, data):
        self.data = data


# Fields of the API newer than Debian 12's python3-kubernetes (22.6, Kubernetes 1.22): gRPC
# probes (Kubernetes 1.24). The models drop them; they are checked by the tests themselves.
NEWER_THAN_CLIENT = {"grpc"}


def _differences(pod, model, path=""):
    """Where pod and the model serialized again differ: paths of fields the model dropped or
    changed (None values are not serialized and not compared)."""
    if isinstance(pod, dict) and isinstance(model, dict):
        found = []
        for key, value in pod.items():
            if value is None:
                continue
            if key not in model:
                if key not in NEWER_THAN_CLIENT:
                    found.append(f"{path}.{key}")
                continue
            found += _differences(value, model[key], f"{path}.{key}")
        return found + [f"{path}.{key} (added)" for key in model if key not in pod]
    if isinstance(pod, list) and isinstance(model, list) and len(pod) == len(model):
        return [d for i, (a, b) in enumerate(zip(pod, model))
                for d in _differences(a, b, f"{path}[{i}]")]
    return [] if pod == model else [f"{path}: {pod!r} became {model!r}"]


def validate_pod(pod):
    """Checks pod against the Kubernetes API models (kubernetes.client V1Pod with client-side
    validation: required fields and enumerations), that nothing in it is unknown to them (the
    model serialized again is the pod: a misspelt field would be dropped), that every
    volumeMount names a volume of the pod, that volume names are unique, and that each
    container's env names and mount paths are unique. Returns the V1Pod."""
    api = kubernetes_client.ApiClient()
    try:
        model = api.deserialize(_Response(json.dumps(pod)), "V1Pod")
    except (ValueError, TypeError) as error:
        check(False, f"the patched pod is not a valid V1Pod: {error}")
    differences = _differences(pod, api.sanitize_for_serialization(model))
    check(not differences, f"the patched pod has fields the V1Pod model does not know or "
                           f"reads otherwise: {differences}")
    volumes = [v["name"] for v in pod["spec"].get("volumes", [])]
    check(len(volumes) == len(set(volumes)), f"volume names repeat: {volumes}")
    for kind in ("initContainers", "containers"):
        for container in pod["spec"].get(kind, []):
            names = [e["name"] for e in container.get("env", [])]
            check(len(names) == len(set(names)), f"{container['name']}: env names repeat: {names}")
            mounts = container.get("volumeMounts", [])
            paths = [m["mountPath"] for m in mounts]
            check(len(paths) == len(set(paths)),
                  f"{container['name']}: mount paths repeat: {paths}")
            for mount in mounts:
                check(mount["name"] in volumes,
                      f"{container['name']}: volumeMount {mount['name']} names no volume")
    return model
