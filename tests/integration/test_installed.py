"""`meshtls run` finds the preload relative to its own binary once installed, not only in the
build tree: install into a scratch root (meson install --destdir), run a client with the
installed `meshtls`, and check that it preloaded the installed library and spoke mTLS."""

import glob
import os
import subprocess

from harness import BUILD, PYTHON, Mesh, base_env, check, free_port, main, wait_for

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
        # Direct linking: a client built against the installed header and library, found
        # through the installed pkg-config file.
        pcs = glob.glob(os.path.join(root, "**", "pkgconfig", "meshtls.pc"), recursive=True)
        check(len(pcs) == 1, f"meshtls.pc not installed: {pcs}")
        pkg_env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]),
                       PKG_CONFIG_SYSROOT_DIR=root)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "meshtls"], env=pkg_env,
                               check=True, capture_output=True, text=True).stdout.split()
        program = os.path.join(mesh.dir, "installed_echo_client")
        source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                              "examples", "echo_client.c")
        subprocess.run(["cc", "-o", program, source] + flags, check=True)
        libdir = next(f[2:] for f in flags if f.startswith("-L"))
        echo_port = free_port()
        echo = mesh.meshed("echo-server", [PYTHON, PEERS, "echo-server", str(echo_port)])
        wait_for(lambda: b"listening" in echo.stdout(), 20, "the echo server to listen")
        env = base_env()  # no preload (only a sanitizer runtime, in sanitized builds)
        env.update(LD_LIBRARY_PATH=libdir, MESHTLS_CONFIG=mesh.configs["agent"])
        run = subprocess.run([program, str(echo_port), "linked"], env=env, capture_output=True,
                             timeout=30)
        check(run.returncode == 0 and b"server spiffe://meshtls.local/" in run.stdout,
              f"installed direct-linked client failed ({run.returncode}): {run.stdout!r} "
              f"{run.stderr.decode()}")
        print(f"installed layout: {os.path.relpath(installed[0], root)} preloads "
              f"{os.path.relpath(preloads[0], root)}")


if __name__ == "__main__":
    main(test)
