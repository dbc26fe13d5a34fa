"""The diagnostics of the `meshtls` CLI, end to end: `meshtls check`, `meshtls config check` and
`meshtls id`.

  - `meshtls check` says a dynamically linked glibc program (/usr/bin/curl, by path and by PATH
    lookup) can be interposed (exit 0), and says why not (exit 1) for a statically linked program
    (built here with `cc -static`), a set-user-ID program (/usr/bin/passwd), and a missing file;
    a #! script is judged by its interpreter. The verdicts are then checked against reality: the
    same small C TCP client, built dynamically and statically, is run under `meshtls run` against
    a strict meshed echo server: the dynamic one gets mTLS through the preload and its echo; the
    static one, which no preload can enter, gets mTLS through the system-call supervisor and its
    echo too (the server logs its identity).
  - `meshtls config check FILE` on a good file with rules exits 0 and prints the effective policy
    as libconfig text that loads back to the same policy; on bad files it exits 2 with one line
    "FILE:LINE: KEY: what is wrong" naming the valid values; `meshtls run` does not start a
    program with a bad file.
  - `meshtls id` prints the identity the agent's rule gives the caller (here, a rule matching the
    meshtls executable itself), with --socket or the socket named by the config, and exits 1 with
    a message when no agent answers.
"""

import os
import shutil
import subprocess

from harness import MESHTLS, PYTHON, Mesh, base_env, check, free_port, main
from policy_common import peer, run, spiffe, start_server, wait_log, write_workload_config

