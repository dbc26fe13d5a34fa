"""The Debian packages of packaging/debian/build-debs.sh: builds them, checks their control data and
contents, unpacks them into a scratch root (dpkg -x, nothing is installed on the machine), and runs
the demo from the unpacked paths: the packaged agent with its packaged configuration, an unmodified
python3 http.server and a python3 client, both under the packaged `meshtls run`, talking mTLS."""

import os
import re
import subprocess

from harness import (BUILD, PYTHON, Mesh, TestFailure, base_env, check, free_port, main, port_open,
                     wait_agent_ready, wait_for)

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DEBS = os.path.join(SOURCE, "packaging", "debian", "build-debs.sh")
PACKAGES = ["libmeshtls0", "libmeshtls-dev", "meshtls-agent", "meshtls"]


def run(argv, **kwargs):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    except subprocess.TimeoutExpired as expired:
        raise TestFailure(f"{' '.join(argv)} took more than {expired.timeout}s") from None
    check(result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n"
                                  f"{result.stdout}{result.stderr}")
    return result.stdout


def control_fields(deb):
    fields = {}
    for line in run(["dpkg-deb", "--field", deb]).splitlines():
        if line and not line.startswith(" "):
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def contents(deb):
    # "perms owner size date time ./path[ -> target]"
    return {line.split()[5].lstrip(".") for line in run(["dpkg-deb", "--contents", deb])
            .splitlines()}


def check_packages(debs, multiarch, arch):
    libdir = f"/usr/lib/{multiarch}"
    expected = {
        "libmeshtls0": {f"{libdir}/libmeshtls.so.0", f"{libdir}/meshtls/libmeshtls-preload.so",
                        "/etc/meshtls/meshtls.conf", "/usr/share/doc/libmeshtls0/copyright"},
        "libmeshtls-dev": {"/usr/include/meshtls.h", f"{libdir}/libmeshtls.so",
                           f"{libdir}/pkgconfig/meshtls.pc"},
        "meshtls-agent": {"/usr/sbin/meshtls-agent", "/lib/systemd/system/meshtls-agent.service",
                          "/etc/meshtls/agent.conf", "/usr/sbin/meshtls-injector",
                          "/usr/share/man/man8/meshtls-injector.8.gz"},
        "meshtls": {"/usr/bin/meshtls"},
    }
    owners = {}
    for package in PACKAGES:
        fields = control_fields(debs[package])
        check(fields.get("Package") == package and fields.get("Architecture") == arch and
              fields.get("Version", "").endswith("-1") and fields.get("Description"),
              f"{package}: bad control fields {fields}")
        files = contents(debs[package])
        missing = expected[package] - files
        check(not missing, f"{package} lacks {sorted(missing)}; has {sorted(files)}")
        for path in files:
            if not path.endswith("/"):
                check(path not in owners, f"{path} is in both {owners.get(path)} and {package}")
                owners[path] = package
        print(f"{package} {fields['Version']}: Depends: {fields.get('Depends', '')}")
    for package in ("libmeshtls-dev", "meshtls"):
        check("libmeshtls0 (= " in control_fields(debs[package]).get("Depends", ""),
              f"{package} does not depend on the exact libmeshtls0")
    check("libmicrohttpd" in control_fields(debs["meshtls-agent"]).get("Depends", ""),
          "meshtls-agent does not depend on libmicrohttpd, which it links")
    check("libjson-c" in control_fields(debs["meshtls-agent"]).get("Depends", ""),
          "meshtls-agent does not depend on libjson-c, which meshtls-injector links")
    info = run(["dpkg-deb", "--info", debs["meshtls-agent"], "conffiles"]).split()
    check(info == ["/etc/meshtls/agent.conf"], f"meshtls-agent conffiles: {info}")
    # The workload configuration ships with the library that reads it.
    info = run(["dpkg-deb", "--info", debs["libmeshtls0"], "conffiles"]).split()
    check(info == ["/etc/meshtls/meshtls.conf"], f"libmeshtls0 conffiles: {info}")
    for package in PACKAGES:
        files = contents(debs[package])
        check({f"/usr/share/doc/{package}/copyright",
               f"/usr/share/doc/{package}/changelog.Debian.gz"} <= files,
              f"{package} has no copyright or changelog")
    using = control_fields(debs["libmeshtls0"]).get("Built-Using", "")
    check("wolfssl (= " in using, f"libmeshtls0 links wolfSSL statically; Built-Using: {using!r}")
    check("ldconfig" in run(["dpkg-deb", "--info", debs["libmeshtls0"], "triggers"]),
          "libmeshtls0 has no ldconfig trigger")


