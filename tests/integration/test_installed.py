"""`meshtls run` finds the preload relative to its own binary once installed, not only in the
build tree: install into a scratch root (meson install --destdir), run a client with the
installed `meshtls`, and check that it preloaded the installed library and spoke mTLS."""

import glob
import os
import subprocess

from harness import BUILD, PYTHON, Mesh, check, free_port, main, wait_for

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")


def test():
    with Mesh("installed") as mesh:
        root = os.path.join(mesh.dir, "root")
        subprocess.run(["meson", "install", "-C", BUILD, "--destdir", root, "--no-rebuild",
                        "--quiet"], check=True, capture_output=True)
        installed = glob.glob(os.path.join(root, "**", "bin", "meshtls"), recursive=True)
        check(len(installed) == 1, f"installed meshtls not found under {root}: {installed}")
        preloads = glob.glob(os.path.join(root, "**", "meshtls", "libmeshtls-preload.so"),
                             recursive=True)
        check(len(preloads) == 1, f"installed preload not found under {root}: {preloads}")

        mesh.start_agent()
        port = free_port()
        server = mesh.meshed("greeter", [PYTHON, PEERS, "greeter", str(port)])
        wait_for(lambda: b"listening" in server.stdout(), 20, "the greeter to listen")
        probe = ("import os, subprocess, sys\n"
                 "print(os.environ['LD_PRELOAD'])\n"
                 f"sys.exit(subprocess.call([sys.executable, {PEERS!r}, 'greet-client', "
                 f"'{port}']))\n")
        client = mesh.spawn("installed-client", [installed[0], "run", "--config",
                                                 mesh.configs["agent"], "--", PYTHON, "-c",
                                                 probe])
        status = client.wait(30)
        lines = client.stdout().decode().splitlines()
        check(status == 0 and lines and os.path.realpath(lines[0].split(":")[-1]) ==
              os.path.realpath(preloads[0]),
              f"installed meshtls did not preload the installed library ({status}): {lines}\n"
              f"{client.stderr()}")
        check(lines[1:] == ["220 greeter ready", "250 HELO meshtls"], f"exchange: {lines[1:]}")
        check("mtls outbound to 127.0.0.1" in client.stderr(),
              f"the installed preload did not mesh the connection:\n{client.stderr()}")
        print(f"installed layout: {os.path.relpath(installed[0], root)} preloads "
              f"{os.path.relpath(preloads[0], root)}")


if __name__ == "__main__":
    main(test)