CLIENT_C = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        return 2;
    }
    static const char message[] = "hello from a C client\n";
    if (write(s, message, sizeof(message) - 1) != (ssize_t)sizeof(message) - 1) {
        perror("write");
        return 3;
    }
    shutdown(s, SHUT_WR);
    char buffer[4096];
    ssize_t n;
    while ((n = read(s, buffer, sizeof(buffer))) > 0)
        fwrite(buffer, 1, (size_t)n, stdout);
    if (n < 0) {
        perror("read");
        return 4;
    }
    return 0;
}
"""

GOOD_CONFIG = """# a complete policy
log_level = "info";
detect_timeout_ms = 3000;
skip_ports = [53, 443];
outbound = {
    loopback = "plain";
    default = "mtls";
    rules = (
        { to = "10.0.0.0/8"; ports = [5432, 6379]; mode = "mtls";
          identity = "spiffe://prod.example.com/ns/db/*"; },
        { to = "2001:db8::/32"; ports = ["8000-8999"]; mode = "plain"; }
    );
};
inbound = {
    loopback = "plain";
    default = "strict";
    rules = (
        { port = 8080; mode = "permissive"; allow = ["spiffe://prod.example.com/ns/web/*"]; },
        { port = 3306; mode = "strict"; opaque = true;
          allow = ["spiffe://prod.example.com/ns/api/sa/x"]; },
        { port = "9000-9099"; mode = "plain"; }
    );
};
"""

# (text, the line of the error, the start of what follows "FILE:LINE: ")
BAD_CONFIGS = [
    ('log_level = "info";\ninbound = {\n  rules = ( { port = 8080; mode = "lax"; } );\n};\n', 3,
     'inbound.rules[0].mode: "lax" is not one of "strict", "permissive", "plain"'),
    ('outbound = {\n  rules = (\n    { to = "10.0.0.1/8"; mode = "mtls"; }\n  );\n};\n', 3,
     'outbound.rules[0].to: "10.0.0.1/8" has bits set beyond its /8 prefix'),
    ('log_level = "info";\n\nskip_port = [53];\n', 3, 'unknown key "skip_port"; valid keys:'),
    ('inbound = { rules = (\n  { port = 80; mode = "strict"; allow = ["spiffe://a/b*"]; }\n); };\n',
     2, 'inbound.rules[0].allow[0]: "spiffe://a/b*" is not an identity pattern'),
    ('outbound = { rules = ( { mode = "plain"; identity = "spiffe://a/b"; } ); };\n', 1,
     'outbound.rules[0].identity: only a rule with mode "mtls" can expect a server identity'),
    ('detect_timeout_ms = 5;\n', 1,
     'detect_timeout_ms: 5 is out of range; valid values: 100 .. 600000'),
]


def meshtls(*arguments, env=None, timeout=30):
    result = subprocess.run([MESHTLS] + list(arguments), capture_output=True, text=True,
                            timeout=timeout, env=env or base_env())
    return result.returncode, result.stdout, result.stderr


def check_program_verdicts(mesh):
    status, out, _ = meshtls("check", "/usr/bin/curl")
    check(status == 0 and "/usr/bin/curl can be interposed: it is a dynamically linked glibc "
                          "program" in out, f"check /usr/bin/curl: {status} {out!r}")
    status, out, _ = meshtls("check", "curl")
    check(status == 0 and "can be interposed" in out, f"check curl (PATH): {status} {out!r}")
    status, out, _ = meshtls("check", "/usr/bin/passwd")
    check(os.stat("/usr/bin/passwd").st_mode & 0o4000, "/usr/bin/passwd is not set-user-ID here")
    check(status == 1 and "/usr/bin/passwd cannot be interposed: it is set-user-ID" in out and
          "ignores LD_PRELOAD" in out, f"check /usr/bin/passwd: {status} {out!r}")
    status, out, _ = meshtls("check", os.path.join(mesh.dir, "no-such-program"))
    check(status == 1 and "cannot be run" in out, f"check of a missing file: {status} {out!r}")
    script = os.path.join(mesh.dir, "script.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(script, 0o755)
    status, out, _ = meshtls("check", script)
    check(status == 0 and "is a script run by /bin/sh" in out, f"check of a script: {out!r}")


def build(mesh, source, name, static):
    """Builds source with the system compiler (no sanitizer environment); None if it cannot."""
    output = os.path.join(mesh.dir, name)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    result = subprocess.run(["cc", "-O1", "-o", output, source] + (["-static"] if static else []),
                            capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        return None, result.stderr
    return output, ""


def check_verdicts_in_reality(mesh, config):
    source = os.path.join(mesh.dir, "client.c")
    with open(source, "w") as f:
        f.write(CLIENT_C)
    dynamic, errors = build(mesh, source, "client-dynamic", static=False)
    check(dynamic is not None, f"cc cannot build a dynamic program:\n{errors}")
    static, errors = build(mesh, source, "client-static", static=True)
    port = free_port()
    server = start_server(mesh, "echo-server", peer(PYTHON, "serve", "--echo", port), [port],
                          config=config)

    status, out, _ = meshtls("check", dynamic)
    check(status == 0, f"check says the dynamic client cannot be interposed: {out}")
    status, out, err = run(mesh, "client-dynamic", [dynamic, str(port)], config=config)
    check(status == 0 and "hello from a C client" in out,
          f"the dynamic C client under meshtls run ({status}):\n{out}{err}")
    check(f"mtls outbound to 127.0.0.1:{port}" in err, f"the dynamic client was not meshed:\n{err}")
    if static is None:
        print(f"cc -static is not available here, static part not run:\n{errors[-500:]}")
        return
    status, out, _ = meshtls("check", static)
    check(status == 1 and "statically linked" in out, f"check of the static client: {out!r}")
    # `meshtls run` meshes it from outside: the supervisor holds its mTLS connection.
    status, out, err = run(mesh, "client-static", [static, str(port)], config=config)
    check(status == 0 and "hello from a C client" in out and
          f"supervisor: {static} runs as pid" in err and
          f"mtls outbound to 127.0.0.1:{port}" in err,
          f"the static client under meshtls run ({status}):\n{out}{err}")
    wait_log(server, rf"mtls inbound from 127\.0\.0\.1:\d+ on :{port}: peer spiffe://")


def check_config_check(mesh):
    good = os.path.join(mesh.dir, "good.conf")
    with open(good, "w") as f:
        f.write(GOOD_CONFIG)
    status, out, err = meshtls("config", "check", good)
    check(status == 0, f"config check of a good file exited {status}:\n{err}")
    for expected in ('inbound = {', '{ port = 8080; mode = "permissive"; allow = '
                                     '["spiffe://prod.example.com/ns/web/*"]; }',
                     '{ port = 3306; mode = "strict"; '
                     'allow = ["spiffe://prod.example.com/ns/api/sa/x"]; '
                     'opaque = true; }', 'skip_ports = [53, 443];',
                     'identity = "spiffe://prod.example.com/ns/db/*"', 'detect_timeout_ms = 3000;',
                     'handshake_timeout_ms = 10000;', 'log_level = "info";'):
        check(expected in out, f"the effective config lacks {expected!r}:\n{out}")
    # What it prints loads back into the same policy.
    again = os.path.join(mesh.dir, "effective.conf")
    with open(again, "w") as f:
        f.write(out)
    status, out_again, err = meshtls("config", "check", again)
    strip = lambda text: [l for l in text.splitlines() if not l.startswith("#")]
    check(status == 0 and strip(out_again) == strip(out),
          f"the printed config does not load back to itself ({status}):\n{err}\n{out_again}")

    for index, (text, line, message) in enumerate(BAD_CONFIGS):
        path = os.path.join(mesh.dir, f"bad{index}.conf")
        with open(path, "w") as f:
            f.write(text)
        status, out, err = meshtls("config", "check", path)
        check(status == 2 and f"{path}:{line}: {message}" in err and out == "",
              f"config check of a bad file: exit {status}, expected\n  {path}:{line}: "
              f"{message}\nin\n{err}")
    status, out, err = meshtls("run", "--config", os.path.join(mesh.dir, "bad0.conf"), "--",
                               "/bin/echo", "started")
    check(status == 2 and "started" not in out and "not starting /bin/echo" in err,
          f"meshtls run started a program with a bad config ({status}): {out!r} {err!r}")


def check_id(mesh):
    sock = mesh.agents["agent"]
    status, out, err = meshtls("id", "--socket", sock)
    expected = spiffe("ns/tools/sa/meshtls-cli")
    check(status == 0 and out.strip() == expected,
          f"meshtls id: exit {status}, {out!r}, expected {expected}:\n{err}")
    config = write_workload_config(mesh, "id", "")
    env = base_env()
    env["MESHTLS_CONFIG"] = config
    status, out, err = meshtls("id", env=env)
    check(status == 0 and out.strip() == expected, f"meshtls id with MESHTLS_CONFIG: {out!r} {err}")
    status, out, err = meshtls("id", "--socket", os.path.join(mesh.dir, "no-agent.sock"))
    check(status == 1 and out == "" and "no-agent.sock" in err,
          f"meshtls id without an agent: exit {status}, {out!r}, {err!r}")


def test():
    check(shutil.which("cc") is not None, "no C compiler (build-essential)")
    with Mesh("policy-cli") as mesh:
        mesh.start_agent(config=(
            'rules = (\n'
            f'  {{ exe = "{os.path.realpath(MESHTLS)}"; id = "ns/tools/sa/meshtls-cli"; }}\n'
            ');\n'))
        config = write_workload_config(mesh, "workload", 'outbound = { loopback = "mtls"; };\n'
                                                         'inbound = { loopback = "strict"; };\n')
        check_program_verdicts(mesh)
        check_verdicts_in_reality(mesh, config)
        check_config_check(mesh)
        check_id(mesh)
        print("meshtls check (dynamic, static, setuid, script, missing) matches what meshtls run "
              "does; config check prints a config that loads back, names FILE:LINE: KEY; "
              "meshtls id prints the rule's identity")


if __name__ == "__main__":
    main(test)