def check_self_contained(root, multiarch):
    """The binaries need nothing from the scratch root (no LD_LIBRARY_PATH) and no libwolfssl."""
    for path in ("usr/sbin/meshtls-agent", "usr/sbin/meshtls-injector", "usr/bin/meshtls",
                 f"usr/lib/{multiarch}/meshtls/libmeshtls-preload.so",
                 f"usr/lib/{multiarch}/libmeshtls.so.0"):
        ldd = run(["ldd", os.path.join(root, path)])
        check("not found" not in ldd and "wolfssl" not in ldd and "meshtls" not in ldd,
              f"{path} is not self-contained:\n{ldd}")


def check_dev_package(mesh, root, debs, multiarch):
    """A C program finds the packaged library with pkg-config and links it."""
    program = os.path.join(mesh.dir, "version.c")
    with open(program, "w") as f:
        f.write('#include <meshtls.h>\n#include <stdio.h>\n'
                'int main(void) { puts(meshtls_version()); return 0; }\n')
    env = dict(base_env(), PKG_CONFIG_SYSROOT_DIR=root,
               PKG_CONFIG_LIBDIR=os.path.join(root, "usr", "lib", multiarch, "pkgconfig"))
    flags = run(["pkg-config", "--cflags", "--libs", "meshtls"], env=env).split()
    binary = os.path.join(mesh.dir, "version")
    run(["cc", program, "-o", binary] + flags, env=env)
    env["LD_LIBRARY_PATH"] = os.path.join(root, "usr", "lib", multiarch)
    version = run([binary], env=env).strip()
    check(version == run(["pkg-config", "--modversion", "meshtls"], env=env).strip(),
          f"meshtls_version() says {version!r}, not the .pc version")
    check_shlibdeps(mesh, binary, debs, multiarch)


def check_shlibdeps(mesh, binary, debs, multiarch):
    """dpkg-shlibdeps, as a package of that program would run it, finds libmeshtls0 through the
    package's symbols file (it fails on a library no shlibs or symbols file describes)."""
    raw = os.path.join(mesh.dir, "libmeshtls0-raw")
    run(["dpkg-deb", "-R", debs["libmeshtls0"], raw])
    probe = os.path.join(mesh.dir, "probe")
    os.makedirs(os.path.join(probe, "debian"))
    with open(os.path.join(probe, "debian", "control"), "w") as f:
        f.write("Source: probe\n\nPackage: probe\nArchitecture: any\n")
    output = run(["dpkg-shlibdeps", "-O", f"-S{raw}",
                  f"-l{os.path.join(raw, 'usr', 'lib', multiarch)}", binary], cwd=probe)
    check("libmeshtls0 (>= " in output, f"dpkg-shlibdeps: {output}")
    print(f"dpkg-shlibdeps on a program linked against libmeshtls: {output.strip()}")


def check_lintian(debs):
    """lintian finds no error in any package (warnings are printed, not failed)."""
    result = subprocess.run(["lintian", "--tag-display-limit", "0"] + sorted(debs.values()),
                            capture_output=True, text=True, timeout=150)
    tags = [line for line in result.stdout.splitlines() if line[:3] in ("E: ", "W: ")]
    for line in tags:
        print(f"lintian: {line}")
    errors = [line for line in tags if line.startswith("E: ")]
    check(not errors and result.returncode in (0, 1) and "E: " not in result.stderr,
          f"lintian reports errors:\n" + "\n".join(errors) + result.stderr[-2000:])


