"""podman for the container suite: a private configuration (runc, cgroupfs, events in a file), the
offline Debian 12 base image every test image is built from, and clean-up of what a test made.

The base is `debootstrap --variant=minbase bookworm` from the machine's own Debian archive, with
python3 (the workloads' server and client), imported with `podman import`. Its tarball is cached
in the build directory, keyed by everything that changes it (suite, architecture, archive,
included packages, the machine's apt date checks), so a second run imports it (seconds) instead
of building it (minutes); the imported image is kept too, tagged with the same key."""

import hashlib
import os
import resource
import shutil
import subprocess
import time

from harness import BUILD, TestFailure, check, skip

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(os.path.abspath(BUILD), "container-cache")
SUITE = "bookworm"
INCLUDE = ["python3"]


def debian_archive():
    """The first Debian archive the machine's own apt sources use (no host name written here)."""
    candidates = []
    for directory, names in (("/etc/apt/sources.list.d", None), ("/etc/apt", ["sources.list"])):
        if not os.path.isdir(directory):
            continue
        for name in sorted(names or os.listdir(directory)):
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                for line in f:
                    words = line.split()
                    if name.endswith(".sources") and words[:1] == ["URIs:"]:
                        candidates += words[1:]
                    elif words[:1] == ["deb"]:
                        candidates += [w for w in words[1:] if "://" in w][:1]
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    raise TestFailure("no Debian archive (a URI ending in /debian) in /etc/apt: debootstrap "
                      "needs one to build the base image")


def ulimits():
    """Open files and processes for every container: podman's defaults for root (2^20 files,
    2^22 processes) are above what a process without CAP_SYS_RESOURCE (a container or VM of its
    own) may raise its limits to, and runc then fails with "error setting rlimits": stay at or
    under this process's hard limits."""
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    processes = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    files = 65536 if files == resource.RLIM_INFINITY else min(files, 65536)
    processes = 16384 if processes == resource.RLIM_INFINITY else min(processes, 16384)
    return [f"nofile={files}:{files}", f"nproc={processes}:{processes}"]


_config = None


def config_dir():
    """A containers.conf of our own (CONTAINERS_CONF), not the machine's: runc (crun cannot set
    rlimits on every host), cgroupfs (systemd need not be PID 1), events in a file, and limits
    the machine allows (ulimits())."""
    global _config
    if _config is None:
        os.makedirs(CACHE, exist_ok=True)
        _config = os.path.join(CACHE, "containers.conf")
        limits = ", ".join(f'"{limit}"' for limit in ulimits())
        with open(_config, "w") as f:
            f.write(f'[containers]\ndefault_ulimits = [{limits}]\n\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\n')
    return _config


def podman_env():
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = config_dir()
    for name in ("LD_PRELOAD", "MESHTLS_CONFIG", "MESHTLS_AGENT_SOCKET"):
        env.pop(name, None)
    return env


def podman(*args, timeout=120, check_status=True):
    """Runs podman ARGS; returns the finished process (a failure is a TestFailure)."""
    argv = ["podman"] + list(args)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                env=podman_env())
    except subprocess.TimeoutExpired:
        raise TestFailure(f"{' '.join(argv)} took more than {timeout}s") from None
    if check_status:
        check(result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n"
                                      f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def host_apt_settings():
    """The machine's apt settings about release dates (apt-config dump): an archive mirror or
    snapshot whose Release files have expired is usable on the machine only because apt is told
    not to check their dates, and the images' apt (and the build's `apt-get source`) must be told
    the same. The text of an apt.conf.d file, possibly empty."""
    result = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=30)
    lines = [line for line in result.stdout.splitlines()
             if line.split(" ")[0] in ("Acquire::Check-Valid-Until", "Acquire::Check-Date")]
    return "".join(line + "\n" for line in lines)


def base_image():
    """The tag of the Debian 12 base image, built once and cached (see the module's text)."""
    if shutil.which("podman") is None:
        skip("podman is not installed (packaging/install-deps.sh installs it)")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    archive = debian_archive()
    apt_settings = host_apt_settings()
    key = hashlib.sha256(f"{SUITE} {arch} {archive} {' '.join(INCLUDE)} minbase "
                         f"{apt_settings}".encode())
    tag = f"localhost/meshtls-test-base:{SUITE}-{arch}-{key.hexdigest()[:12]}"
    if podman("image", "exists", tag, check_status=False).returncode == 0:
        return tag
    tarball = os.path.join(CACHE, f"base-{key.hexdigest()[:12]}.tar")
    if not os.path.exists(tarball):
        check(shutil.which("debootstrap") is not None,
              "debootstrap is not installed (packaging/install-deps.sh installs it)")
        root = os.path.join(CACHE, "base-root")
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        result = subprocess.run(["debootstrap", "--variant=minbase",
                                 "--include=" + ",".join(INCLUDE), SUITE, root, archive],
                                capture_output=True, text=True, timeout=900)
        check(result.returncode == 0, f"debootstrap {SUITE} into {root} failed:\n"
                                      f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
        with open(os.path.join(root, "etc", "apt", "apt.conf.d", "99meshtls-test-host"),
                  "w") as f:
            f.write(apt_settings)
        partial = tarball + ".partial"
        subprocess.run(["tar", "-C", root, "-cf", partial, "."], check=True, timeout=300)
        os.rename(partial, tarball)
        shutil.rmtree(root, ignore_errors=True)
        print(f"base image: debootstrap {SUITE} from {archive}: "
              f"{time.monotonic() - started:.0f} s (cached as {tarball})")
    podman("import", tarball, tag, timeout=300)
    return tag


def can_run_containers(image):
    """Skips the test, saying why, where podman cannot start a container at all."""
    result = podman("run", "--rm", "--network", "host", image, "true", timeout=120,
                    check_status=False)
    if result.returncode != 0:
        skip(f"podman cannot run containers on this machine: {result.stderr.strip()[-500:]}")


class Made:
    """Containers and images a test made, removed when it ends (the base image stays)."""

    def __init__(self):
        self.containers = []
        self.images = []

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        for name in reversed(self.containers):
            podman("rm", "--force", "--time", "2", name, timeout=60, check_status=False)
        for tag in reversed(self.images):
            podman("rmi", "--force", tag, timeout=60, check_status=False)
        return False

    def container(self, name):
        self.containers.append(name)
        return name

    def image(self, tag):
        self.images.append(tag)
        return tag


def ignore_file(path):
    """The build context's ignore list: the Dockerfile's own, and this build directory (which may
    be inside the source tree under any name)."""
    with open(os.path.join(SOURCE, "packaging", "docker", "Dockerfile.dockerignore")) as f:
        rules = f.read()
    build = os.path.relpath(os.path.abspath(BUILD), SOURCE)
    if not build.startswith(".."):
        rules += f"\n/{build}\n"
    with open(path, "w") as f:
        f.write(rules)
    return path


def build_stage(target, tag, build_args, ignore, timeout):
    """podman build of one stage of packaging/docker/Dockerfile; returns its wall time."""
    started = time.monotonic()
    args = ["build", "--pull=never", "--network", "host", "--ignorefile", ignore, "-f",
            os.path.join(SOURCE, "packaging", "docker", "Dockerfile"), "--target", target,
            "-t", tag]
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    podman(*args, SOURCE, timeout=timeout)
    return time.monotonic() - started
