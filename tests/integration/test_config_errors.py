"""A broken configuration is reported with file, line and key, and never half-applied:
`meshtls run` refuses to start the program, and a program preloaded directly with the broken
config has every TCP connection refused (with the reason logged), even where the broken line
would have asked for plaintext. Nothing reaches the server."""

import os
import socket
import threading

from harness import MESHTLS, PYTHON, Mesh, base_env, check, main

PRELOAD = os.path.join(os.environ.get("MESHTLS_BUILD_DIR", ""), "libmeshtls-preload.so")


def test():
    with Mesh("config") as mesh:
        bad = os.path.join(mesh.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write('log_level = "info";\n'
                    'outbound = { loopback = "tls"; };\n')

        runner = mesh.spawn("run-bad", [MESHTLS, "run", "--config", bad, "--", "true"])
        status = runner.wait(20)
        expected = f'{bad}:2: outbound.loopback: "tls" is not one of "mtls", "plain", "auto"'
        check(status == 2, f"meshtls run started a program with a broken config ({status})")
        check(expected in runner.stderr(), f"meshtls run did not say where:\n{runner.stderr()}")

        # A plain listener that records whether anything connects to it.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        accepted = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    pass

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        env = base_env()
        env["LD_PRELOAD"] = ":".join(p for p in (env.get("LD_PRELOAD"), PRELOAD) if p)
        env["MESHTLS_CONFIG"] = bad
        client = mesh.spawn("preloaded", [PYTHON, "-c",
                                          "import socket,sys\n"
                                          f"try: socket.create_connection(('127.0.0.1', {port}))\n"
                                          "except OSError as e: print(type(e).__name__); sys.exit(3)\n"],
                            env=env)
        status = client.wait(20)
        stop.set()
        watcher.join()
        listener.close()
        check(status == 3 and client.stdout().strip() == b"ConnectionRefusedError",
              f"a broken config let a connection through ({status}): {client.stdout()!r}")
        log = client.stderr()
        check(f"error: configuration error: {expected}; every TCP connection is refused" in log,
              f"no configuration error line:\n{log}")
        check(f"refused outbound connection to 127.0.0.1:{port} (mode unknown): configuration "
              "error" in log, f"no refusal line naming the peer:\n{log}")
        check(not accepted, "the server saw a connection from a process with a broken config")
        print("broken config: meshtls run refused to start; preloaded process refused to connect")


if __name__ == "__main__":
    main(test)
