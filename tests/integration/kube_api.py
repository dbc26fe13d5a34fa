"""A stand-in for the Kubernetes API server's list and watch of pods and Services, over HTTPS on
loopback with a test CA, as the agent's membership source meets it (agent/kube_watch.c).

GET /api/v1/{pods,services}?limit=N[&continue=T] answers a v1 PodList / ServiceList page (at most
PAGE items, whatever limit asks, so that paging is exercised), metadata.resourceVersion the
current one. GET ...?watch=1&resourceVersion=RV streams, chunked, one JSON WatchEvent per line:
every event after RV, then each new one as it happens, until close_watches() or stop(). A watch
from before the last compact() gets an ERROR event whose object is a Status with code 410 (or,
with gone_as_http, an HTTP 410), as the real server does for a compacted resourceVersion.
"""

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import ssl

from harness import free_port
from test_k8s_pods import RSA, make_kubelet_ca, make_kubelet_certificate

TOKEN = "api-server-test-token"
PAGE = 2
KINDS = {"pods": "PodList", "services": "ServiceList"}


def pod(namespace, name, ip, service_account="default", injected=True, labels=None,
        phase="Running", host_network=False, ip6=None):
    """A v1 Pod; ip6: a second address (dual-stack)."""
    annotations = {"meshtls.io/injected": "true"} if injected else {}
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                     "labels": labels or {}, "annotations": annotations},
        "spec": {"serviceAccountName": service_account, "hostNetwork": host_network,
                 "containers": [{"name": "main", "image": "registry.test/app:1"}]},
        "status": {"phase": phase, "podIP": ip,
                   "podIPs": [{"ip": ip}] + ([{"ip": ip6}] if ip6 else [])},
    }


def service(namespace, name, cluster_ip, ports, selector):
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-svc-{namespace}-{name}"},
        "spec": {"selector": selector, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "type": "ClusterIP",
                 "ports": [{"port": p, "protocol": "TCP", "targetPort": p} for p in ports]},
    }


class ApiServer:
    def __init__(self, directory):
        self.ca, ca_key = make_kubelet_ca(directory, RSA, "api-ca")
        cert, key = make_kubelet_certificate(directory, self.ca, ca_key, "api-server",
                                             "IP:127.0.0.1", RSA)
        self.token_file = f"{directory}/api-token"
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.lock = threading.Condition()
        self.version = 100
        self.objects = {"pods": {}, "services": {}}
        self.events = {"pods": [], "services": []}  # (version, type, object)
        self.compacted = 0         # watches from before this version get 410
        self.watch_epoch = 0       # close_watches() ends the streams of earlier epochs
        self.gone_as_http = False
        self.list_delay = 0.0      # seconds every LIST waits before it answers (a slow start)
        self.requests = []         # (kind, "list"|"watch", query dict)
        self.stopping = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                kind = url.path.rsplit("/", 1)[-1]
                if self.headers.get("Authorization", "") != f"Bearer {TOKEN}":
                    return self.answer(401, {"kind": "Status", "code": 401})
                if url.path not in ("/api/v1/pods", "/api/v1/services"):
                    return self.answer(404, {"kind": "Status", "code": 404})
                with api.lock:
                    api.requests.append((kind, "watch" if query.get("watch") else "list", query))
                if query.get("watch"):
                    return self.watch(kind, int(query.get("resourceVersion", "0")))
                return self.list(kind, query)

            def answer(self, status, document):
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def list(self, kind, query):
                if api.list_delay:
                    time.sleep(api.list_delay)
                with api.lock:
                    items = sorted(api.objects[kind].items())
                    version = api.version
                start = int(query.get("continue") or 0)
                limit = min(int(query.get("limit") or 1 << 30), PAGE)
                page = [obj for _, obj in items[start:start + limit]]
                more = start + limit < len(items)
                self.answer(200, {"kind": KINDS[kind], "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(version),
                                               **({"continue": str(start + limit)} if more
                                                  else {})},
                                  "items": page})

            def chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def watch(self, kind, since):
                with api.lock:
                    gone = since < api.compacted
                    epoch = api.watch_epoch
                if gone and api.gone_as_http:
                    return self.answer(410, {"kind": "Status", "code": 410, "reason": "Expired"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if gone:
                        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "message": f"too old resource version: {since}",
                                  "reason": "Expired", "code": 410}
                        self.chunk(json.dumps({"type": "ERROR", "object": status}).encode() +
                                   b"\n")
                    else:
                        sent = since
                        while True:
                            with api.lock:
                                pending = [e for e in api.events[kind] if e[0] > sent]
                                if not pending:
                                    if api.stopping or api.watch_epoch != epoch:
                                        break
                                    api.lock.wait(0.2)
                                    continue
                            for version, event_type, obj in pending:
                                self.chunk(json.dumps({"type": event_type, "object": obj})
                                           .encode() + b"\n")
                                sent = version
                    self.chunk(b"")
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, *arguments):
                pass

        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def flags(self):
        return ["--kube-api-url", self.url, "--kube-api-token-file", self.token_file,
                "--kube-api-ca-file", self.ca]

    def _record(self, kind, event_type, obj):
        self.version += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.events[kind].append((self.version, event_type, obj))
        self.lock.notify_all()
        return obj

    def put(self, kind, obj, quietly=False):
        """ADDED or MODIFIED; quietly: in the state only (what a relist will see)."""
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self.lock:
            if quietly:
                self.version += 1
                self.objects[kind][key] = obj
                return
            event_type = "MODIFIED" if key in self.objects[kind] else "ADDED"
            self.objects[kind][key] = self._record(kind, event_type, obj)

    def delete(self, kind, namespace, name, quietly=False):
        with self.lock:
            obj = self.objects[kind].pop((namespace, name))
            if quietly:
                self.version += 1
            else:
                self._record(kind, "DELETED", obj)

    def bookmark(self, kind):
        """A BOOKMARK at a new version (nothing else changed); returns that version."""
        with self.lock:
            self.version += 1
            self.events[kind].append((self.version, "BOOKMARK", {
                "kind": "Pod" if kind == "pods" else "Service", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.version)}}))
            self.lock.notify_all()
            return self.version

    def compact(self):
        """Every version so far becomes too old to watch from, and the open watches end."""
        with self.lock:
            self.compacted = self.version + 1
            self.version += 1
            for kind in self.events:
                self.events[kind] = []
            self.watch_epoch += 1
            self.lock.notify_all()

    def close_watches(self):
        with self.lock:
            self.watch_epoch += 1
            self.lock.notify_all()

    def requests_of(self, kind, what):
        with self.lock:
            return [q for k, w, q in self.requests if k == kind and w == what]

    def stop(self):
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()