def check_unit_exposure(root):
    """systemd-analyze security rates the packaged meshtls-agent.service 4.0 or less (OK): the
    unit keeps only the capabilities, system calls, address families and writable paths the
    agent needs. Without its sandboxing options the unit rates 8.9 (EXPOSED)."""
    unit = os.path.join(root, "lib", "systemd", "system", "meshtls-agent.service")
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for meshtls-agent\.service: (\d+\.\d+)", output)
    check(match is not None, f"systemd-analyze security printed no exposure level:\n{output}")
    exposure = float(match.group(1))
    check(exposure <= 4.0, f"meshtls-agent.service exposure is {exposure} (> 4.0):\n{output}")
    print(f"systemd-analyze security: meshtls-agent.service exposure {exposure}")


def test():
    arch = run(["dpkg", "--print-architecture"]).strip()
    multiarch = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).strip()
    with Mesh("packaging-debs") as mesh:
        out = os.path.join(mesh.dir, "debs")
        listed = run(["bash", BUILD_DEBS, BUILD, out], timeout=300).split()
        debs = {}
        for deb in listed:
            debs[os.path.basename(deb).split("_")[0]] = deb
        check(sorted(debs) == sorted(PACKAGES), f"build-debs.sh made {listed}")
        check_packages(debs, multiarch, arch)

        root = os.path.join(mesh.dir, "root")
        for package in PACKAGES:
            run(["dpkg", "-x", debs[package], root])
        check_self_contained(root, multiarch)
        check_dev_package(mesh, root, debs, multiarch)
        check_lintian(debs)
        check_unit_exposure(root)

        meshtls = os.path.join(root, "usr", "bin", "meshtls")
        agent_conf = os.path.join(root, "etc", "meshtls", "agent.conf")
        run([meshtls, "config", "check", os.path.join(root, "etc", "meshtls", "meshtls.conf")])

        # The packaged agent with its packaged configuration.
        sock = os.path.join(mesh.dir, "agent.sock")
        agent = mesh.spawn("agent", [os.path.join(root, "usr", "sbin", "meshtls-agent"),
                                     "--socket", sock, "--state-dir",
                                     os.path.join(mesh.dir, "state"), "--config", agent_conf,
                                     "--metrics-address", "off"])
        wait_agent_ready(agent, sock, "the packaged agent")
        config = mesh.write_config("workload", sock)

        port = free_port()
        site = os.path.join(mesh.dir, "site")
        os.mkdir(site)
        with open(os.path.join(site, "index.txt"), "w") as f:
            f.write("hello from the packages\n")
        server = mesh.spawn("server", [meshtls, "run", "--config", config, "--", PYTHON, "-m",
                                       "http.server", str(port), "--bind", "127.0.0.1",
                                       "--directory", site])
        wait_for(lambda: port_open(port) or server.popen.poll() is not None, 20,
                 "the server to listen")
        check(server.popen.poll() is None, f"the server exited:\n{server.stderr()}")
        probe = ("import os, urllib.request\n"
                 "print(os.environ['LD_PRELOAD'])\n"
                 f"print(urllib.request.urlopen('http://127.0.0.1:{port}/index.txt', "
                 "timeout=20).read().decode().strip())\n")
        client = mesh.spawn("client", [meshtls, "run", "--config", config, "--", PYTHON, "-c",
                                       probe])
        status = client.wait(30)
        lines = client.stdout().decode().splitlines()
        preload = os.path.join(root, "usr", "lib", multiarch, "meshtls", "libmeshtls-preload.so")
        check(status == 0 and len(lines) == 2, f"client failed ({status}): {lines}\n"
                                               f"{client.stderr()}")
        # Under the sanitizer build the harness preloads its runtime first: ours comes last.
        check(os.path.realpath(lines[0].split(":")[-1]) == os.path.realpath(preload),
              f"the packaged meshtls preloaded {lines[0]}, not {preload}")
        check(lines[1] == "hello from the packages", f"client read {lines[1]!r}")
        check("mtls outbound to 127.0.0.1" in client.stderr(),
              f"the client's connection was not mTLS:\n{client.stderr()}")
        wait_for(lambda: "mtls inbound from 127.0.0.1" in server.stderr(), 10,
                 "the server's mtls inbound log line")
        print(f"demo from the unpacked packages: {lines[1]!r} over mTLS, preload "
              f"{os.path.relpath(lines[0].split(':')[-1], root)}")


if __name__ == "__main__":
    main(test)
